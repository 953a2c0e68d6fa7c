"""Drives `keel mcp` with the official MCP Python SDK (PyPI `mcp`), as another MCP host
would, and prints what it saw as one JSON object for the Rust test to check.

usage: keel_client.py MODE KEEL_BINARY ARG...   (MODE: auto = current revision via
server/discover, legacy = the previous revision's initialize handshake)
"""

import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters


def text_of(result):
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def main():
    mode, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    seen = {}
    # keel reads its data directory from the environment: pass all of it on.
    server = StdioServerParameters(command=command, args=args, env=dict(os.environ))
    async with Client(server, mode=mode, read_timeout_seconds=120) as client:
        seen["protocol"] = str(client.protocol_version)
        seen["server"] = client.server_info.name if client.server_info else None
        tools = await client.list_tools()
        seen["tools"] = {
            tool.name: {
                "read_only": bool(tool.annotations and tool.annotations.read_only_hint),
                "schema": tool.input_schema,
            }
            for tool in tools.tools
        }

        read = await client.call_tool("read", {"path": "notes.txt"})
        seen["read"] = {"text": text_of(read), "is_error": bool(read.is_error)}
        outside = await client.call_tool("read", {"path": "../../../etc/passwd"})
        seen["read_outside"] = {"text": text_of(outside), "is_error": bool(outside.is_error)}

        progress = []

        async def on_progress(value, total, message):
            progress.append({"progress": value, "message": message})

        task = await client.call_tool(
            "keel_task", {"task": "Write hello.txt and say so."}, progress_callback=on_progress
        )
        seen["task"] = {
            "text": text_of(task),
            "is_error": bool(task.is_error),
            "structured": task.structured_content,
            "progress": progress,
        }
        session_id = (task.structured_content or {}).get("session_id")
        again = await client.call_tool(
            "keel_task", {"task": "Read it back.", "session_id": session_id}
        )
        seen["continued"] = {
            "text": text_of(again),
            "is_error": bool(again.is_error),
            "structured": again.structured_content,
        }
        bad = await client.call_tool("keel_task", {"task": "x", "session_id": "no-such-session"})
        seen["bad_session"] = {"text": text_of(bad), "is_error": bool(bad.is_error)}
    print(json.dumps(seen))


asyncio.run(main())
