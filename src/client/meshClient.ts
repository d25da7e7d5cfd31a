import { ProtocolError, SdkError, SdkErrorCode, SdkHttpError, type CallToolResult, type Client } from "@modelcontextprotocol/client";
import type { ConsulClient } from "../consul/client.ts";
import type { MeshContext } from "../context/meshContext.ts";
import { Catalog, isToolmesh, type CatalogAgent } from "../discovery/catalog.ts";
import { DatacenterFailover, FAILOVER_DCS_ENV, parseFailoverDatacenters } from "../discovery/failover.ts";
import { identityKeys, signIdentity, type CallerIdentity, type IdentityKeyFor } from "../http/identity.ts";
import { currentIdentity } from "../http/principal.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { MeshError, describeError, isMeshError } from "../protocol/errors.ts";
import { IDENTITY_META } from "../protocol/keys.ts";
import { AttemptSender } from "./attempt.ts";
import { tracedAttempt } from "./attemptTrace.ts";
import { callContext, deadlineSignals, type Call } from "./call.ts";
import { unauthorized } from "./callErrors.ts";
import { InstanceHealth, type InstanceHealthOptions } from "./instanceHealth.ts";
import { InstanceSource, type Found } from "./instanceSource.ts";
import { DEFAULT_CALL_TIMEOUT_MS, type CallToolOptions, type MeshCaller } from "./meshCaller.ts";
import { RoundRobinPicker, type InstancePicker } from "./picker.ts";
import { placeCall } from "./placement.ts";
import { ClientPool, type ListKind } from "./pool.ts";
import { attemptInOrder } from "./retries.ts";
import { callerTokens, type TokenFor } from "./tokens.ts";
import { UpstreamIdentities, type UpstreamIdentity } from "./upstreamIdentity.ts";

/** How many quota refusals (RATE_LIMITED) one call waits out before it gives the error to its caller. @default 3 */
export const MAX_RATE_LIMIT_WAITS = 3;

/** Waits `ms`, or until `signal` aborts (then rejects with its reason). */
function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const done = () => {
      signal?.removeEventListener("abort", stop);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener("abort", stop, { once: true });
  });
}

export interface MeshClientOptions {
  consul: ConsulClient;
  /** This caller's name: the MCP client name and its entry in the caller chain. */
  callerName: string;
  /** "all" watches every mcp service (orchestrator, CLI); "on-demand" only those called. @default "on-demand" */
  catalogMode?: "all" | "on-demand";
  /** @default RoundRobinPicker */
  picker?: InstancePicker;
  /** Passive health: how failing instances are ejected and re-admitted. */
  health?: InstanceHealthOptions;
  /** The bearer token for an agent's instances. @default MESH_TOKEN_<AGENT>, else for toolmesh agents the agent's credential derived from MESH_TOKEN (callerTokens) */
  token?: TokenFor;
  /**
   * The keys this caller signs the identity of the user a call is for with (identity.ts), per
   * agent kind. @default identityKeys(process.env): derived from MESH_TOKEN_<AGENT> or MESH_TOKEN
   */
  identityKeys?: IdentityKeyFor;
  /** Calls sent to one instance at once; more wait. @default DEFAULT_MAX_CONCURRENT_PER_INSTANCE */
  maxConcurrentPerInstance?: number;
  /** Calls that may wait for one instance; more are refused (OVERLOADED). @default DEFAULT_MAX_QUEUED_PER_INSTANCE */
  maxQueuedPerInstance?: number;
  /** Longest wait for one instance's tool list. @default DEFAULT_TOOLS_TIMEOUT_MS */
  toolsTimeoutMs?: number;
  /** Hand 2026-07-28 input requests back to the caller instead of fulfilling them (the gateway relays them). */
  relayInputRequests?: boolean;
  /** Installs handlers on each new connection (e.g. the gateway's for resource updates). */
  configure?: (client: Client) => void;
  /** An agent said one of its lists changed (its tools are fetched again first). */
  onListChanged?: (agent: string, list: ListKind) => void;
  /**
   * Other Consul datacenters to send read-only calls to, in order, when this one has no healthy
   * instance of the agent (see discovery/failover.ts). @default MESH_FAILOVER_DCS, else none
   */
  failoverDatacenters?: readonly string[];
  logger?: Logger;
}

export interface CallOutcome {
  result: CallToolResult;
  /** The instance that answered. */
  instance: string;
  /** The context the call carried. */
  context: MeshContext;
}

/**
 * Calls tools anywhere in the mesh: instances from the live catalog, one pooled client per
 * instance (2026-07-28 with toolmesh agents: one POST per call, no session), a pluggable
 * choice of instance, the MeshContext in `_meta`, the deadline enforced on both sides
 * (cancelling the call at the agent), and failover only for calls that provably never ran,
 * or whose tool is annotated read-only or idempotent, or that carry an idempotency key.
 */
export class MeshClient implements MeshCaller {
  readonly catalog: Catalog;
  readonly pool: ClientPool;
  /** Which instances this caller keeps out of rotation after failures. */
  readonly health: InstanceHealth;
  /** The bearer token this caller sends to an agent (its own credentials, never a client's). */
  readonly tokenFor: TokenFor;
  private readonly callerName: string;
  private readonly picker: InstancePicker;
  private readonly logger: Logger;
  /** Where a call's instances come from: this datacenter's catalog, else a failover datacenter. */
  private readonly source: InstanceSource;
  private readonly attempts: AttemptSender;
  private readonly identities = new UpstreamIdentities();
  private readonly identityKeyFor: IdentityKeyFor;

  constructor(options: MeshClientOptions) {
    this.callerName = options.callerName;
    this.identityKeyFor = options.identityKeys ?? identityKeys(process.env);
    this.logger = (options.logger ?? silentLogger).child({ component: "mesh-client" });
    this.picker = options.picker ?? new RoundRobinPicker();
    this.tokenFor = options.token ?? callerTokens(process.env);
    this.pool = this.createPool(options);
    this.catalog = this.createCatalog(options);
    this.health = new InstanceHealth({ logger: options.logger, ...options.health });
    this.source = new InstanceSource(this.catalog, this.createFailover(options), options.consul.address.url);
    this.attempts = new AttemptSender({
      health: this.health,
      logger: this.logger,
      tokenFor: this.tokenFor,
      identityMeta: (agent, identity) => this.identityMeta(agent, identity),
    });
    this.followCatalog();
  }

  /** The connections: one per instance; an agent's tools/list_changed refreshes its tools in the catalog first. */
  private createPool(options: MeshClientOptions): ClientPool {
    return new ClientPool({
      clientName: `toolmesh-${options.callerName}`,
      token: this.tokenFor,
      logger: options.logger,
      ...(options.relayInputRequests ? { relayInputRequests: true } : {}),
      ...(options.configure ? { configure: options.configure } : {}),
      ...(options.maxConcurrentPerInstance ? { maxConcurrentPerInstance: options.maxConcurrentPerInstance } : {}),
      ...(options.maxQueuedPerInstance !== undefined ? { maxQueuedPerInstance: options.maxQueuedPerInstance } : {}),
      onListChanged: (id, list) => {
        const agent = this.catalog.agentOf(id);
        if (!agent) return;
        if (list === "tools") void this.catalog.refreshTools(agent);
        options.onListChanged?.(agent, list);
      },
    });
  }

  /**
   * The live catalog. Tool lists come over this caller's own connections; a failure to
   * connect is the reason. The catalog asks only when something changed (a new tools hash, a
   * new instance): past the client's response cache, which would answer from the old list
   * until its ttlMs.
   */
  private createCatalog(options: MeshClientOptions): Catalog {
    return new Catalog({
      consul: options.consul,
      fetchTools: async (instance, signal) =>
        (
          await this.pool.use(
            instance,
            async (c) => {
              const listing = await c.listTools(undefined, { signal, cacheMode: "refresh" });
              await this.identities.learn(instance.service, c, signal);
              return listing;
            },
            signal,
          )
        ).tools,
      ...(options.toolsTimeoutMs !== undefined ? { toolsTimeoutMs: options.toolsTimeoutMs } : {}),
      logger: options.logger,
      mode: options.catalogMode ?? "on-demand",
    });
  }

  /** The other datacenters read-only calls may go to (MESH_FAILOVER_DCS), if any are set. */
  private createFailover(options: MeshClientOptions): DatacenterFailover | undefined {
    const datacenters = options.failoverDatacenters ?? parseFailoverDatacenters(process.env[FAILOVER_DCS_ENV]);
    if (datacenters.length === 0) return undefined;
    return new DatacenterFailover({
      consul: options.consul,
      datacenters,
      fetchTools: async (instance, signal) => (await this.pool.use(instance, (c) => c.listTools(undefined, { signal }), signal)).tools,
      ...(options.toolsTimeoutMs !== undefined ? { toolsTimeoutMs: options.toolsTimeoutMs } : {}),
      logger: options.logger,
    });
  }

  /** Instances that left drop their connections; an instance that left the healthy set and is back is re-admitted at once. */
  private followCatalog(): void {
    let known = new Set<string>();
    this.catalog.on("change", (event) => {
      for (const id of event.left ?? []) void this.pool.drop(id);
      const now = new Set(this.catalog.agents().flatMap((a) => a.instances.map((i) => i.id)));
      for (const id of now) if (!known.has(id)) this.health.readmit(id);
      this.health.retain(now);
      known = now;
    });
  }

  /**
   * What an agent kind says it is (serverInfo and capabilities, as its replica answered the
   * last tool-list fetch), for a view that presents the agent as itself; undefined until known.
   */
  identityOf(agent: string): UpstreamIdentity | undefined {
    return this.identities.get(agent);
  }

  /** Loads the catalog (in "all" mode); optional for on-demand use. */
  async start(): Promise<void> {
    await this.catalog.start();
  }

  /**
   * The `_meta` entry that tells a toolmesh agent who the call is for: the identity of the
   * request being served (the gateway's client, or the user an agent's own call was made for),
   * signed for that agent's kind. Nothing for servers that are not toolmesh agents (they get
   * no assertion to keep or replay), nor without a mesh token to sign with.
   */
  identityMeta(agent: string, identity: CallerIdentity | undefined = currentIdentity()): Record<string, string> {
    if (!identity) return {};
    const instances = this.catalog.agent(agent)?.instances ?? [];
    if (instances.length > 0 && !instances.every((i) => isToolmesh(i.meta))) return {};
    const key = this.identityKeyFor(agent);
    return key ? { [IDENTITY_META]: signIdentity(key, { agent, signer: this.callerName, identity }) } : {};
  }

  async callTool(agent: string, tool: string, args: Record<string, unknown>, options: CallToolOptions = {}): Promise<CallToolResult> {
    return (await this.call(agent, tool, args, options)).result;
  }

  /**
   * Calls a tool. A refusal for a quota (RATE_LIMITED: nothing ran) is waited out and the call
   * sent again, as long as the server's retry-after fits in the call's time (at most
   * MAX_RATE_LIMIT_WAITS times); otherwise the RATE_LIMITED error, retryable, with
   * `details.retryAfterMs`.
   */
  async call(agent: string, tool: string, args: Record<string, unknown>, options: CallToolOptions = {}): Promise<CallOutcome> {
    const started = Date.now();
    const budget = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    for (let waits = 0; ; waits++) {
      try {
        return await this.callOnce(agent, tool, args, { ...options, timeoutMs: Math.max(1, budget - (Date.now() - started)) });
      } catch (e) {
        const after = isMeshError(e) && e.code === "RATE_LIMITED" ? Number(e.details["retryAfterMs"]) : NaN;
        if (!Number.isFinite(after) || waits >= MAX_RATE_LIMIT_WAITS || Date.now() + after >= started + budget) throw e;
        this.logger.info({ agent, tool, retryAfterMs: after }, "rate limited: waiting as the server asks, then calling again");
        await abortableSleep(after, options.signal);
      }
    }
  }

  /**
   * One call: discovery (within the deadline), placement, then attempts in order until
   * one answers or the outcome of a failure says to stop.
   */
  private async callOnce(agent: string, tool: string, args: Record<string, unknown>, options: CallToolOptions): Promise<CallOutcome> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const started = Date.now();
    const { ctx, deadline } = callContext(this.callerName, agent, options, started + timeoutMs);
    // The deadline covers discovery too: a first call may wait for an agent's tool list.
    const found = await this.source.find(agent, tool, deadline, options.signal);
    const pool = options.pool ?? this.pool;
    const { order, bypassBreakers } = placeCall(agent, found.instances, ctx.sessionId, this.health, this.picker, (id) => pool.inFlight(id));
    const signals = deadlineSignals(deadline, options.signal);
    const call: Call = {
      agent,
      tool,
      args,
      ctx,
      deadline,
      timeoutMs,
      started,
      signal: signals.signal,
      deadlineSignal: signals.deadlineSignal,
      repeatable: this.repeatable(agent, tool, ctx, found),
      options,
      pool,
      identity: currentIdentity(),
    };
    try {
      const { result, instance } = await attemptInOrder(
        call,
        order,
        (instance, canMoveOn, n) =>
          tracedAttempt(call, instance, n, this.callerName, (traceparent) =>
            this.attempts.send(call, instance, canMoveOn, bypassBreakers, traceparent),
          ),
        this.logger,
      );
      return { result, instance: instance.id, context: ctx };
    } finally {
      signals.clear();
    }
  }

  /**
   * Safe to send again after a failure: the tool says so (read-only or idempotent in the
   * catalog), or the call carries an idempotency key that every instance deduplicates in
   * shared state. (A call sent to another datacenter is read-only: discovery let no other through.)
   */
  private repeatable(agent: string, tool: string, ctx: MeshContext, found: Found): boolean {
    if (found.datacenter !== undefined) return true;
    const a = this.catalog.agent(agent)?.tools.find((t) => t.name === tool)?.annotations;
    if (a?.readOnlyHint || a?.idempotentHint) return true;
    return ctx.idempotencyKey !== undefined && found.instances.every((i) => i.meta["idempotency"] === "shared");
  }

  /**
   * Runs a read-only request (list or read resources, get a prompt...) on a healthy
   * instance of `agent`; a transport failure moves on to the next instance. A JSON-RPC
   * error is the agent's answer and surfaces.
   */
  async withAgent<T>(
    agent: string,
    fn: (client: Client) => Promise<T>,
    options: {
      pool?: ClientPool;
      /** An instance to use while it is healthy (one holding a subscription, say). */
      prefer?: string;
      /** Told which instance the request went to. */
      onInstance?: (instanceId: string) => void;
    } = {},
  ): Promise<T> {
    const pool = options.pool ?? this.pool;
    const instances = await this.catalog.instances(agent);
    if (instances.length === 0) throw this.source.noInstance(agent);
    const first = instances.find((i) => i.id === options.prefer) ?? this.picker.pick(agent, instances, (id) => pool.inFlight(id));
    let lastError: unknown;
    for (const instance of [first, ...instances.filter((i) => i !== first)]) {
      try {
        options.onInstance?.(instance.id);
        return await pool.use(instance, fn);
      } catch (e) {
        if (e instanceof ProtocolError) throw e;
        if (e instanceof SdkHttpError && e.status === 401) throw unauthorized(this.tokenFor, agent, instance, e);
        if (e instanceof SdkError && e.code !== SdkErrorCode.ConnectionClosed && !(e instanceof SdkHttpError)) throw e;
        lastError = e;
        void pool.drop(instance.id);
      }
    }
    throw new MeshError("AGENT_UNREACHABLE", `No healthy instance of agent "${agent}" answered: ${describeError(lastError)}`, {
      retryable: true,
      cause: lastError,
      details: { agent },
    });
  }

  /**
   * The agent as a failover datacenter has it (MESH_FAILOVER_DCS), for a caller that found no
   * healthy instance here and needs its tools (the CLI's argument parsing): undefined when no
   * failover datacenter is set or none has it. Calls to it still go through call(), which sends
   * only read-only ones there.
   */
  async failoverAgent(agent: string): Promise<(CatalogAgent & { datacenter: string }) | undefined> {
    return this.source.failoverAgent(agent);
  }

  async close(): Promise<void> {
    this.catalog.stop();
    await this.pool.closeAll();
  }
}
