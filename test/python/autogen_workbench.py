"""Interop: AutoGen's McpWorkbench (autogen-ext, on the Python MCP SDK's v1 line) against a toolmesh endpoint.

Usage: autogen_workbench.py <url> <tool> <json-arguments>
Prints one JSON line: the tools it listed and the call's result.
"""

import asyncio
import json
import sys

from autogen_ext.tools.mcp import McpWorkbench, StreamableHttpServerParams


async def main() -> None:
    url, tool, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    async with McpWorkbench(StreamableHttpServerParams(url=url)) as workbench:
        tools = await workbench.list_tools()
        result = await workbench.call_tool(tool, args)
        print(
            json.dumps(
                {
                    "client": "autogen-mcp-workbench",
                    "tools": sorted(t["name"] for t in tools),
                    "isError": bool(result.is_error),
                    "text": result.to_text(),
                }
            ),
            flush=True,
        )


asyncio.run(main())
