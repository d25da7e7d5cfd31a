import type { IncomingMessage } from "node:http";
import { header } from "./request.ts";

/** Names that always reach this machine only. */
const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"];

/**
 * The host names a server answers to (DNS-rebinding protection): the loopback names, the
 * bind host and the configured extra ones, lower-cased.
 */
export function allowedHosts(bindHost: string, extra: readonly string[] = []): Set<string> {
  return new Set([...LOOPBACK_NAMES, bindHost, ...extra].map((h) => h.toLowerCase()));
}

/** The offending "Host x" / "Origin y", or undefined when both name allowed hosts. */
export function foreignHost(req: IncomingMessage, allowed: ReadonlySet<string>): string | undefined {
  const host = header(req, "host");
  if (host !== undefined) {
    const name = hostnameOf(`http://${host}`);
    if (!name || !allowed.has(name)) return `Host "${host}"`;
  }
  const origin = header(req, "origin");
  if (origin !== undefined && origin !== "null") {
    const name = hostnameOf(origin);
    if (!name || !allowed.has(name)) return `Origin "${origin}"`;
  }
  return undefined;
}

function hostnameOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  } catch {
    return undefined;
  }
}
