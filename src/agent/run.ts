import { hostname } from "node:os";
import { serveStdio } from "@modelcontextprotocol/server/stdio";
import { ConsulClient } from "../consul/client.ts";
import { consulSettings } from "../consul/settings.ts";
import type { MeshCaller } from "../client/meshCaller.ts";
import { MeshClient } from "../client/meshClient.ts";
import { createLogger, type Logger } from "../logger.ts";
import { ConsulKvState, MemoryState, type SharedState } from "../state/sharedState.ts";
import { serveHttp, type HttpServer } from "../http/server.ts";
import { McpEndpoint } from "../mcp/endpoint.ts";
import { advertisedHost, type AgentConfig } from "./config.ts";
import { AgentCredentials } from "./credentials.ts";
import type { AgentDefinition, AgentRuntime } from "./definition.ts";
import { AgentHooks } from "./hooks.ts";
import { IdempotencyLedger } from "./idempotency.ts";
import type { Registrar } from "./registrar.ts";
import { registrarFor, serviceRegistration } from "./registration.ts";
import { agentServing } from "./server.ts";
import { startSweeps } from "./sweeps.ts";
import { TaskEngine } from "./taskEngine.ts";
import { ToolRegistry } from "./tools.ts";
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
  return new AgentInstance(def, config, logger).start();
}

/** What `agentServing` makes of an agent: its server factory, fast path and advertised capabilities. */
type Serving = ReturnType<typeof agentServing>;

/**
 * One instance of an agent, from its parts to serving: its Consul client, credentials and
 * mesh caller, the stores of its state, idempotency records and tasks (Consul KV, or memory
 * on stdio by default), its deps and tools, then one transport (stdio, or HTTP registered in
 * Consul) and the stop that drains and closes it all.
 */
class AgentInstance<D> {
  readonly done: Promise<void>;
  private readonly def: AgentDefinition<D>;
  private readonly config: AgentConfig;
  private readonly stdio: boolean;
  private readonly log: Logger;
  private readonly consul: ConsulClient;
  private readonly credentials: AgentCredentials;
  private readonly mesh: MeshCaller;
  private readonly stateKind: "consul" | "memory";
  private readonly hooks = new AgentHooks();
  /** The Consul service id: configured, or made once the HTTP port is known. */
  private id: string | undefined;
  private resolveDone!: () => void;

  constructor(def: AgentDefinition<D>, config: AgentConfig, logger: Logger | undefined) {
    this.def = def;
    this.config = config;
    this.stdio = config.transport === "stdio";
    this.log =
      logger ??
      createLogger({ name: def.name, level: config.logLevel, destination: this.stdio ? "stderr" : "stdout", base: { agent: def.name } });
    this.consul = new ConsulClient(consulSettings({ address: config.consulAddr, token: config.consulToken }));
    this.credentials = new AgentCredentials(def.name, config);
    const { tokenFor, identityKeys } = this.credentials;
    this.mesh = new MeshClient({ consul: this.consul, callerName: def.name, logger: this.log, token: tokenFor, identityKeys });
    // stdio is one private process for one desktop client: its state stays local by default.
    this.stateKind = config.state ?? (this.stdio ? "memory" : "consul");
    this.id = config.instanceId;
    this.done = new Promise<void>((r) => (this.resolveDone = r));
  }

  /** This instance's id, as its ledger, tasks and hop reports name it. */
  private readonly instance = (): string => this.id ?? "stdio";

  /** Builds the deps, the tools (once: every server instance answers from them) and the pipeline's stores, then serves. */
  async start(): Promise<RunningAgent> {
    const { def, log } = this;
    const state = this.store(STATE_KV_PREFIX);
    const runtime: AgentRuntime = {
      logger: log,
      consul: this.consul,
      state,
      mesh: this.mesh,
      notify: this.hooks.notify,
      addTool: this.hooks.addTool,
      tokenFor: this.credentials.tokenFor,
      identityKeys: this.credentials.identityKeys,
    };
    // Results kept for idempotency keys: in Consul KV they are shared by every replica, so a
    // repeat that fails over to another instance still gets the first result.
    const keyState = this.store(IDEMPOTENCY_KV_PREFIX);
    const deps = await def.createDeps(runtime);
    const ledger = this.ledger(keyState);
    const tools = new ToolRegistry(def.tools(deps));
    this.hooks.registry = tools;
    // Task records in Consul KV: any replica answers tasks/get, and a result outlives its replica.
    const tasks = tools.hasTasks ? new TaskEngine({ state: this.store(TASKS_KV_PREFIX), instance: this.instance, logger: log }) : undefined;
    const serving = agentServing({
      def,
      deps,
      registry: tools,
      ledger,
      live: this.hooks.live,
      logger: log,
      instance: this.instance,
      ...(tasks ? { tasks } : {}),
    });
    if (this.stdio) return this.onStdio(deps, serving, tools);
    return this.onHttp(deps, serving, tools, tasks);
  }

  /** Where this agent keeps records under `prefix` (one subtree per agent kind): Consul KV, or this process's memory. */
  private store(prefix: string): SharedState {
    return this.stateKind === "memory" ? new MemoryState() : new ConsulKvState(this.consul, `${prefix}${this.def.name}/`);
  }

  private ledger(keyState: SharedState): IdempotencyLedger {
    // Whether a sibling instance is alive, per Consul (said to a repeat waiting on its idempotency claim).
    const isAlive = async (id: string) =>
      (await this.consul.healthService(this.def.name, { passing: true, timeoutMs: 2_000 })).value.some((e) => e.id === id);
    return new IdempotencyLedger({
      agent: this.def.name,
      instance: this.instance,
      state: keyState,
      leaseMs: this.config.claimLeaseMs,
      ...(this.stdio ? {} : { isAlive }),
      logger: this.log,
    });
  }

  /** Serves one desktop client on stdin/stdout; the client closing stdin stops the agent, and the process with it. */
  private onStdio(deps: D, serving: Serving, tools: ToolRegistry): RunningAgent {
    const { def, log } = this;
    const handle = serveStdio(({ era }) => serving.serverFor(era, true), {
      onerror: (e) => log.debug({ err: e.message }, "stdio connection error"),
    });
    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        await handle.close().catch(() => undefined);
        await def.dispose?.(deps);
        await this.mesh.close();
        this.consul.destroy();
        this.resolveDone();
      })());
    process.stdin.once("end", () => void stop());
    process.stdin.once("close", () => void stop());
    log.info({ transport: "stdio", tools: tools.size }, "agent ready on stdio");
    return { name: def.name, url: undefined, instanceId: undefined, logger: log, registrar: undefined, stop, done: this.done };
  }

  /** Serves Streamable HTTP, registers in Consul (when configured) and starts the record sweeps. */
  private async onHttp(deps: D, serving: Serving, tools: ToolRegistry, tasks: TaskEngine | undefined): Promise<RunningAgent> {
    const { def, config, log } = this;
    const toolsHash = hashTools(tools.listing);
    const endpoint = new McpEndpoint({
      createServer: serving.serverFor,
      ...(serving.fastToolCalls ? { fastToolCalls: serving.fastToolCalls } : {}),
      maxSessions: config.maxSessions,
      idleMs: config.sessionIdleMs,
      maxBodyBytes: config.maxBodyBytes,
      logger: log,
    });
    this.hooks.endpoint = endpoint;
    const http = await this.serveHttp(endpoint);
    const url = `${http.origin}${config.mcpPath}`;
    this.id ??= `${def.name}-${hostname()}-${http.port}`;
    const meta = buildMeta(def, config, this.stateKind, toolsHash, tools.size, serving.advertised());
    const registration = serviceRegistration(def, config, { id: this.id, port: http.port, meta });
    const registrar = await registrarFor(this.consul, registration, config, log);
    this.hooks.registrar = registrar;
    await registrar?.start();
    log.info(
      {
        url,
        instanceId: this.id,
        tools: tools.size,
        toolsHash,
        registered: Boolean(registrar),
        state: this.stateKind,
        protocols: SERVED_PROTOCOLS,
      },
      "agent ready",
    );
    const stopSweeps = this.startSweeps(tasks);
    let stopping: Promise<void> | undefined;
    const stop = (reason = "stop requested") =>
      (stopping ??= Promise.resolve().then(() => this.shutdown(reason, { http, endpoint, tasks, deps, stopSweeps })));
    return { name: def.name, url, instanceId: this.id, logger: log, registrar, stop, done: this.done };
  }

  /** Sweeps of the Consul KV records no one can use any more (memory forgets them with the process); returns their stop. */
  private startSweeps(tasks: TaskEngine | undefined): () => void {
    if (this.stateKind !== "consul") return () => undefined;
    const name = this.def.name;
    const prefixes = { idempotency: `${IDEMPOTENCY_KV_PREFIX}${name}/`, ...(tasks ? { tasks: `${TASKS_KV_PREFIX}${name}/` } : {}) };
    return startSweeps(this.consul, prefixes, this.log);
  }

  private serveHttp(endpoint: McpEndpoint): Promise<HttpServer> {
    const { def, config } = this;
    return serveHttp({
      host: config.host,
      port: config.port,
      endpoint: (path) => (path === config.mcpPath ? endpoint : undefined),
      endpointsHint: config.mcpPath,
      maxConcurrentCalls: config.maxConcurrentCalls,
      maxBodyBytes: config.maxBodyBytes,
      ...this.credentials.httpAuth(),
      healthInfo: () => ({ agent: def.name, id: this.id, sessions: endpoint.legacy.size, evicted: endpoint.legacy.evicted }),
      allowedHosts: [advertisedHost(config), hostname(), ...config.allowedHosts],
      logger: this.log,
    });
  }

  /** Drains (new calls refused, /healthz 503), deregisters, waits for calls in flight up to the drain timeout, then closes everything. */
  private async shutdown(
    reason: string,
    parts: { http: HttpServer; endpoint: McpEndpoint; tasks: TaskEngine | undefined; deps: D; stopSweeps: () => void },
  ): Promise<void> {
    const { http } = parts;
    const log = this.log;
    parts.stopSweeps();
    log.info({ reason, inFlight: http.inFlight }, "shutting down: draining, deregistering");
    http.startDraining();
    await this.hooks.registrar?.stop();
    const idle = await http.waitIdle(this.config.drainTimeoutMs);
    if (!idle)
      log.warn(
        { inFlight: http.inFlight, drainTimeoutMs: this.config.drainTimeoutMs },
        "drain timeout: closing with calls still in flight",
      );
    // Tasks still running here cannot finish: their records say so (a client polling sees it).
    await parts.tasks?.close();
    await parts.endpoint.close();
    await http.close();
    await this.def.dispose?.(parts.deps);
    await this.mesh.close();
    this.consul.destroy();
    log.info("stopped");
    this.resolveDone();
  }
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
