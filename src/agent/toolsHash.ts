import { createHash } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";

export interface ToolsDigest {
  /** First 16 hex digits of the SHA-256 of the canonical tool list. */
  hash: string;
  tools: Tool[];
}

/**
 * Lists the tools exactly as a client sees them (through a real MCP client over the
 * in-memory pair) and hashes them. Published in Consul meta so callers refresh their
 * catalog only when the hash changes.
 */
export async function digestTools(server: McpServer): Promise<ToolsDigest> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: "toolmesh-digest", version: "1" });
  await server.connect(serverSide);
  await client.connect(clientSide);
  try {
    const { tools } = await client.listTools();
    return { hash: hashTools(tools), tools };
  } finally {
    await client.close();
    await server.close();
  }
}

export function hashTools(tools: readonly Tool[]): string {
  const canonical = [...tools].sort((a, b) => a.name.localeCompare(b.name)).map(canonicalize);
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex").slice(0, 16);
}

function canonicalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonicalize);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonicalize((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
