import {
  ProtocolError,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  type CallToolResult,
  type Client,
  type Implementation,
  type ServerCapabilities,
} from "@modelcontextprotocol/client";
import type { ConsulClient } from "../consul/client.ts";
import { failovers } from "../telemetry/metrics.ts";
import { currentHopParent, hopId, hopsOf, recordHops, type Hop } from "../telemetry/hops.ts";
import { inSpan, SpanKind, traceparentOf, tracingEnabled } from "../telemetry/tracing.ts";
import { childContext, currentMeshContext, rootContext, toMeta, type MeshContext } from "../context/meshContext.ts";
import { Catalog, isToolmesh, type CatalogAgent, type CatalogInstance } from "../discovery/catalog.ts";
import { DatacenterFailover, FAILOVER_DCS_ENV, mayFailOver, parseFailoverDatacenters } from "../discovery/failover.ts";
import { callerTokens, type TokenFor } from "./tokens.ts";
import { agentTokenVariable } from "../protocol/credentials.ts";
import { identityKeys, signIdentity, type CallerIdentity, type IdentityKeyFor } from "../http/identity.ts";
import { IDENTITY_META } from "../protocol/keys.ts";
import { currentIdentity } from "../http/principal.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { MeshError, describeError, isMeshError } from "../protocol/errors.ts";
import { BrokenCircuitError, InstanceHealth, type InstanceHealthOptions } from "./instanceHealth.ts";
import { DEFAULT_CALL_TIMEOUT_MS, type CallToolOptions, type MeshCaller } from "./meshCaller.ts";
import { classify, isFault } from "./outcome.ts";
import { RoundRobinPicker, type InstancePicker } from "./picker.ts";
import { placeCall } from "./placement.ts";
import { ClientPool, type ListKind } from "./pool.ts";
import { directCallable, rawJson } from "./directCall.ts";

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

/** A timeout this long or more before the deadline was the idle limit, not the deadline (timers are not exact). */
const SILENCE_MARGIN_MS = 100;

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

/** How one attempt ended: an answer, an instance skipped (its breaker is open), or a failure to try again after. */
type Attempt =
  | { result: CallToolResult }
  | { kind: "skip" }
  /** `silence`: the instance was left for staying silent, in words (which limit, how long). */
  | { kind: "retry"; same: boolean; reason: string; error: unknown; silence?: string };

/** One call on its way: what every attempt needs. */
interface Call {
  agent: string;
  tool: string;
  args: Record<string, unknown>;
  ctx: MeshContext;
  deadline: number;
  timeoutMs: number;
  /** When the call started (Date.now()). */
  started: number;
  /** Ends with the caller's signal or the deadline. */
  signal: AbortSignal;
  deadlineSignal: AbortSignal;
  repeatable: boolean;
  options: CallToolOptions;
  pool: ClientPool;
  /** Who the call is for (the request being served when it was made). */
  identity: CallerIdentity | undefined;
}

/**
 * Calls tools anywhere in the mesh: instances from the live catalog, one pooled client per
 * instance (2026-07-28 with toolmesh agents: one POST per call, no session), a pluggable
 * choice of instance, the MeshContext in `_meta`, the deadline enforced on both sides
 * (cancelling the call at the agent), and failover only for calls that provably never ran,
 * or whose tool is annotated read-only or idempotent, or that carry an idempotency key.
 */
const SERVER_INFO_META = "io.modelcontextprotocol/serverInfo";

function isImplementation(v: unknown): v is Implementation {
  const o = v as { name?: unknown; version?: unknown } | null;
  return typeof o === "object" && o !== null && typeof o.name === "string" && typeof o.version === "string";
}

/** An upstream server as it introduced itself. */
export interface UpstreamIdentity {
  info: Implementation;
  capabilities: ServerCapabilities;
  instructions?: string;
}

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
  private readonly consulUrl: string;
  private readonly failover: DatacenterFailover | undefined;
  /** What each agent kind said it is when its tool list was last fetched (serverInfo, capabilities). */
  private readonly identities = new Map<string, UpstreamIdentity>();
  private readonly identityKeyFor: IdentityKeyFor;

  constructor(options: MeshClientOptions) {
    this.callerName = options.callerName;
    this.identityKeyFor = options.identityKeys ?? identityKeys(process.env);
    this.logger = (options.logger ?? silentLogger).child({ component: "mesh-client" });
    this.picker = options.picker ?? new RoundRobinPicker();
    this.consulUrl = options.consul.address.url;
    this.tokenFor = options.token ?? callerTokens(process.env);
    this.pool = new ClientPool({
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
    this.catalog = new Catalog({
      consul: options.consul,
      // Tool lists come over this caller's own connections; a failure to connect is the reason.
      // The catalog asks only when something changed (a new tools hash, a new instance):
      // past the client's response cache, which would answer from the old list until its ttlMs.
      fetchTools: async (instance, signal) =>
        (
          await this.pool.use(
            instance,
            async (c) => {
              const listing = await c.listTools(undefined, { signal, cacheMode: "refresh" });
              await this.learnIdentity(instance.service, c, signal);
              return listing;
            },
            signal,
          )
        ).tools,
      ...(options.toolsTimeoutMs !== undefined ? { toolsTimeoutMs: options.toolsTimeoutMs } : {}),
      logger: options.logger,
      mode: options.catalogMode ?? "on-demand",
    });
    this.health = new InstanceHealth({ logger: options.logger, ...options.health });
    const datacenters = options.failoverDatacenters ?? parseFailoverDatacenters(process.env[FAILOVER_DCS_ENV]);
    this.failover =
      datacenters.length > 0
        ? new DatacenterFailover({
            consul: options.consul,
            datacenters,
            fetchTools: async (instance, signal) =>
              (await this.pool.use(instance, (c) => c.listTools(undefined, { signal }), signal)).tools,
            ...(options.toolsTimeoutMs !== undefined ? { toolsTimeoutMs: options.toolsTimeoutMs } : {}),
            logger: options.logger,
          })
        : undefined;
    // An instance that left the healthy set and is back is re-admitted at once.
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

  private async learnIdentity(agent: string, client: Client, signal: AbortSignal): Promise<void> {
    let info = client.getServerVersion();
    let capabilities = client.getServerCapabilities();
    let instructions = client.getInstructions();
    // A connection made from what the agent published in Consul skipped server/discover:
    // ask once (a catalog refresh is rare), so the identity is the agent's own word.
    if (!info) {
      const found = await client.discover({ signal }).catch(() => undefined);
      // 2026-07-28 carries serverInfo in every result's _meta, server/discover's included.
      const said = (found as { _meta?: Record<string, unknown> } | undefined)?._meta?.[SERVER_INFO_META];
      if (found && isImplementation(said)) {
        info = said;
        capabilities = found.capabilities;
        instructions = found.instructions;
      }
    }
    if (info && capabilities) this.identities.set(agent, { info, capabilities, ...(instructions ? { instructions } : {}) });
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
    const current = currentMeshContext();
    let ctx = options.context ?? (current ? childContext(current, this.callerName, agent) : rootContext({ caller: this.callerName }));
    const deadline = Math.min(ctx.deadline ?? Number.POSITIVE_INFINITY, started + timeoutMs);
    ctx = { ...ctx, deadline, ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}) };

    // The deadline covers discovery too: a first call may wait for an agent's tool list.
    const { instances, datacenter } = await this.discover(agent, tool, deadline, options.signal);
    const pool = options.pool ?? this.pool;
    const { order, bypassBreakers } = placeCall(agent, instances, ctx.sessionId, this.health, this.picker, (id) => pool.inFlight(id));
    // The deadline as one timer, cleared when the call ends (AbortSignal.timeout would hold
    // its timer, and everything the signal reaches, for the whole budget: an hour at the gateway).
    const deadlineCtl = new AbortController();
    const deadlineTimer = setTimeout(
      () => deadlineCtl.abort(new DOMException("deadline reached", "TimeoutError")),
      Math.max(0, deadline - Date.now()),
    );
    const signal = options.signal ? AbortSignal.any([options.signal, deadlineCtl.signal]) : deadlineCtl.signal;
    // Safe to send again after a failure: the tool says so, or the call carries an
    // idempotency key that every instance deduplicates in shared state.
    // (A call sent to another datacenter is read-only: discover() let no other through.)
    const repeatable =
      datacenter !== undefined ||
      this.repeatable(agent, tool) ||
      (ctx.idempotencyKey !== undefined && instances.every((i) => i.meta["idempotency"] === "shared"));
    const call: Call = {
      agent,
      tool,
      args,
      ctx,
      deadline,
      timeoutMs,
      started,
      signal,
      deadlineSignal: deadlineCtl.signal,
      repeatable,
      options,
      pool,
      identity: currentIdentity(),
    };
    try {
      let lastError: unknown;
      let overloaded = 0;
      let attempts = 0;
      // Instances left for their silence, and skipped (out of rotation meanwhile), for an error that says so.
      const silences: string[] = [];
      const skipped: string[] = [];
      let otherFailures = false;
      for (const [index, instance] of order.entries()) {
        for (let attempt = 0; attempt < 2; attempt++) {
          const outcome = await this.attempt(call, instance, index < order.length - 1, bypassBreakers, ++attempts);
          if ("result" in outcome) return { result: outcome.result, instance: instance.id, context: ctx };
          if (outcome.kind === "skip") {
            skipped.push(instance.id);
            break;
          }
          if (outcome.silence) silences.push(outcome.silence);
          else otherFailures = true;
          lastError = outcome.error;
          if (outcome.reason === "overloaded") overloaded++;
          failovers.inc({ agent, reason: outcome.reason });
          this.logger[outcome.reason === "overloaded" ? "debug" : "info"](
            { instance: instance.id, reason: outcome.reason, traceId: ctx.traceId, err: describeError(outcome.error) },
            "call failed before an answer; trying again",
          );
          if (!outcome.same) break;
        }
      }
      if (overloaded === order.length) {
        throw new MeshError(
          "OVERLOADED",
          `Every instance of agent "${agent}" is at its concurrency limit (${order.map((i) => i.id).join(", ")}); ${agent}.${tool} was not started anywhere. Retry shortly, or add replicas.`,
          { retryable: true, cause: lastError, details: { agent, tool, traceId: ctx.traceId } },
        );
      }
      if (silences.length > 0 && !otherFailures) {
        // Every instance tried stayed silent (the others were out of rotation for the same reason, for other calls).
        const out = skipped.length ? `; ${skipped.join(", ")} out of rotation after failing other calls` : "";
        throw new MeshError(
          "TIMEOUT",
          `No instance of agent "${agent}" answered ${agent}.${tool}: ${silences.join("; ")}${out}. They may be hung; it is safe to call again. Trace ${ctx.traceId}.`,
          { retryable: true, cause: lastError, details: { agent, tool, traceId: ctx.traceId } },
        );
      }
      throw new MeshError(
        "AGENT_UNREACHABLE",
        `No healthy instance of agent "${agent}" took the call (${order.map((i) => i.id).join(", ")}): ${describeError(lastError)}`,
        { retryable: true, cause: lastError, details: { agent, traceId: ctx.traceId } },
      );
    } finally {
      clearTimeout(deadlineTimer);
    }
  }

  /**
   * One attempt on one instance. A repeatable call with another instance to go to does not
   * wait for a hung one (accepting, never answering) until its deadline: with no answer and
   * no progress within half its per-attempt budget (the time left, or the caller's idle
   * timeout if that is shorter: the gateway's 60 s within its 1 h limit), it is abandoned
   * there and sent on. Progress proves the agent is working and resets the idle timer; the
   * deadline still holds.
   */
  private attempt(call: Call, instance: CatalogInstance, canMoveOn: boolean, bypassBreakers: boolean, n: number): Promise<Attempt> {
    const reportHops = call.ctx.reportHops === true;
    if (!tracingEnabled() && !reportHops) return this.attemptOnce(call, instance, canMoveOn, bypassBreakers);
    // The attempt's span id travels as the traceparent's parent id: the agent's span (and hop) hangs off it.
    const run = (traceparent: string) =>
      reportHops
        ? this.attemptReported(call, instance, n, traceparent, () =>
            this.attemptOnce(call, instance, canMoveOn, bypassBreakers, traceparent),
          )
        : this.attemptOnce(call, instance, canMoveOn, bypassBreakers, traceparent);
    if (!tracingEnabled()) return run(`00-${call.ctx.traceId}-${hopId()}-${call.ctx.traceFlags}`);
    // One CLIENT span per attempt (a failover shows as two), the parent of the agent's SERVER span.
    return inSpan(
      {
        name: `tools/call ${call.tool}`,
        kind: SpanKind.CLIENT,
        traceId: call.ctx.traceId,
        parentSpanId: call.ctx.spanId,
        attributes: {
          "mcp.method.name": "tools/call",
          "gen_ai.operation.name": "execute_tool",
          "gen_ai.tool.name": call.tool,
          "server.address": instance.address,
          "server.port": instance.port,
          "toolmesh.agent": call.agent,
          "toolmesh.instance": instance.id,
          "toolmesh.attempt": n,
          "toolmesh.hop": call.ctx.hop,
          "toolmesh.caller_chain": [...call.ctx.callerChain],
          ...(call.ctx.sessionId ? { "toolmesh.session": call.ctx.sessionId } : {}),
        },
      },
      (span) => run(traceparentOf(span)),
      (a) => ("result" in a ? (a.result.isError ? "tool_error" : undefined) : "kind" in a && a.kind === "skip" ? "circuit_open" : a.reason),
    );
  }

  /** An attempt of a call that reports its hops: its own, and those the agent's result brings back. */
  private async attemptReported(
    call: Call,
    instance: CatalogInstance,
    n: number,
    traceparent: string,
    send: () => Promise<Attempt>,
  ): Promise<Attempt> {
    const started = performance.now();
    const parent = currentHopParent();
    const own = (error?: string): Hop => ({
      id: traceparent.split("-")[2]!, // the attempt's span id: the agent's hop names it as its parent
      ...(parent ? { parent } : {}),
      kind: "client",
      service: this.callerName,
      name: `${call.agent}.${call.tool}`,
      instance: instance.id,
      start: performance.timeOrigin + started,
      ms: performance.now() - started,
      attempt: n,
      ...(error ? { error } : {}),
    });
    let a: Attempt;
    try {
      a = await send();
    } catch (e) {
      recordHops(own(isMeshError(e) ? e.code : e instanceof ProtocolError ? String(e.code) : "failed"));
      throw e;
    }
    if ("result" in a) recordHops(own(a.result.isError ? "tool_error" : undefined), ...hopsOf(a.result._meta));
    else recordHops(own("kind" in a && a.kind === "skip" ? "circuit_open" : a.reason));
    return a;
  }

  private async attemptOnce(
    call: Call,
    instance: CatalogInstance,
    canMoveOn: boolean,
    bypassBreakers: boolean,
    traceparent?: string,
  ): Promise<Attempt> {
    const { options, deadline } = call;
    options.onInstance?.(instance.id);
    const patient = new AbortController();
    // What one attempt may spend in silence: the time left, or less if the caller allows less silence.
    const attemptBudget = Math.min(deadline - Date.now(), options.idleTimeoutMs ?? Number.POSITIVE_INFINITY);
    const patience =
      call.repeatable && canMoveOn
        ? setTimeout(() => patient.abort(new Error(`no answer or progress within ${Math.round(attemptBudget / 2)} ms`)), attemptBudget / 2)
        : undefined;
    const attemptSignal = AbortSignal.any([call.signal, patient.signal]);
    let sent = false;
    const wantsProgress = Boolean(options.onProgress) || options.idleTimeoutMs !== undefined || patience !== undefined;
    const params = {
      name: call.tool,
      arguments: call.args,
      _meta: {
        ...options.envelope,
        ...(isToolmesh(instance.meta) ? this.identityMeta(call.agent, options.identity ?? call.identity) : {}),
        ...toMeta(call.ctx),
        ...(traceparent ? { traceparent } : {}),
      },
      ...options.continuation,
    };
    const onProgress = (p: { progress: number; total?: number; message?: string }) => {
      clearTimeout(patience);
      options.onProgress?.(p);
    };
    // A call to a toolmesh agent that serves 2026-07-28 goes direct: one HTTP request, no SDK
    // client (directCall.ts). Other servers, the SDK's way.
    const direct = call.pool.callsDirect(instance) && directCallable(call.tool);
    const send = direct
      ? () =>
          call.pool.callDirect(
            instance,
            options.rawArguments !== undefined ? { ...params, arguments: rawJson(options.rawArguments) } : params,
            {
              signal: attemptSignal,
              idleTimeoutMs: Math.max(1, Math.min(options.idleTimeoutMs ?? Number.POSITIVE_INFINITY, deadline - Date.now())),
              totalTimeoutMs: Math.max(1, deadline - Date.now()),
              ...(wantsProgress ? { onProgress } : {}),
              onSent: () => (sent = true),
              ...(options.relayInputRequests ? { allowInputRequired: true } : {}),
            },
          ) as Promise<CallToolResult>
      : () =>
          call.pool.use(
            instance,
            (client) => {
              sent = true;
              // request(), not callTool(): the agent has checked its result against its output
              // schema already, and a relayed input_required result must pass untouched.
              return client.request(
                { method: "tools/call", params },
                {
                  signal: attemptSignal,
                  timeout: Math.max(1, Math.min(options.idleTimeoutMs ?? Number.POSITIVE_INFINITY, deadline - Date.now())),
                  maxTotalTimeout: Math.max(1, deadline - Date.now()),
                  ...(options.relayInputRequests ? { allowInputRequired: true } : {}),
                  ...(wantsProgress ? { onprogress: onProgress, resetTimeoutOnProgress: true } : {}),
                },
              ) as Promise<CallToolResult>;
            },
            attemptSignal, // the deadline holds while the call waits in this caller's queue too
          );
    const cancelled = () => Boolean(options.signal?.aborted);
    try {
      const result = bypassBreakers ? await send() : await this.health.run(instance.id, send, (e) => isFault(e, sent, cancelled()));
      return { result };
    } catch (e) {
      if (e instanceof BrokenCircuitError) return { kind: "skip" }; // ejected meanwhile: never sent
      if (e instanceof SdkHttpError && e.status === 401) throw this.unauthorized(call.agent, instance, e);
      const outcome = classify(e, {
        agent: call.agent,
        tool: call.tool,
        instance: instance.id,
        ctx: call.ctx,
        repeatable: call.repeatable,
        sent,
        cancelled: cancelled(),
        deadlinePassed: call.deadlineSignal.aborted,
        abandoned: patient.signal.aborted,
        // A timeout well before the deadline can only be the idle limit.
        silenceLimited: options.idleTimeoutMs !== undefined && deadline - Date.now() > SILENCE_MARGIN_MS,
      });
      if (outcome.kind === "fail") throw cancelled() ? (options.signal!.reason ?? outcome.error) : outcome.error;
      if (outcome.kind === "deadline") throw this.deadlineError(call, instance, sent, e);
      if (outcome.kind === "silent") {
        // A silent instance of a repeatable call: on to the next one, as when patience ran out.
        if (!(call.repeatable && canMoveOn)) throw this.silenceError(call, instance, e);
        const silence = `${instance.id} sent no answer and no progress within ${options.idleTimeoutMs} ms (this caller's idle timeout)`;
        return { kind: "retry", same: false, reason: "repeatable", error: e, silence };
      }
      if (outcome.reason === "repeatable" && patient.signal.aborted) {
        this.logger.warn(
          { instance: instance.id, traceId: call.ctx.traceId, waitedMs: Math.round(Date.now() - call.started) },
          "no answer from the instance; it is out of rotation and the call goes to another",
        );
      }
      if (outcome.dropConnection) void call.pool.drop(instance.id);
      const silence = patient.signal.aborted
        ? `${instance.id} sent no answer and no progress within ${Math.round(attemptBudget / 2)} ms (half the ${Math.round(attemptBudget)} ms one attempt may stay silent)`
        : undefined;
      return { kind: "retry", same: outcome.same, reason: outcome.reason, error: e, ...(silence ? { silence } : {}) };
    } finally {
      clearTimeout(patience);
    }
  }

  /**
   * The agent's usable instances, waiting for discovery no longer than the deadline: this
   * datacenter's, else (for a read-only tool, with failover datacenters set) another's.
   */
  private async discover(
    agent: string,
    tool: string,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<{ instances: CatalogInstance[]; datacenter?: string }> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new MeshError("TIMEOUT", `Discovery of agent "${agent}" did not finish before the call's deadline; nothing was sent.`, {
              retryable: true,
              details: { agent },
            }),
          ),
        Math.max(0, deadline - Date.now()),
      );
    });
    const cancelled = signal
      ? new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true }))
      : undefined;
    try {
      const instances = await Promise.race([this.catalog.instances(agent), expired, ...(cancelled ? [cancelled] : [])]);
      if (instances.length > 0) return { instances };
      if (!this.failover) throw this.noInstance(agent);
      const { found, tried } = await Promise.race([this.failover.lookup(agent), expired, ...(cancelled ? [cancelled] : [])]);
      if (!found) throw this.noInstance(agent, ` None in the failover datacenters either (${tried.join("; ")}).`);
      if (!mayFailOver(found.tools, tool)) throw this.failoverRefused(agent, tool, found.datacenter);
      return { instances: found.instances, datacenter: found.datacenter };
    } finally {
      clearTimeout(timer);
    }
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
    if (instances.length === 0) throw this.noInstance(agent);
    const first = instances.find((i) => i.id === options.prefer) ?? this.picker.pick(agent, instances, (id) => pool.inFlight(id));
    let lastError: unknown;
    for (const instance of [first, ...instances.filter((i) => i !== first)]) {
      try {
        options.onInstance?.(instance.id);
        return await pool.use(instance, fn);
      } catch (e) {
        if (e instanceof ProtocolError) throw e;
        if (e instanceof SdkHttpError && e.status === 401) throw this.unauthorized(agent, instance, e);
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

  private unauthorized(agent: string, instance: CatalogInstance, cause: unknown): MeshError {
    const toolmesh = isToolmesh(instance.meta);
    const sent = this.tokenFor(agent, toolmesh) !== undefined;
    const remedy = toolmesh
      ? `Set ${agentTokenVariable(agent)} (for ${agent} only) to a token it accepts, or MESH_TOKEN to one of the mesh tokens it accepts (callers send ${agent} a credential derived from it, never the token itself).`
      : `It is not a toolmesh agent, so nothing derived from MESH_TOKEN is sent to it; set ${agentTokenVariable(agent)} to the token it expects.`;
    return new MeshError(
      "UNAUTHORIZED",
      `${instance.id} refused the call: ${sent ? "it does not accept this caller's bearer token" : "it requires a bearer token and this caller sent none"}. ${remedy}`,
      { retryable: false, cause, details: { agent, instance: instance.id } },
    );
  }

  /**
   * The agent as a failover datacenter has it (MESH_FAILOVER_DCS), for a caller that found no
   * healthy instance here and needs its tools (the CLI's argument parsing): undefined when no
   * failover datacenter is set or none has it. Calls to it still go through call(), which sends
   * only read-only ones there.
   */
  async failoverAgent(agent: string): Promise<(CatalogAgent & { datacenter: string }) | undefined> {
    const found = this.failover ? (await this.failover.lookup(agent)).found : undefined;
    if (!found) return undefined;
    return {
      name: agent,
      datacenter: found.datacenter,
      tags: found.instances[0]?.tags ?? [],
      instances: found.instances,
      unusable: [],
      tools: found.tools,
      toolsHash: found.instances[0]?.meta["tools_hash"],
      description: found.instances[0]?.meta["description"],
      toolsError: undefined,
    };
  }

  /** A state-changing call that only another datacenter could serve: refused, never sent. */
  private failoverRefused(agent: string, tool: string, datacenter: string): MeshError {
    return new MeshError(
      "NO_HEALTHY_INSTANCE",
      `No healthy instance of agent "${agent}" in this datacenter, and ${agent}.${tool} is not read-only, so it is not sent to ${datacenter}: ` +
        `Consul KV (idempotency claims, bookings, task records) is per datacenter, and a state-changing call run there could neither be ` +
        `deduplicated against this one's records nor seen by its readers. Nothing was sent. Start an instance of ${agent} here, or call it in ${datacenter} directly.`,
      { retryable: false, details: { agent, tool, failoverDatacenter: datacenter, failoverRefused: "not read-only" } },
    );
  }

  private noInstance(agent: string, more = ""): MeshError {
    const outage = this.catalog.lastError
      ? ` Consul is unreachable (${this.catalog.lastError}); the last-known catalog has none either.`
      : "";
    const unusable = this.catalog.agent(agent)?.unusable ?? [];
    if (unusable.length > 0) {
      return new MeshError(
        "NO_HEALTHY_INSTANCE",
        `Agent "${agent}" has no usable instance: ${unusable.map((u) => `${u.id} (${u.url}) ${u.reason}`).join("; ")}. Fix or deregister it ("mesh deregister ${unusable[0]!.id}").`,
        { retryable: true, details: { agent, unusable } },
      );
    }
    return new MeshError(
      "NO_HEALTHY_INSTANCE",
      `No healthy instance of agent "${agent}" is registered in Consul at ${this.consulUrl}.${outage}${more} Start one (mesh serve ${agent}) or check "mesh agents".`,
      { retryable: true, details: { agent } },
    );
  }

  /** Whether the agent's catalog entry marks the tool read-only or idempotent. */
  private repeatable(agent: string, tool: string): boolean {
    const a = this.catalog.agent(agent)?.tools.find((t) => t.name === tool)?.annotations;
    return Boolean(a?.readOnlyHint || a?.idempotentHint);
  }

  async close(): Promise<void> {
    this.catalog.stop();
    await this.pool.closeAll();
  }

  /**
   * The call's deadline passed. If the request never left this caller, nothing ran. If it
   * was sent, the agent was asked to cancel it, but a cancellation cannot undo an effect
   * that already happened: a tool that is not safe to repeat is reported as delivery
   * unknown (so nobody pays twice by running the command again), a repeatable one as a
   * plain timeout.
   */
  private deadlineError(call: Call, instance: CatalogInstance, sent: boolean, cause: unknown): MeshError {
    const { agent, tool, ctx, timeoutMs } = call;
    const details = { agent, tool, instance: instance.id, traceId: ctx.traceId };
    const what = `${agent}.${tool} on ${instance.id} did not answer within its deadline (${timeoutMs} ms)`;
    if (!sent) {
      return new MeshError("TIMEOUT", `${what}; it was still waiting to be sent, so it did not run. Trace ${ctx.traceId}.`, {
        retryable: true,
        cause,
        details,
      });
    }
    if (!call.repeatable) {
      return new MeshError(
        "DELIVERY_UNKNOWN",
        `Delivery unknown: ${what}. It may or may not have run: ${instance.id} was asked to cancel it, but a cancellation cannot undo an effect that already happened, and ${tool} is not safe to repeat. Check its effect before calling again, or repeat it with the same idempotency key. Trace ${ctx.traceId}.`,
        { retryable: false, cause, details },
      );
    }
    return new MeshError("TIMEOUT", `${what}; ${instance.id} was asked to cancel it. It is safe to call again. Trace ${ctx.traceId}.`, {
      retryable: true,
      cause,
      details,
    });
  }

  /**
   * The instance sent no answer and no progress for the longest silence this caller allows
   * (`idleTimeoutMs`, the gateway's 60 s), long before the deadline: the limit that ended
   * the call is that one, and the message names it. The request was sent (a call still
   * waiting to be sent is bounded by the deadline only), so what may have run is as for a
   * deadline.
   */
  private silenceError(call: Call, instance: CatalogInstance, cause: unknown): MeshError {
    const { agent, tool, ctx, options } = call;
    const details = { agent, tool, instance: instance.id, traceId: ctx.traceId, idleTimeoutMs: options.idleTimeoutMs };
    const what = `${agent}.${tool} on ${instance.id} sent no answer and no progress within ${options.idleTimeoutMs} ms, the longest one attempt may stay silent (this caller's idle timeout)`;
    if (!call.repeatable) {
      return new MeshError(
        "DELIVERY_UNKNOWN",
        `Delivery unknown: ${what}. It may or may not have run: ${instance.id} was asked to cancel it, but ${tool} is not safe to repeat. Check its effect before calling again, or repeat it with the same idempotency key. Trace ${ctx.traceId}.`,
        { retryable: false, cause, details },
      );
    }
    return new MeshError(
      "TIMEOUT",
      `${what}; it may be hung, and no other instance was left to try. It is safe to call again. Trace ${ctx.traceId}.`,
      { retryable: true, cause, details },
    );
  }
}
