import { createHash } from "node:crypto";
import type { Tool } from "@modelcontextprotocol/server";

/**
 * First 16 hex digits of the SHA-256 of the canonical tool list (sorted by name, keys
 * sorted). Published in Consul meta so callers refresh their catalog only when it changes.
 */
export function hashTools(tools: readonly Pick<Tool, "name">[]): string {
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
