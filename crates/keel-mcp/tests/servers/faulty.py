"""An MCP server (the official Python SDK) whose tools fail the way real servers do:
`crash` kills the process mid-call, `hang` never answers, `echo` works."""

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer

app = MCPServer("faulty")


@app.tool(description="Echoes its text back.")
def echo(text: str) -> str:
    return f"echo: {text} (pid {os.getpid()})"


@app.tool(description="Exits the process in the middle of the call.")
def crash() -> str:
    print("faulty: crashing on purpose", file=sys.stderr, flush=True)
    os._exit(3)


@app.tool(description="Never answers.")
async def hang() -> str:
    await asyncio.sleep(10**6)
    return "unreachable"


if __name__ == "__main__":
    app.run()
