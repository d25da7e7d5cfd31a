import { hostname } from "node:os";
import { serveStdio } from "@modelcontextprotocol/server/stdio";
import { ConsulClient, type ServiceRegistration } from "../consul/client.ts";
import { consulSettings } from "../consul/settings.ts";
import type { MeshCaller } from "../client/meshCaller.ts";
import { MeshClient } from "../client/meshClient.ts";
import { createLogger, type Logger } from "../logger.ts";
import { ConsulKvState, MemoryState, type SharedState } from "../state/sharedState.ts";
import { advertisedHost, type AgentConfig } from "./config.ts";
import type { AgentDefinition, AgentRuntime } from "./definition.ts";
import { serveHttp, type HttpServer } from "../http/server.ts";
import { McpEndpoint } from "../mcp/endpoint.ts";
import { describeError } from "../protocol/errors.ts";
import { DEFAULT_IDEMPOTENCY_WINDOW_MS, IdempotencyLedger, sweepIdempotencyRecords } from "./idempotency.ts";
import { TaskEngine } from "./taskEngine.ts";
import { sweepTaskRecords } from "./tasks.ts";
import { TASK_SWEEP_INTERVAL_MS } from "../protocol/tasks.ts";
import { agentTokens, TokenVerifier } from "../http/auth.ts";
import { callerTokens } from "../client/tokens.ts";
import { loadTokens } from "../protocol/credentials.ts";
import { identityKeys, IdentityVerifier } from "../http/identity.ts";
import { agentServing, LiveServers } from "./server.ts";
import { Registrar } from "./registrar.ts";
import { ToolRegistry, type ToolSpec } from "./tools.ts";
import { MeshError } from "../protocol/errors.ts";
import { hashTools } from "./toolsHash.ts";

/** Version of the toolmesh agent kit, published in Consul meta. */
export const TOOLMESH_VERSION = "0.2.0";
/** The MCP revisions every toolmesh agent serves on its one URL, newest first (Consul meta `mcp_protocols`). */
export const SERVED_PROTOCOLS = ["2026-07-28", "2025-11-25"] as const;
/** KV prefix under which agents keep the results of calls with idempotency keys. @default "toolmesh/idempotency/" */
export const IDEMPOTENCY_KV_PREFIX = "toolmesh/idempotency/";
/** KV prefix of task records (one subtree per agent kind). @default "toolmesh/tasks/" */
export const TASKS_KV_PREFIX = "toolmesh/tasks/";

/** KV prefix under which agents keep shared state. @default "toolmesh/state/" */
export const STATE_KV_PREFIX = "toolmesh/state/";

export interface RunningAgent {
  readonly name: string;
  /** The MCP endpoint (HTTP transport only). */
  readonly url: string | undefined;
  /** The Consul service id (HTTP transport only). */
  readonly instanceId: string | undefined;
  readonly logger: Logger;
  readonly registrar: Registrar | undefined;
  /** Drains and stops; resolves when everything is closed. Safe to call twice. */
  stop(reason?: string): Promise<void>;
  /** Resolves when the agent has stopped (stdio: when the client closes stdin). */
  readonly done: Promise<void>;
}

/** Starts an agent on the configured transport; registers it in Consul when serving HTTP. */
export async function startAgent<D>(def: AgentDefinition<D>, config: AgentConfig, logger?: Logger): Promise<RunningAgent> {
  const stdio = config.transport === "stdio";
  const log =
    logger ?? createLogger({ name: def.name, level: config.logLevel, destination: stdio ? "stderr" : "stdout", base: { agent: def.name } });
  const consul = new ConsulClient(consulSettings({ address: config.consulAddr, token: config.consulToken }));
  // Bearer tokens: the mesh tokens this agent accepts (with the credential for its own kind
  // derived from each); on its onward calls it sends each agent that agent's credential,
  // derived from the first (unless MESH_TOKEN_<AGENT> names a token for that agent).
  const tokens = loadTokens({ value: config.meshToken, file: config.meshTokenFile, what: "MESH_TOKEN" });
  const accepted = agentTokens(def.name, tokens);
  const metricsTokens = loadTokens({ value: config.metricsToken, what: "MESH_METRICS_TOKEN" });
  const tokenFor = callerTokens(process.env, tokens);
  const signingKeys = identityKeys(process.env, tokens);
  const mesh: MeshCaller = new MeshClient({
    consul,
    callerName: def.name,
    logger: log,
    token: tokenFor,
    identityKeys: signingKeys,
  });
  // stdio is one private process for one desktop client: its state stays local by default.
  const stateKind = config.state ?? (stdio ? "memory" : "consul");
  const state: SharedState = stateKind === "memory" ? new MemoryState() : new ConsulKvState(consul, `${STATE_KV_PREFIX}${def.name}/`);
  // Set once the agent serves: what notify and addTool reach.
  let registry: ToolRegistry | undefined;
  let endpoint: McpEndpoint | undefined;
  let registrar: Registrar | undefined;
  // Servers of 2025-era sessions and stdio connections; 2026-07-28 HTTP clients listen on the endpoint.
  const live = new LiveServers();
  const notify: AgentRuntime["notify"] = {
    toolsChanged: () => {
      endpoint?.notify.toolsChanged();
      live.each((s) => s.sendToolListChanged());
    },
    promptsChanged: () => {
      endpoint?.notify.promptsChanged();
      live.each((s) => s.sendPromptListChanged());
    },
    resourcesChanged: () => {
      endpoint?.notify.resourcesChanged();
      live.each((s) => s.sendResourceListChanged());
    },
    resourceUpdated: (uri) => {
      endpoint?.notify.resourceUpdated(uri);
      live.resourceUpdated(uri);
    },
  };
  const addTool = (spec: ToolSpec) => {
    if (!registry) throw new MeshError("CONFIG_INVALID", "addTool is for tools added while the agent runs; list the others in tools().");
    registry.add(spec);
    void registrar?.updateMeta({ tools_hash: hashTools(registry.listing), tools_count: String(registry.size) });
    notify.toolsChanged();
  };
  const runtime: AgentRuntime = { logger: log, consul, state, mesh, notify, addTool, tokenFor, identityKeys: signingKeys };
  // Results kept for idempotency keys: in Consul KV they are shared by every replica, so a
  // repeat that fails over to another instance still gets the first result.
  const keyPrefix = `${IDEMPOTENCY_KV_PREFIX}${def.name}/`;
  const keyState: SharedState = stateKind === "memory" ? new MemoryState() : new ConsulKvState(consul, keyPrefix);
  const deps = await def.createDeps(runtime);

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  // Whether a sibling instance is alive, per Consul (said to a repeat waiting on its idempotency claim).
  const isAlive = async (id: string) =>
    (await consul.healthService(def.name, { passing: true, timeoutMs: 2_000 })).value.some((e) => e.id === id);
  let instanceId = config.instanceId;
  const ledger = new IdempotencyLedger({
    agent: def.name,
    instance: () => instanceId ?? "stdio",
    state: keyState,
    leaseMs: config.claimLeaseMs,
    ...(stdio ? {} : { isAlive }),
    logger: log,
  });
  // The tools are built once; every server instance (one per 2026-07-28 request, one per
  // 2025-11-25 session or stdio connection) answers from the same registry and pipeline.
  registry = new ToolRegistry(def.tools(deps));
  const tools = registry;
  // Task records in Consul KV: any replica answers tasks/get, and a result outlives its replica.
  const taskPrefix = `${TASKS_KV_PREFIX}${def.name}/`;
  const tasks = tools.hasTasks
    ? new TaskEngine({
        state: stateKind === "memory" ? new MemoryState() : new ConsulKvState(consul, taskPrefix),
        instance: () => instanceId ?? "stdio",
        logger: log,
      })
    : undefined;
  const { serverFor, fastToolCalls, advertised } = agentServing({
    def,
    deps,
    registry: tools,
    ledger,
    live,
    logger: log,
    instance: () => instanceId ?? "stdio",
    ...(tasks ? { tasks } : {}),
  });

  if (stdio) {
    const handle = serveStdio(({ era }) => serverFor(era, true), {
      onerror: (e) => log.debug({ err: e.message }, "stdio connection error"),
    });
    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        await handle.close().catch(() => undefined);
        await def.dispose?.(deps);
        await mesh.close();
        consul.destroy();
        resolveDone();
      })());
    // The client closing stdin ends the connection, and the process with it.
    process.stdin.once("end", () => void stop());
    process.stdin.once("close", () => void stop());
    log.info({ transport: "stdio", tools: tools.size }, "agent ready on stdio");
    return { name: def.name, url: undefined, instanceId: undefined, logger: log, registrar: undefined, stop, done };
  }

  const toolsHash = hashTools(tools.listing);
  endpoint = new McpEndpoint({
    createServer: serverFor,
    ...(fastToolCalls ? { fastToolCalls } : {}),
    maxSessions: config.maxSessions,
    idleMs: config.sessionIdleMs,
    maxBodyBytes: config.maxBodyBytes,
    logger: log,
  });
  const http: HttpServer = await serveHttp({
    host: config.host,
    port: config.port,
    endpoint: (path) => (path === config.mcpPath ? endpoint : undefined),
    endpointsHint: config.mcpPath,
    maxConcurrentCalls: config.maxConcurrentCalls,
    maxBodyBytes: config.maxBodyBytes,
    verifier: new TokenVerifier(accepted),
    // Who a call is for, as the gateway (or an agent acting for that user) signed it.
    identityVerifier: new IdentityVerifier(def.name, tokens),
    // A scraper's own token reads /metrics and nothing else (where a token is required at all).
    ...(accepted.length > 0 && metricsTokens.length > 0 ? { metricsVerifier: new TokenVerifier([...accepted, ...metricsTokens]) } : {}),
    healthInfo: () => ({ agent: def.name, id: instanceId, sessions: endpoint?.legacy.size ?? 0, evicted: endpoint?.legacy.evicted ?? 0 }),
    allowedHosts: [advertisedHost(config), hostname(), ...config.allowedHosts],
    logger: log,
  });
  const url = `${http.origin}${config.mcpPath}`;
  const address = advertisedHost(config);
  instanceId ??= `${def.name}-${hostname()}-${http.port}`;
  const registration: ServiceRegistration = {
    id: instanceId,
    name: def.name,
    address,
    port: http.port,
    tags: ["mcp", ...def.intents],
    meta: buildMeta(def, config, stateKind, toolsHash, tools.size, advertised()),
    check: {
      name: `${def.name} MCP health`,
      http: `http://${address.includes(":") ? `[${address}]` : address}:${http.port}/healthz`,
      interval: config.checkInterval,
      timeout: "2s",
      deregisterCriticalServiceAfter: config.deregisterAfter,
    },
  };
  // Check our own health endpoint at the advertised address before registering: it proves
  // Consul's check will reach us, and lets the check start passing instead of waiting
  // critical for its first run (up to one interval, randomly staggered).
  if (config.register && registration.check) {
    const healthy = await selfCheck(registration.check.http!);
    if (healthy) registration.check.status = "passing";
    else
      log.warn(
        { url: registration.check.http },
        "own health endpoint is not reachable at the advertised address; Consul's check will fail. Set --advertise-host to an address Consul can reach",
      );
  }
  registrar = config.register
    ? new Registrar({ consul, registration, reconcileIntervalMs: config.reconcileIntervalMs, logger: log })
    : undefined;
  await registrar?.start();
  log.info(
    { url, instanceId, tools: tools.size, toolsHash, registered: Boolean(registrar), state: stateKind, protocols: SERVED_PROTOCOLS },
    "agent ready",
  );

  // Forget task records past their TTL.
  const taskSweeper =
    tasks && stateKind === "consul"
      ? setInterval(
          () =>
            void sweepTaskRecords(consul, taskPrefix)
              .then((n) => n > 0 && log.debug({ deleted: n }, "expired task records swept"))
              .catch((e: unknown) => log.debug({ err: describeError(e) }, "task sweep failed; trying again later")),
          TASK_SWEEP_INTERVAL_MS + Math.random() * 30_000,
        ).unref()
      : undefined;

  // Forget idempotency records no repeat can use any more (every replica sweeps, with CAS).
  const sweeper =
    stateKind === "consul"
      ? setInterval(
          () =>
            void sweepIdempotencyRecords(consul, keyPrefix, DEFAULT_IDEMPOTENCY_WINDOW_MS)
              .then((n) => n > 0 && log.debug({ deleted: n }, "idempotency records swept"))
              .catch((e: unknown) => log.debug({ err: describeError(e) }, "idempotency sweep failed; trying again later")),
          DEFAULT_IDEMPOTENCY_WINDOW_MS / 2 + Math.random() * 30_000,
        ).unref()
      : undefined;

  let stopping: Promise<void> | undefined;
  const stop = (reason = "stop requested") =>
    (stopping ??= Promise.resolve().then(async () => {
      clearInterval(sweeper);
      clearInterval(taskSweeper);
      log.info({ reason, inFlight: http.inFlight }, "shutting down: draining, deregistering");
      http.startDraining();
      await registrar?.stop();
      const idle = await http.waitIdle(config.drainTimeoutMs);
      if (!idle)
        log.warn({ inFlight: http.inFlight, drainTimeoutMs: config.drainTimeoutMs }, "drain timeout: closing with calls still in flight");
      // Tasks still running here cannot finish: their records say so (a client polling sees it).
      await tasks?.close();
      await endpoint?.close();
      await http.close();
      await def.dispose?.(deps);
      await mesh.close();
      consul.destroy();
      log.info("stopped");
      resolveDone();
    }));
  return { name: def.name, url, instanceId, logger: log, registrar, stop, done };
}

/** Consul meta: ≤ 64 keys, keys [A-Za-z0-9_-], values ≤ 512 characters. */
function buildMeta(
  def: AgentDefinition<unknown>,
  config: AgentConfig,
  stateKind: "consul" | "memory",
  toolsHash: string,
  toolCount: number,
  capabilities: Record<string, unknown>,
): Record<string, string> {
  return {
    mcp_path: config.mcpPath,
    mcp_transport: "streamable-http",
    // The revisions served, and what a 2026-07-28 server/discover would answer: callers
    // connect from these without a probe.
    mcp_protocols: SERVED_PROTOCOLS.join(","),
    mcp_capabilities: JSON.stringify({ ...capabilities, tools: { listChanged: true } }).slice(0, 512),
    // Where Prometheus scrapes it (consul_sd_configs: __meta_consul_service_metadata_metrics_path).
    metrics_path: "/metrics",
    agent_version: def.version,
    toolmesh_version: TOOLMESH_VERSION,
    tools_hash: toolsHash,
    tools_count: String(toolCount),
    description: def.description.slice(0, 512),
    // Callers fail keyed calls over only when every replica deduplicates in shared state.
    idempotency: stateKind === "consul" ? "shared" : "local",
    ...(def.stateful ? { stateful: "true" } : {}),
  };
}

async function selfCheck(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}
