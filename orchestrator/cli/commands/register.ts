import type { Client } from "@modelcontextprotocol/client";
import { Command, Option } from "commander";
import { a2aBridgeAgent, connectA2a } from "../../../src/a2a/bridge.ts";
import { runAgentProcess } from "../../../src/agent/main.ts";
import type { ServiceRegistration } from "../../../src/consul/client.ts";
import { UsageError } from "../../common/errors.ts";
import { addMeshOptions, print, withMesh, type MeshFlags, type MeshSession } from "../mesh.ts";
import { ClientPool } from "../../../src/client/pool.ts";
import { callerTokens } from "../../../src/client/tokens.ts";
import { describeError } from "../../../src/protocol/errors.ts";
import { buildRegistration, type RegisterFlags } from "./registration.ts";

/** Longest wait for the server to answer the MCP handshake and tools/list. @default 5000 */
export const REGISTER_PROBE_TIMEOUT_MS = 5_000;

/** Where a registered server's health comes from when nobody says otherwise. */
export const DEFAULT_REGISTER_CHECK = "tcp";

export function registerCommand(): Command {
  return addMeshOptions(
    new Command("register")
      .description("register any MCP server (Streamable HTTP) in Consul so the mesh can discover and call it")
      .option("--name <name>", "service name the mesh will know it by (lowercase, digits, dashes); required with --url")
      .option("--url <url>", "its MCP endpoint, e.g. http://127.0.0.1:3001/mcp")
      .option(
        "--a2a <card-url>",
        "instead of --url: an A2A agent (its base URL or agent card URL). Runs a bridge in the foreground, like mesh serve: an agent of the mesh, registered in Consul, whose tools are the A2A agent's skills (--name defaults to the card's name; --port picks the bridge's port)",
      )
      .option("-p, --port <port>", "with --a2a: the bridge's port (0 picks a free one)", "0")
      .option("--tag <tag>", "extra tag: a capability or intent (repeatable)", (v: string, acc: string[]) => [...acc, v], [])
      .addOption(
        new Option("--check <kind>", "health check: tcp connect, http GET (--check-url), ttl (you send passes), none")
          .choices(["tcp", "http", "ttl", "none"])
          .default(DEFAULT_REGISTER_CHECK),
      )
      .option("--check-url <url>", "URL the http check GETs (default: the MCP URL; many MCP servers answer GET with 405)")
      .option("--id <id>", "service id (default <name>-<host>-<port>)")
      .option("--description <text>", "what it does (shown by mesh agents, used for routing)")
      .option(
        "--force",
        "register even if the server does not answer MCP now, or joins an existing agent with other tools (its callers will be sent to it)",
      ),
  )
    .addHelpText(
      "after",
      `
Before registering, the server is asked for its tools over MCP (handshake and tools/list,
${REGISTER_PROBE_TIMEOUT_MS / 1_000} s at most): one that does not answer MCP is refused, and so is one joining an
existing agent with a different set of tools (its callers would be sent to it). --force
registers anyway. The mesh sends a registered server no mesh credential: if it needs a
bearer token, set MESH_TOKEN_<NAME> (e.g. MESH_TOKEN_EVERYTHING) for the processes that call it.

Example:
  mesh register --name everything --url http://127.0.0.1:3001/mcp --tag demo`,
    )
    .action(runRegister);
}

/** `mesh register`: bridges an A2A agent (--a2a), or checks an MCP server and registers it in Consul. */
async function runRegister(flags: RegisterFlags): Promise<void> {
  if (flags.a2a !== undefined) {
    if (flags.url !== undefined) throw new UsageError("Give --url (an MCP server) or --a2a (an A2A agent), not both.");
    return bridgeA2a(flags.a2a, flags);
  }
  if (flags.name === undefined || flags.url === undefined)
    throw new UsageError("mesh register needs --name and --url (an MCP server), or --a2a <card-url> (an A2A agent).");
  const reg = buildRegistration(flags as RegisterFlags & { name: string; url: string });
  await withMesh(flags, (session) => registerServer(session, reg, flags), { catalog: "on-demand" });
}

/** Runs a bridge in the foreground: an agent of the mesh whose tools are the A2A agent's skills. */
async function bridgeA2a(cardUrl: string, flags: RegisterFlags): Promise<void> {
  const deps = await connectA2a(cardUrl);
  const def = a2aBridgeAgent(deps.card, deps, flags.name);
  process.stderr.write(
    `mesh: bridging A2A agent "${deps.card.name}" (${deps.card.skills.length} skill${deps.card.skills.length === 1 ? "" : "s"}) into the mesh as "${def.name}"\n`,
  );
  await runAgentProcess(def, {
    port: flags.port,
    ...(flags.consul ? { consul: flags.consul } : {}),
    ...(flags.token ? { token: flags.token } : {}),
  });
}

/**
 * Registers a checked server with the Consul agent: refused if its id belongs to another
 * server, vetted (it must answer MCP, and be a replica of an agent it joins), then printed.
 */
async function registerServer(session: MeshSession, reg: ServiceRegistration, flags: RegisterFlags): Promise<void> {
  const { consul } = session;
  const clash = (await consul.agentServices(`ID == ${JSON.stringify(reg.id)}`))[0];
  if (clash && (clash.service !== reg.name || clash.address !== reg.address || clash.port !== reg.port)) {
    throw new UsageError(
      `Service id "${reg.id}" is already registered for ${clash.service} at ${clash.address}:${clash.port}; refusing to replace a different server. Choose another --id or deregister it first.`,
    );
  }
  const { problems: warnings, answered } = await vet(session, reg, flags);
  for (const w of warnings) process.stderr.write(`mesh: warning: ${w}\n`);
  // It just answered MCP: its check may start passing instead of critical until its first run.
  if (answered && reg.check && !reg.check.ttl) reg.check.status = "passing";
  await consul.registerService(reg);
  print(flags, { registered: reg, ...(warnings.length ? { warnings } : {}) }, () =>
    [
      `Registered ${reg.name} (id ${reg.id}) at ${flags.url} with tags ${reg.tags.join(", ")}.`,
      reg.check
        ? `Health: ${flags.check} check${flags.check === "ttl" ? ` — send passes with: curl -X PUT ${consul.address.url}/v1/agent/check/pass/service:${reg.id}` : ""}.`
        : "Health: no check (always listed as passing).",
      `Try: mesh tools ${reg.name}`,
    ].join("\n"),
  );
}

/**
 * Checks what registering would do, before it is done: the server must answer MCP (the
 * handshake and tools/list), and joining an existing agent is allowed only as a replica
 * (the same tool names). Each problem is a usage error, or with --force a warning.
 */
async function vet(
  session: MeshSession,
  reg: ServiceRegistration,
  flags: RegisterFlags,
): Promise<{ problems: string[]; answered: boolean }> {
  const problems: string[] = [];
  const pool = new ClientPool({
    clientName: "mesh-register",
    token: callerTokens(process.env),
    connectTimeoutMs: REGISTER_PROBE_TIMEOUT_MS,
  });
  let tools: string[] | undefined;
  try {
    const listed = await pool.use({ id: reg.id, url: flags.url, service: reg.name, meta: reg.meta }, async (c) => {
      recordRevision(reg, c);
      return c.listTools(undefined, { timeout: REGISTER_PROBE_TIMEOUT_MS });
    });
    tools = listed.tools.map((t) => t.name).sort();
  } catch (e) {
    problems.push(`${flags.url} does not answer MCP: ${describeError(e)}.`);
  } finally {
    await pool.closeAll();
  }
  const existing = await session.mesh.catalog.instances(reg.name);
  const others = existing.filter((i) => i.id !== reg.id);
  const known = session.mesh.catalog.agent(reg.name);
  if (others.length > 0 && tools) {
    const theirs = (known?.tools ?? []).map((t) => t.name).sort();
    if (theirs.join(",") !== tools.join(",")) {
      problems.push(
        `agent "${reg.name}" already has ${others.length} instance(s) (${others.map((i) => i.id).join(", ")}) with tools ${theirs.join(", ") || "(none listed)"}; this server offers ${tools.join(", ") || "none"}, so it is not a replica of it, and ${reg.name}'s callers would be sent to it. Register it under another --name.`,
      );
    }
  }
  if (problems.length > 0 && !flags.force) throw new UsageError(`${problems.join(" ")} Nothing was registered (--force registers anyway).`);
  return { problems, answered: tools !== undefined };
}

/**
 * Records in the registration which revisions the server answered (its server/discover, or
 * the one initialize settled on) and, where it fits in Consul meta, its capabilities: its
 * callers then connect without probing it again.
 */
function recordRevision(reg: ServiceRegistration, client: Client): void {
  const discover = client.getDiscoverResult();
  if (discover) {
    reg.meta["mcp_protocols"] = discover.supportedVersions.join(",");
    const capabilities = JSON.stringify(discover.capabilities ?? {});
    if (capabilities.length <= 512) reg.meta["mcp_capabilities"] = capabilities;
  } else {
    const version = client.getNegotiatedProtocolVersion();
    if (version) reg.meta["mcp_protocols"] = version;
  }
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
      { catalog: "none" },
    ),
  );
}
