"""Interop: the Python MCP SDK (v2 line) against a toolmesh endpoint, both ways it connects.

Usage: python_sdk.py <url> <tool> <json-arguments>
Prints one JSON line per mode: the protocol it spoke, the tools it listed, the call's result.
"""

import asyncio
import json
import sys

from mcp import Client


async def python_sdk(url: str, tool: str, args: dict, mode: str) -> dict:
    async with Client(url, mode=mode) as client:
        tools = await client.list_tools()
        result = await client.call_tool(tool, args)
        return {
            "client": f"python-mcp/{mode}",
            "protocol": getattr(client, "protocol_version", None),
            "tools": sorted(t.name for t in tools.tools),
            "isError": bool(result.is_error),
            "structured": result.structured_content,
        }


async def main() -> None:
    url, tool, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    # "auto" probes server/discover (2026-07-28 where offered); "legacy" is the initialize handshake.
    for run in (python_sdk(url, tool, args, "auto"), python_sdk(url, tool, args, "legacy")):
        print(json.dumps(await run), flush=True)


asyncio.run(main())
