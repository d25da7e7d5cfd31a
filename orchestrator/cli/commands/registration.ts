// `mesh register`: its flags, and the Consul registration they describe (checked once).
import { AGENT_NAME_PATTERN } from "../../../src/agent/definition.ts";
import type { ServiceRegistration } from "../../../src/consul/client.ts";
import { UsageError } from "../../common/errors.ts";
import type { MeshFlags } from "../mesh.ts";

export interface RegisterFlags extends MeshFlags {
  a2a?: string;
  port: string;
  name: string;
  url: string;
  tag: string[];
  check: "tcp" | "http" | "ttl" | "none";
  checkUrl?: string;
  id?: string;
  description?: string;
  force?: boolean;
}

type RegistrationFlags = Pick<RegisterFlags, "name" | "url" | "tag" | "check" | "checkUrl" | "id" | "description">;

/** Validates the flags and builds the Consul registration (exported for tests). */
export function buildRegistration(flags: RegistrationFlags): ServiceRegistration {
  if (!AGENT_NAME_PATTERN.test(flags.name)) {
    throw new UsageError(
      `--name "${flags.name}" is invalid: use lowercase letters, digits and dashes, starting with a letter (at most 63), e.g. "everything".`,
    );
  }
  const { url, host, port } = endpointOf(flags.url);
  for (const t of flags.tag) {
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(t))
      throw new UsageError(`--tag "${t}" is invalid: use a lowercase word (letters, digits, _ or -).`);
  }
  const id = flags.id ?? `${flags.name}-${host.replace(/[^A-Za-z0-9.-]/g, "-")}-${port}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id))
    throw new UsageError(`--id "${id}" is invalid: letters, digits, '.', '_' or '-', at most 128.`);
  const check = healthCheck(flags, host, port);
  return {
    id,
    name: flags.name,
    address: host,
    port,
    tags: ["mcp", ...flags.tag.filter((t) => t !== "mcp")],
    meta: {
      mcp_path: url.pathname || "/",
      mcp_scheme: url.protocol.slice(0, -1),
      mcp_transport: "streamable-http",
      registered_by: "mesh-cli",
      ...(flags.description ? { description: flags.description.slice(0, 512) } : {}),
    },
    ...(check ? { check } : {}),
  };
}

/** The --url, checked: an http(s) URL with no credentials, query or fragment, and the host and port it names. */
function endpointOf(raw: string): { url: URL; host: string; port: number } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--url "${raw}" is not a URL; expected e.g. http://127.0.0.1:3001/mcp.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new UsageError(`--url must be http or https (Streamable HTTP); got ${url.protocol.slice(0, -1)}.`);
  if (url.username || url.password)
    throw new UsageError("--url must not carry credentials; they would be stored in Consul for anyone to read.");
  if (url.search || url.hash) throw new UsageError("--url must not have a query or fragment.");
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  if (port === 0) throw new UsageError(`--url "${raw}" has port 0, which no client can connect to; give the port the server listens on.`);
  return { url, host, port };
}

/** The Consul check --check asks for (none: no check, always listed as passing). */
function healthCheck(flags: RegistrationFlags, host: string, port: number): ServiceRegistration["check"] {
  const checkUrl = flags.checkUrl ?? flags.url;
  return flags.check === "none"
    ? undefined
    : flags.check === "tcp"
      ? {
          name: `${flags.name} TCP`,
          tcp: `${host.includes(":") ? `[${host}]` : host}:${port}`,
          interval: "5s",
          timeout: "2s",
          deregisterCriticalServiceAfter: "30m",
        }
      : flags.check === "http"
        ? { name: `${flags.name} HTTP`, http: checkUrl, interval: "5s", timeout: "2s", deregisterCriticalServiceAfter: "30m" }
        : { name: `${flags.name} TTL`, ttl: "60s", status: "passing", deregisterCriticalServiceAfter: "30m" };
}
