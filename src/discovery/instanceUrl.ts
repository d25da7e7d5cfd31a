import type { ServiceEntry } from "../consul/client.ts";

/** The MCP URL an instance serves, from its Consul registration (meta mcp_scheme, default http; mcp_path, default /mcp). */
export function instanceUrl(entry: Pick<ServiceEntry, "address" | "port" | "meta">): string {
  const host = entry.address.includes(":") ? `[${entry.address}]` : entry.address;
  const scheme = entry.meta["mcp_scheme"] === "https" ? "https" : "http";
  return `${scheme}://${host}:${entry.port}${entry.meta["mcp_path"] ?? "/mcp"}`;
}
