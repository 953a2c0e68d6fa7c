"""A streamable-HTTP MCP server (the official Python SDK under uvicorn) on 127.0.0.1
that wants `Authorization: Bearer $HTTP_TEST_TOKEN`. Prints its port, then serves."""

import os
import socket
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

app = MCPServer("http-test")


@app.tool(description="Adds two integers.")
def add(a: int, b: int) -> str:
    return str(a + b)


def with_bearer(inner, token):
    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization") != f"Bearer {token}".encode():
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"bad token"})
                return
        await inner(scope, receive, send)

    return guarded


if __name__ == "__main__":
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is announced: a client never finds it closed.
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    asgi = with_bearer(app.streamable_http_app(), os.environ["HTTP_TEST_TOKEN"])
    config = uvicorn.Config(asgi, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    sys.exit(0)
