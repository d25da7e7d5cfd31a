import { DEADLINE_ERROR_CODE, HOP_LIMIT_ERROR_CODE, IDEMPOTENCY_CONFLICT_ERROR_CODE, MESH_FAILURE_ERROR_CODE } from "../protocol/codes.ts";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ErrorCode, McpError, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { ConsulClient } from "../consul/client.ts";
import { childContext, currentMeshContext, rootContext, toMeta, type MeshContext } from "../context/meshContext.ts";
import { Catalog, isToolmesh, type CatalogInstance } from "../discovery/catalog.ts";
import { MeshError, describeError, type MeshErrorCode } from "../protocol/errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { notDelivered } from "./delivery.ts";
import { agentTokenVariable, callerTokens, type TokenFor } from "../http/auth.ts";
import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { DEFAULT_CALL_TIMEOUT_MS, type CallToolOptions, type MeshCaller } from "./meshCaller.ts";
import { RoundRobinPicker, rendezvousOrder, type InstancePicker } from "./picker.ts";
import { BrokenCircuitError, InstanceHealth, type InstanceHealthOptions } from "./instanceHealth.ts";
import { ClientPool, ConnectError } from "./pool.ts";

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
  /** The bearer token for an agent's instances. @default MESH_TOKEN_<AGENT>, else MESH_TOKEN for toolmesh agents (callerTokens) */
  token?: TokenFor;
  /** Calls sent to one instance at once; more wait. @default DEFAULT_MAX_CONCURRENT_PER_INSTANCE */
  maxConcurrentPerInstance?: number;
  /** Calls that may wait for one instance; more are refused (OVERLOADED). @default DEFAULT_MAX_QUEUED_PER_INSTANCE */
  maxQueuedPerInstance?: number;
  /** Longest wait for one instance's tool list. @default DEFAULT_TOOLS_TIMEOUT_MS */
  toolsTimeoutMs?: number;
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
 * Calls tools anywhere in the mesh: instances from the live catalog, one pooled connection
 * per instance, a pluggable choice of instance, the MeshContext in `_meta`, the deadline
 * enforced on both sides (cancelling the call at the agent), and failover only for calls
 * that provably never ran, or whose tool is annotated read-only or idempotent.
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
  private readonly consulUrl: string;

  constructor(options: MeshClientOptions) {
    this.callerName = options.callerName;
    this.logger = (options.logger ?? silentLogger).child({ component: "mesh-client" });
    this.picker = options.picker ?? new RoundRobinPicker();
    this.consulUrl = options.consul.address.url;
    this.tokenFor = options.token ?? callerTokens(process.env);
    this.pool = new ClientPool({
      clientName: `toolmesh-${options.callerName}`,
      token: this.tokenFor,
      logger: options.logger,
      ...(options.maxConcurrentPerInstance ? { maxConcurrentPerInstance: options.maxConcurrentPerInstance } : {}),
      ...(options.maxQueuedPerInstance !== undefined ? { maxQueuedPerInstance: options.maxQueuedPerInstance } : {}),
      onToolsChanged: (id) => {
        const agent = this.catalog.agentOf(id);
        if (agent) void this.catalog.refreshTools(agent);
      },
    });
    this.catalog = new Catalog({
      consul: options.consul,
      // Tool lists come over this caller's own connections; a failure to connect is the reason.
      fetchTools: async (instance, signal) => (await this.pool.use(instance, (c) => c.listTools(undefined, { signal }), signal)).tools,
      ...(options.toolsTimeoutMs !== undefined ? { toolsTimeoutMs: options.toolsTimeoutMs } : {}),
      logger: options.logger,
      mode: options.catalogMode ?? "on-demand",
    });
    this.health = new InstanceHealth({ logger: options.logger, ...options.health });
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

  /** Loads the catalog (in "all" mode); optional for on-demand use. */
  async start(): Promise<void> {
    await this.catalog.start();
  }

  async callTool(agent: string, tool: string, args: Record<string, unknown>, options: CallToolOptions = {}): Promise<CallToolResult> {
    return (await this.call(agent, tool, args, options)).result;
  }

  async call(agent: string, tool: string, args: Record<string, unknown>, options: CallToolOptions = {}): Promise<CallOutcome> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const current = currentMeshContext();
    let ctx = options.context ?? (current ? childContext(current, this.callerName, agent) : rootContext({ caller: this.callerName }));
    const deadline = Math.min(ctx.deadline ?? Number.POSITIVE_INFINITY, Date.now() + timeoutMs);
    ctx = { ...ctx, deadline, ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}) };

    // The deadline covers discovery too: a first call may wait for an agent's tool list.
    const instances = await this.discover(agent, deadline, options.signal);
    const pool = options.pool ?? this.pool;
    // Instances this caller saw fail stay out of rotation for a cool-down; if that leaves
    // none, every instance is tried anyway (Consul still calls them healthy).
    const admitted = instances.filter((i) => this.health.admits(i.id));
    const candidates = admitted.length > 0 ? admitted : instances;
    const bypassBreakers = admitted.length === 0;
    // A stateful agent's calls in one session go to the same replica while it is healthy
    // (rendezvous hashing on the session id), and to the next one in that order when not;
    // its session state lives in Consul KV, so the next replica continues it.
    const sticky = ctx.sessionId !== undefined && instances.every((i) => i.meta["stateful"] === "true");
    let order: CatalogInstance[];
    if (sticky) order = rendezvousOrder(ctx.sessionId!, candidates);
    else {
      const first = this.picker.pick(agent, candidates, (id) => pool.inFlight(id));
      order = [first, ...candidates.filter((i) => i !== first)];
    }
    // The deadline as one timer, cleared when the call ends (AbortSignal.timeout would hold
    // its timer, and everything the signal reaches, for the whole budget: an hour at the gateway).
    const deadlineCtl = new AbortController();
    const deadlineTimer = setTimeout(
      () => deadlineCtl.abort(new DOMException("deadline reached", "TimeoutError")),
      Math.max(0, deadline - Date.now()),
    );
    const deadlineSignal = deadlineCtl.signal;
    const signal = options.signal ? AbortSignal.any([options.signal, deadlineSignal]) : deadlineSignal;
    // Safe to send again after a failure: the tool says so, or the call carries an
    // idempotency key that every instance deduplicates in shared state.
    const repeatable =
      this.repeatable(agent, tool) || (ctx.idempotencyKey !== undefined && instances.every((i) => i.meta["idempotency"] === "shared"));

    try {
      let lastError: unknown;
      let overloaded = 0;
      for (const [index, instance] of order.entries()) {
        for (let attempt = 0; attempt < 2; attempt++) {
          options.onInstance?.(instance.id);
          // A repeatable call with another instance to go to does not wait for a hung one
          // (accepting, never answering) until its deadline: with no answer and no progress
          // within half the time left, it is abandoned there and sent on.
          const patient = new AbortController();
          const patience =
            repeatable && index < order.length - 1
              ? setTimeout(() => patient.abort(new Error("no answer or progress within half the time left")), (deadline - Date.now()) / 2)
              : undefined;
          const attemptSignal = AbortSignal.any([signal, patient.signal]);
          let sent = false;
          const send = () =>
            pool.use(
              instance,
              (client) => {
                sent = true;
                return client.callTool({ name: tool, arguments: args, _meta: toMeta(ctx) }, undefined, {
                  signal: attemptSignal,
                  timeout: Math.max(1, Math.min(options.idleTimeoutMs ?? Number.POSITIVE_INFINITY, deadline - Date.now())),
                  maxTotalTimeout: Math.max(1, deadline - Date.now()),
                  // Progress proves the agent is working: it resets the idle timer (the deadline still
                  // holds). With an idle timeout, always ask for progress, even if nobody listens.
                  ...(options.onProgress || options.idleTimeoutMs !== undefined || patience
                    ? {
                        onprogress: (p: { progress: number; total?: number; message?: string }) => {
                          clearTimeout(patience);
                          options.onProgress?.(p);
                        },
                        resetTimeoutOnProgress: true,
                      }
                    : {}),
                });
              },
              attemptSignal, // the deadline holds while the call waits in this caller's queue too
            );
          // What counts against the instance: no answer (connection errors, timeouts), not
          // the agent's own answers, a refusal for load, or the caller's cancellation.
          // An HTTP answer below 500 (401, 404 for an expired session...) proves the instance is up.
          const isFault = (e: unknown) =>
            e instanceof ConnectError ||
            (sent && // a call that timed out in this caller's queue says nothing about the instance
              !(e instanceof StreamableHTTPError && e.code !== undefined && e.code < 500) &&
              !options.signal?.aborted &&
              notDelivered(e) !== "overloaded" &&
              !(e instanceof McpError && e.code !== ErrorCode.ConnectionClosed && e.code !== ErrorCode.RequestTimeout));
          try {
            const result = await (bypassBreakers ? send() : this.health.run(instance.id, send, isFault));
            return { result: result as CallToolResult, instance: instance.id, context: ctx };
          } catch (e) {
            if (e instanceof BrokenCircuitError) break; // ejected meanwhile: never sent
            if (deadlineSignal.aborted && !options.signal?.aborted)
              throw this.deadlineError({ agent, tool, instance, timeoutMs, ctx, sent, repeatable }, e);
            if (options.signal?.aborted) throw options.signal.reason ?? e;
            if (patient.signal.aborted) {
              lastError = e;
              this.logger.warn(
                { instance: instance.id, traceId: ctx.traceId, waitedMs: Math.round(timeoutMs - (deadline - Date.now())) },
                "no answer from the instance; it is out of rotation and the call goes to another",
              );
              break;
            }
            if (e instanceof StreamableHTTPError && e.code === 401) throw this.unauthorized(agent, instance, e);
            if (e instanceof McpError && e.code === HOP_LIMIT_ERROR_CODE)
              throw new MeshError("HOP_LIMIT", protocolMessage(e), { cause: e, details: { traceId: ctx.traceId } });
            if (e instanceof McpError && (e.code === ErrorCode.RequestTimeout || e.code === DEADLINE_ERROR_CODE)) {
              throw this.deadlineError({ agent, tool, instance, timeoutMs, ctx, sent, repeatable }, e);
            }
            // A JSON-RPC error is the agent's answer: the caller's to see. ConnectionClosed is not
            // an answer: our side closed the connection (the instance left the catalog mid-call).
            if (e instanceof McpError && e.code !== ErrorCode.ConnectionClosed) throw answered(e, { agent, tool, instance: instance.id });
            const reason = notDelivered(e);
            // An overloaded instance refused one call; its session is fine.
            if (reason !== "overloaded") void pool.drop(instance.id);
            // The request may have reached the agent: call again elsewhere only if the tool
            // says repeating it is harmless; never run a side effect twice silently.
            if (!reason && !repeatable) {
              throw new MeshError(
                "DELIVERY_UNKNOWN",
                `Delivery unknown: ${agent}.${tool} on ${instance.id} may or may not have run (${describeError(e)}). It is not marked idempotent and the call had no idempotency key, so it was not retried; check its effect before calling again (or call with an idempotency key).`,
                { retryable: false, cause: e, details: { agent, tool, instance: instance.id, traceId: ctx.traceId } },
              );
            }
            lastError = e;
            this.logger[reason === "overloaded" ? "debug" : "info"](
              {
                instance: instance.id,
                reason: reason ?? "transport error on a repeatable tool",
                traceId: ctx.traceId,
                err: describeError(e),
              },
              "call failed before an answer; trying again",
            );
            if (reason === "overloaded") overloaded++;
            if (reason !== "session-unknown") break;
          } finally {
            clearTimeout(patience);
          }
        }
      }
      if (overloaded === order.length) {
        throw new MeshError(
          "OVERLOADED",
          `Every instance of agent "${agent}" is at its concurrency limit (${order.map((i) => i.id).join(", ")}); ${agent}.${tool} was not started anywhere. Retry shortly, or add replicas.`,
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

  /** The agent's usable instances, waiting for discovery no longer than the deadline. */
  private async discover(agent: string, deadline: number, signal?: AbortSignal): Promise<CatalogInstance[]> {
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
      if (instances.length === 0) throw this.noInstance(agent);
      return instances;
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
        if (e instanceof McpError && e.code !== ErrorCode.ConnectionClosed) throw e;
        if (e instanceof StreamableHTTPError && e.code === 401) throw this.unauthorized(agent, instance, e);
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
      ? `Set ${agentTokenVariable(agent)} (for ${agent} only) or MESH_TOKEN to a token it accepts.`
      : `It is not a toolmesh agent, so the mesh-wide MESH_TOKEN is never sent to it; set ${agentTokenVariable(agent)} to the token it expects.`;
    return new MeshError(
      "UNAUTHORIZED",
      `${instance.id} refused the call: ${sent ? "it does not accept this caller's bearer token" : "it requires a bearer token and this caller sent none"}. ${remedy}`,
      { retryable: false, cause, details: { agent, instance: instance.id } },
    );
  }

  private noInstance(agent: string): MeshError {
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
      `No healthy instance of agent "${agent}" is registered in Consul at ${this.consulUrl}.${outage} Start one (mesh serve ${agent}) or check "mesh agents".`,
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
  private deadlineError(
    c: { agent: string; tool: string; instance: CatalogInstance; timeoutMs: number; ctx: MeshContext; sent: boolean; repeatable: boolean },
    cause: unknown,
  ): MeshError {
    const details = { agent: c.agent, tool: c.tool, instance: c.instance.id, traceId: c.ctx.traceId };
    const what = `${c.agent}.${c.tool} on ${c.instance.id} did not answer within its deadline (${c.timeoutMs} ms)`;
    if (!c.sent) {
      return new MeshError("TIMEOUT", `${what}; it was still waiting to be sent, so it did not run. Trace ${c.ctx.traceId}.`, {
        retryable: true,
        cause,
        details,
      });
    }
    if (!c.repeatable) {
      return new MeshError(
        "DELIVERY_UNKNOWN",
        `Delivery unknown: ${what}. It may or may not have run: ${c.instance.id} was asked to cancel it, but a cancellation cannot undo an effect that already happened, and ${c.tool} is not safe to repeat. Check its effect before calling again, or repeat it with the same idempotency key. Trace ${c.ctx.traceId}.`,
        { retryable: false, cause, details },
      );
    }
    return new MeshError("TIMEOUT", `${what}; ${c.instance.id} was asked to cancel it. It is safe to call again. Trace ${c.ctx.traceId}.`, {
      retryable: true,
      cause,
      details,
    });
  }
}

/**
 * An agent's JSON-RPC error as the caller should see it: a mesh failure under the agent
 * (Consul unreachable, another agent down) and a reused idempotency key become MeshErrors
 * with their own codes; any other error is the agent's answer as it came.
 */
function answered(e: McpError, where: { agent: string; tool: string; instance: string }): Error {
  if (e.code === IDEMPOTENCY_CONFLICT_ERROR_CODE) {
    return new MeshError("IDEMPOTENCY_CONFLICT", protocolMessage(e), { cause: e, details: where });
  }
  if (e.code !== MESH_FAILURE_ERROR_CODE) return e;
  const data = (e.data ?? {}) as { code?: unknown; retryable?: unknown };
  const code = typeof data.code === "string" ? (data.code as MeshErrorCode) : "AGENT_UNREACHABLE";
  return new MeshError(code, `${where.agent}.${where.tool} on ${where.instance} could not do its work: ${protocolMessage(e)}`, {
    retryable: data.retryable === true,
    cause: e,
    details: where,
  });
}

/** An McpError's own message, without the "MCP error <code>: " the SDK puts in front. */
function protocolMessage(e: McpError): string {
  return e.message.replace(/^MCP error -?\d+: /, "");
}
