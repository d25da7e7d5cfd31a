import { Command, Option } from "commander";
import { AGENT_NAME_PATTERN } from "../../../src/agent/definition.ts";
import type { ServiceRegistration } from "../../../src/consul/client.ts";
import { UsageError } from "../errors.ts";
import { addMeshOptions, print, withMesh, type MeshFlags } from "../mesh.ts";

interface RegisterFlags extends MeshFlags {
  name: string;
  url: string;
  tag: string[];
  check: "tcp" | "http" | "ttl" | "none";
  checkUrl?: string;
  id?: string;
  description?: string;
}

/** Where a registered server's health comes from when nobody says otherwise. */
export const DEFAULT_REGISTER_CHECK = "tcp";

export function registerCommand(): Command {
  return addMeshOptions(
    new Command("register")
      .description("register any MCP server (Streamable HTTP) in Consul so the mesh can discover and call it")
      .requiredOption("--name <name>", "service name the mesh will know it by (lowercase, digits, dashes)")
      .requiredOption("--url <url>", "its MCP endpoint, e.g. http://127.0.0.1:3001/mcp")
      .option("--tag <tag>", "extra tag: a capability or intent (repeatable)", (v: string, acc: string[]) => [...acc, v], [])
      .addOption(
        new Option("--check <kind>", "health check: tcp connect, http GET (--check-url), ttl (you send passes), none")
          .choices(["tcp", "http", "ttl", "none"])
          .default(DEFAULT_REGISTER_CHECK),
      )
      .option("--check-url <url>", "URL the http check GETs (default: the MCP URL; many MCP servers answer GET with 405)")
      .option("--id <id>", "service id (default <name>-<host>-<port>)")
      .option("--description <text>", "what it does (shown by mesh agents, used for routing)"),
  )
    .addHelpText("after", "\nExample:\n  mesh register --name everything --url http://127.0.0.1:3001/mcp --tag demo")
    .action(async (flags: RegisterFlags) => {
      const reg = buildRegistration(flags);
      await withMesh(
        flags,
        async ({ consul }) => {
          const clash = (await consul.agentServices(`ID == ${JSON.stringify(reg.id)}`))[0];
          if (clash && (clash.service !== reg.name || clash.address !== reg.address || clash.port !== reg.port)) {
            throw new UsageError(
              `Service id "${reg.id}" is already registered for ${clash.service} at ${clash.address}:${clash.port}; refusing to replace a different server. Choose another --id or deregister it first.`,
            );
          }
          await consul.registerService(reg);
          print(flags, { registered: reg }, () =>
            [
              `Registered ${reg.name} (id ${reg.id}) at ${flags.url} with tags ${reg.tags.join(", ")}.`,
              reg.check
                ? `Health: ${flags.check} check${flags.check === "ttl" ? ` — send passes with: curl -X PUT ${consul.address.url}/v1/agent/check/pass/service:${reg.id}` : ""}.`
                : "Health: no check (always listed as passing).",
              `Try: mesh tools ${reg.name}`,
            ].join("\n"),
          );
        },
        { catalog: false },
      );
    });
}

/** Validates the flags and builds the Consul registration (exported for tests). */
export function buildRegistration(
  flags: Pick<RegisterFlags, "name" | "url" | "tag" | "check" | "checkUrl" | "id" | "description">,
): ServiceRegistration {
  if (!AGENT_NAME_PATTERN.test(flags.name)) {
    throw new UsageError(
      `--name "${flags.name}" is invalid: use lowercase letters, digits and dashes, starting with a letter (at most 63), e.g. "everything".`,
    );
  }
  let url: URL;
  try {
    url = new URL(flags.url);
  } catch {
    throw new UsageError(`--url "${flags.url}" is not a URL; expected e.g. http://127.0.0.1:3001/mcp.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new UsageError(`--url must be http or https (Streamable HTTP); got ${url.protocol.slice(0, -1)}.`);
  if (url.username || url.password)
    throw new UsageError("--url must not carry credentials; they would be stored in Consul for anyone to read.");
  if (url.search || url.hash) throw new UsageError("--url must not have a query or fragment.");
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  for (const t of flags.tag) {
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(t))
      throw new UsageError(`--tag "${t}" is invalid: use a lowercase word (letters, digits, _ or -).`);
  }
  const id = flags.id ?? `${flags.name}-${host.replace(/[^A-Za-z0-9.-]/g, "-")}-${port}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id))
    throw new UsageError(`--id "${id}" is invalid: letters, digits, '.', '_' or '-', at most 128.`);
  const checkUrl = flags.checkUrl ?? flags.url;
  const check: ServiceRegistration["check"] =
    flags.check === "none"
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

export function deregisterCommand(): Command {
  return addMeshOptions(
    new Command("deregister")
      .description("remove a registered server from Consul, by service id or by name (all its instances)")
      .argument("<name-or-id>"),
  ).action(async (target: string, flags: MeshFlags) =>
    withMesh(
      flags,
      async ({ consul }) => {
        const byId = await consul.agentServices(`ID == ${JSON.stringify(target)}`);
        const matches = byId.length > 0 ? byId : await consul.agentServices(`Service == ${JSON.stringify(target)}`);
        if (matches.length === 0)
          throw new UsageError(
            `No service with id or name "${target}" is registered with the Consul agent at ${consul.address.url}. See "mesh agents".`,
          );
        for (const m of matches) await consul.deregisterService(m.id);
        const selfRegistered = matches.filter((m) => m.meta["toolmesh_version"]);
        print(flags, { deregistered: matches.map((m) => m.id) }, () =>
          [
            `Deregistered ${matches.map((m) => m.id).join(", ")}.`,
            ...(selfRegistered.length
              ? [
                  `Note: ${selfRegistered.map((m) => m.id).join(", ")} register themselves again within seconds while running; stop the process to remove it for good.`,
                ]
              : []),
          ].join("\n"),
        );
      },
      { catalog: false },
    ),
  );
}
