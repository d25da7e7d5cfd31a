import { SdkHttpError, type CallToolResult } from "@modelcontextprotocol/client";
import { toMeta } from "../context/meshContext.ts";
import { isToolmesh, type CatalogInstance } from "../discovery/catalog.ts";
import type { CallerIdentity } from "../http/identity.ts";
import type { Logger } from "../logger.ts";
import type { Attempt, Call } from "./call.ts";
import { deadlineError, silenceError, unauthorized } from "./callErrors.ts";
import { directCallable, rawJson, type Progress } from "./directCall.ts";
import { BrokenCircuitError, type InstanceHealth } from "./instanceHealth.ts";
import { classify, isFault } from "./outcome.ts";
import type { TokenFor } from "./tokens.ts";

/** A timeout this long or more before the deadline was the idle limit, not the deadline (timers are not exact). */
const SILENCE_MARGIN_MS = 100;

/** What sending attempts needs of the caller. */
export interface AttemptSenderOptions {
  health: InstanceHealth;
  logger: Logger;
  tokenFor: TokenFor;
  /** The signed `_meta` entry saying who a call to a toolmesh agent is for (MeshClient.identityMeta). */
  identityMeta: (agent: string, identity: CallerIdentity | undefined) => Record<string, string>;
}

/**
 * How long an attempt waits for an answer or progress before the call moves on: half its
 * budget, for a repeatable call with another instance to go to; otherwise it never runs out.
 */
interface Patience {
  /** Aborts when patience ran out: the attempt was abandoned. */
  signal: AbortSignal;
  /** What one attempt may spend in silence: the time left, or less if the caller allows less silence. */
  budgetMs: number;
  /** Whether it can run out at all. */
  running: boolean;
  /** Stops it: progress came (the agent is working), or the attempt ended. */
  stop(): void;
}

/** A request made ready for one instance: `send` it; `sent()` says whether it left this caller. */
interface Delivery {
  send: () => Promise<CallToolResult>;
  sent: () => boolean;
}

/** The tools/call params as they go to the instance. */
type ToolParams = { name: string; arguments: Record<string, unknown>; _meta: Record<string, unknown> } & Record<string, unknown>;

/** How a delivery reports back while it runs. */
interface Reports {
  signal: AbortSignal;
  onProgress: ((p: Progress) => void) | undefined;
  onSent: () => void;
}

/** Sends one attempt of a call to one instance and says how it ended (call.ts Attempt). */
export class AttemptSender {
  private readonly o: AttemptSenderOptions;

  constructor(options: AttemptSenderOptions) {
    this.o = options;
  }

  /**
   * One attempt on one instance. A repeatable call with another instance to go to does not
   * wait for a hung one (accepting, never answering) until its deadline: with no answer and
   * no progress within half its per-attempt budget (the time left, or the caller's idle
   * timeout if that is shorter: the gateway's 60 s within its 1 h limit), it is abandoned
   * there and sent on. Progress proves the agent is working and resets the idle timer; the
   * deadline still holds.
   */
  async send(call: Call, instance: CatalogInstance, canMoveOn: boolean, bypassBreakers: boolean, traceparent?: string): Promise<Attempt> {
    call.options.onInstance?.(instance.id);
    const patient = patience(call, canMoveOn);
    const delivery = this.delivery(call, instance, patient, traceparent);
    const cancelled = () => Boolean(call.options.signal?.aborted);
    try {
      const result = bypassBreakers
        ? await delivery.send()
        : await this.o.health.run(instance.id, delivery.send, (e) => isFault(e, delivery.sent(), cancelled()));
      return { result };
    } catch (e) {
      if (e instanceof BrokenCircuitError) return { kind: "skip" }; // ejected meanwhile: never sent
      if (e instanceof SdkHttpError && e.status === 401) throw unauthorized(this.o.tokenFor, call.agent, instance, e);
      return this.failed(e, call, instance, { sent: delivery.sent(), canMoveOn, patient });
    } finally {
      patient.stop();
    }
  }

  /**
   * The request, ready to go: direct (one HTTP request, no SDK client: directCall.ts) to a
   * toolmesh agent that serves 2026-07-28, the SDK's way to other servers. Progress is asked
   * for when someone listens, an idle limit applies, or patience may run out.
   */
  private delivery(call: Call, instance: CatalogInstance, patient: Patience, traceparent: string | undefined): Delivery {
    const { options } = call;
    let sent = false;
    const wantsProgress = Boolean(options.onProgress) || options.idleTimeoutMs !== undefined || patient.running;
    const reports: Reports = {
      signal: AbortSignal.any([call.signal, patient.signal]),
      onProgress: wantsProgress
        ? (p) => {
            patient.stop();
            options.onProgress?.(p);
          }
        : undefined,
      onSent: () => (sent = true),
    };
    const params = this.params(call, instance, traceparent);
    const direct = call.pool.callsDirect(instance) && directCallable(call.tool);
    const send = direct ? () => sendDirect(call, instance, params, reports) : () => sendWithSdk(call, instance, params, reports);
    return { send, sent: () => sent };
  }

  /** The tools/call params: the arguments, and in `_meta` the caller's envelope, who the call is for (signed, toolmesh agents only), the context and the traceparent. */
  private params(call: Call, instance: CatalogInstance, traceparent: string | undefined): ToolParams {
    const { options } = call;
    return {
      name: call.tool,
      arguments: call.args,
      _meta: {
        ...options.envelope,
        ...(isToolmesh(instance.meta) ? this.o.identityMeta(call.agent, options.identity ?? call.identity) : {}),
        ...toMeta(call.ctx),
        ...(traceparent ? { traceparent } : {}),
      },
      ...options.continuation,
    };
  }

  /**
   * What a failed attempt means for the call (outcome.ts classify): an error for the caller,
   * thrown, or another try (on the same instance or the next), with the silence that ended
   * this one when that is what happened.
   */
  private failed(
    e: unknown,
    call: Call,
    instance: CatalogInstance,
    facts: { sent: boolean; canMoveOn: boolean; patient: Patience },
  ): Attempt {
    const { options } = call;
    const cancelled = Boolean(options.signal?.aborted);
    const abandoned = facts.patient.signal.aborted;
    const outcome = classify(e, {
      agent: call.agent,
      tool: call.tool,
      instance: instance.id,
      ctx: call.ctx,
      repeatable: call.repeatable,
      sent: facts.sent,
      cancelled,
      deadlinePassed: call.deadlineSignal.aborted,
      abandoned,
      // A timeout well before the deadline can only be the idle limit.
      silenceLimited: options.idleTimeoutMs !== undefined && call.deadline - Date.now() > SILENCE_MARGIN_MS,
    });
    if (outcome.kind === "fail") throw cancelled ? (options.signal!.reason ?? outcome.error) : outcome.error;
    if (outcome.kind === "deadline") throw deadlineError(call, instance, facts.sent, e);
    if (outcome.kind === "silent") {
      // A silent instance of a repeatable call: on to the next one, as when patience ran out.
      if (!(call.repeatable && facts.canMoveOn)) throw silenceError(call, instance, e);
      const silence = `${instance.id} sent no answer and no progress within ${options.idleTimeoutMs} ms (this caller's idle timeout)`;
      return { kind: "retry", same: false, reason: "repeatable", error: e, silence };
    }
    if (outcome.reason === "repeatable" && abandoned) {
      this.o.logger.warn(
        { instance: instance.id, traceId: call.ctx.traceId, waitedMs: Math.round(Date.now() - call.started) },
        "no answer from the instance; it is out of rotation and the call goes to another",
      );
    }
    if (outcome.dropConnection) void call.pool.drop(instance.id);
    const budget = facts.patient.budgetMs;
    const silence = abandoned
      ? `${instance.id} sent no answer and no progress within ${Math.round(budget / 2)} ms (half the ${Math.round(budget)} ms one attempt may stay silent)`
      : undefined;
    return { kind: "retry", same: outcome.same, reason: outcome.reason, error: e, ...(silence ? { silence } : {}) };
  }
}

/** Starts the attempt's patience (see Patience). */
function patience(call: Call, canMoveOn: boolean): Patience {
  const ctl = new AbortController();
  const budgetMs = Math.min(call.deadline - Date.now(), call.options.idleTimeoutMs ?? Number.POSITIVE_INFINITY);
  const timer =
    call.repeatable && canMoveOn
      ? setTimeout(() => ctl.abort(new Error(`no answer or progress within ${Math.round(budgetMs / 2)} ms`)), budgetMs / 2)
      : undefined;
  return { signal: ctl.signal, budgetMs, running: timer !== undefined, stop: () => clearTimeout(timer) };
}

/** The longest silence the call allows now: its idle limit, never past its deadline. */
function idleLimitMs(call: Call): number {
  return Math.max(1, Math.min(call.options.idleTimeoutMs ?? Number.POSITIVE_INFINITY, call.deadline - Date.now()));
}

/** Sends the call direct (directCall.ts), the client's own argument bytes when it gave them. */
function sendDirect(call: Call, instance: CatalogInstance, params: ToolParams, r: Reports): Promise<CallToolResult> {
  const { options } = call;
  return call.pool.callDirect(
    instance,
    options.rawArguments !== undefined ? { ...params, arguments: rawJson(options.rawArguments) } : params,
    {
      signal: r.signal,
      idleTimeoutMs: idleLimitMs(call),
      totalTimeoutMs: Math.max(1, call.deadline - Date.now()),
      ...(r.onProgress ? { onProgress: r.onProgress } : {}),
      onSent: r.onSent,
      ...(options.relayInputRequests ? { allowInputRequired: true } : {}),
    },
  ) as Promise<CallToolResult>;
}

/** Sends the call through the instance's SDK client (pool.ts); the deadline holds while it waits in this caller's queue too. */
function sendWithSdk(call: Call, instance: CatalogInstance, params: ToolParams, r: Reports): Promise<CallToolResult> {
  const { options } = call;
  return call.pool.use(
    instance,
    (client) => {
      r.onSent();
      // request(), not callTool(): the agent has checked its result against its output
      // schema already, and a relayed input_required result must pass untouched.
      return client.request(
        { method: "tools/call", params },
        {
          signal: r.signal,
          timeout: idleLimitMs(call),
          maxTotalTimeout: Math.max(1, call.deadline - Date.now()),
          ...(options.relayInputRequests ? { allowInputRequired: true } : {}),
          ...(r.onProgress ? { onprogress: r.onProgress, resetTimeoutOnProgress: true } : {}),
        },
      ) as Promise<CallToolResult>;
    },
    r.signal,
  );
}
