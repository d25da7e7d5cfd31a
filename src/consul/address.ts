import { MeshError } from "../protocol/errors.ts";

/** Consul's own default, as its CLI uses when CONSUL_HTTP_ADDR is unset. @default "http://127.0.0.1:8500" */
export const DEFAULT_CONSUL_ADDR = "http://127.0.0.1:8500";

export interface ConsulAddress {
  /** Normalised base URL without a trailing slash, e.g. `http://127.0.0.1:8500`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly secure: boolean;
}

/**
 * Parses an address the way Consul's CLI reads CONSUL_HTTP_ADDR: `host:port`,
 * `http://host:port` or `https://host:port`; a missing port means 8500 (443 for https).
 */
export function parseConsulAddress(raw: string): ConsulAddress {
  const text = raw.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch (cause) {
    throw new MeshError(
      "CONFIG_INVALID",
      `Consul address "${raw}" is not a valid address. Expected host:port or http(s)://host:port, e.g. ${DEFAULT_CONSUL_ADDR}.`,
      { cause },
    );
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new MeshError(
      "CONFIG_INVALID",
      `Consul address "${raw}" uses ${parsed.protocol.slice(0, -1)}; expected http or https (unix sockets are not supported).`,
    );
  }
  if (parsed.pathname !== "/" && parsed.pathname !== "") {
    throw new MeshError("CONFIG_INVALID", `Consul address "${raw}" has a path; give only scheme, host and port.`);
  }
  const secure = parsed.protocol === "https:";
  const port = parsed.port ? Number(parsed.port) : secure ? 443 : 8500;
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const hostInUrl = host.includes(":") ? `[${host}]` : host;
  return Object.freeze({ url: `${parsed.protocol}//${hostInUrl}:${port}`, host, port, secure });
}

/**
 * Parses CONSUL_HTTP_ADDR given as one address or several, comma-separated: the first is the
 * host's own Consul agent, the others are used only when it cannot be reached.
 */
export function parseConsulAddresses(raw: string): ConsulAddress[] {
  const parts = raw
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  if (parts.length === 0) {
    throw new MeshError(
      "CONFIG_INVALID",
      `Consul address "${raw}" is empty. Expected host:port or http(s)://host:port, e.g. ${DEFAULT_CONSUL_ADDR}.`,
    );
  }
  return parts.map(parseConsulAddress);
}
