import { AsyncLocalStorage } from "node:async_hooks";
import { randomFillSync } from "node:crypto";
import { MeshError } from "../protocol/errors.ts";
import { activeTraceparent } from "../telemetry/tracing.ts";
import { IDEMPOTENCY_KEY_META, META_PREFIX } from "../protocol/keys.ts";

/** How many agent-to-agent hops a call may take before it is refused. @default 8 */
export const DEFAULT_HOP_LIMIT = 8;
/** Turns of conversation history carried in a call. @default 20 */
export const MAX_HISTORY_TURNS = 20;

export interface Turn {
  role: "user" | "agent";
  text: string;
  /** Which agent answered (agent turns). */
  agent?: string;
  at: string;
}

/**
 * What travels with every tool call through the mesh: who is asking (trace, session,
 * caller chain), how far it may go (hop count and limit, absolute deadline), whether it
 * may be repeated (idempotency key), and what the specialist needs to know (shared facts
 * and the conversation so far).
 */
export interface MeshContext {
  /** W3C trace id: 32 lowercase hex digits. */
  readonly traceId: string;
  /** This call's span id: 16 lowercase hex digits. */
  readonly spanId: string;
  readonly traceFlags: string;
  readonly tracestate?: string;
  readonly baggage?: string;
  readonly sessionId?: string;
  /** Who called, outermost first, e.g. ["mesh-cli", "orchestrator", "finance"]. */
  readonly callerChain: readonly string[];
  /** 0 for the first call into the mesh, +1 per onward call. */
  readonly hop: number;
  readonly hopLimit: number;
  /** Absolute deadline, epoch milliseconds. */
  readonly deadline?: number;
  readonly idempotencyKey?: string;
  readonly facts: Readonly<Record<string, unknown>>;
  readonly history: readonly Turn[];
  /** Report the call's hops with its result (telemetry/hops.ts; the gateway's console asks). */
  readonly reportHops?: boolean;
}

/**
 * What an idempotency key may be, at every entry point (agent, gateway, CLI): 8 to 200 of
 * A-Z a-z 0-9 . _ : + / = - — a UUID, a request number, a base64 digest. Shorter keys collide
 * by accident; other characters are refused rather than silently dropped.
 */
export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9._:+/=-]{8,200}$/;

/**
 * Why a value is no idempotency key (what was expected and what came), or undefined when it
 * is one or absent. A key that is present but malformed is refused, never ignored: ignoring it
 * would run a side effect twice that the caller meant to run once.
 */
export function idempotencyKeyProblem(value: unknown): string | undefined {
  if (value === undefined || (typeof value === "string" && IDEMPOTENCY_KEY_PATTERN.test(value))) return undefined;
  const got =
    typeof value === "string"
      ? value.length < 8 || value.length > 200
        ? `a string of ${value.length} characters`
        : "a string with other characters"
      : value === null
        ? "null"
        : Array.isArray(value)
          ? "an array"
          : typeof value === "object"
            ? "an object"
            : `a ${typeof value}`;
  return `the idempotency key (${IDEMPOTENCY_KEY_META}) must be a string of 8 to 200 characters from A-Z a-z 0-9 . _ : + / = - (a UUID works); got ${got}. Nothing ran`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Random bytes drawn from a pool refilled 4 KiB at a time (one syscall per ~170 trace ids, not per id). */
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

function hex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  poolOffset += bytes;
  return pool.toString("hex", poolOffset - bytes, poolOffset);
}

export interface RootContextOptions {
  caller: string;
  sessionId?: string;
  /** Relative budget for the whole request. */
  timeoutMs?: number;
  hopLimit?: number;
  facts?: Record<string, unknown>;
  history?: readonly Turn[];
  idempotencyKey?: string;
  reportHops?: boolean;
  /** Continue a trace the client started (W3C traceparent). */
  traceparent?: string;
}

/** A context for a request entering the mesh. */
export function rootContext(o: RootContextOptions): MeshContext {
  // A request entering the mesh inside a span (the CLI's command, the gateway's server span) joins its trace.
  const traceparent = o.traceparent ?? activeTraceparent();
  const parent = traceparent ? TRACEPARENT.exec(traceparent) : null;
  return {
    traceId: parent?.[1] ?? hex(16),
    spanId: hex(8),
    traceFlags: parent?.[3] ?? "01",
    ...(o.sessionId ? { sessionId: o.sessionId } : {}),
    callerChain: [o.caller],
    hop: 0,
    hopLimit: o.hopLimit ?? DEFAULT_HOP_LIMIT,
    ...(o.timeoutMs !== undefined ? { deadline: Date.now() + o.timeoutMs } : {}),
    ...(o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {}),
    facts: { ...o.facts },
    history: (o.history ?? []).slice(-MAX_HISTORY_TURNS),
    ...(o.reportHops ? { reportHops: true } : {}),
  };
}

/**
 * The context of an onward call made by `caller` while serving `parent`: same trace,
 * session, deadline and facts; a new span; one more hop; the caller appended. Refuses
 * with HOP_LIMIT when the call would exceed the hop limit.
 */
export function childContext(parent: MeshContext, caller: string, target?: string): MeshContext {
  const hop = parent.hop + 1;
  if (hop > parent.hopLimit) {
    throw new MeshError(
      "HOP_LIMIT",
      `Hop limit of ${parent.hopLimit} reached: ${[...parent.callerChain, caller].join(" → ")}${target ? ` → ${target}` : ""}. The agents are calling each other in a loop, or the chain is deeper than allowed.`,
      { details: { chain: [...parent.callerChain, caller], hopLimit: parent.hopLimit, traceId: parent.traceId } },
    );
  }
  const { idempotencyKey: _notInherited, ...rest } = parent;
  return { ...rest, spanId: hex(8), hop, callerChain: [...parent.callerChain, caller] };
}

/** Encodes a context into `params._meta` keys. */
export function toMeta(ctx: MeshContext): Record<string, unknown> {
  return {
    traceparent: `00-${ctx.traceId}-${ctx.spanId}-${ctx.traceFlags}`,
    ...(ctx.tracestate ? { tracestate: ctx.tracestate } : {}),
    ...(ctx.baggage ? { baggage: ctx.baggage } : {}),
    ...(ctx.sessionId ? { [`${META_PREFIX}session`]: ctx.sessionId } : {}),
    [`${META_PREFIX}caller`]: ctx.callerChain,
    [`${META_PREFIX}hop`]: ctx.hop,
    [`${META_PREFIX}hop-limit`]: ctx.hopLimit,
    ...(ctx.deadline !== undefined ? { [`${META_PREFIX}deadline`]: new Date(ctx.deadline).toISOString() } : {}),
    ...(ctx.idempotencyKey ? { [IDEMPOTENCY_KEY_META]: ctx.idempotencyKey } : {}),
    ...(Object.keys(ctx.facts).length ? { [`${META_PREFIX}facts`]: ctx.facts } : {}),
    ...(ctx.history.length ? { [`${META_PREFIX}history`]: ctx.history } : {}),
    ...(ctx.reportHops ? { [`${META_PREFIX}report-hops`]: true } : {}),
  };
}

/**
 * Decodes a context from `params._meta`. Missing or malformed fields fall back to safe
 * values (a new trace, hop 0): input from the network is never trusted to be well formed.
 * Returns undefined when the call carries no toolmesh context and no traceparent.
 */
export function fromMeta(meta: unknown): MeshContext | undefined {
  if (!meta || typeof meta !== "object") return undefined;
  const m = meta as Record<string, unknown>;
  const tp = typeof m["traceparent"] === "string" ? TRACEPARENT.exec(m["traceparent"]) : null;
  const hasOwn = Object.keys(m).some((k) => k.startsWith(META_PREFIX));
  if (!tp && !hasOwn) return undefined;
  const str = (k: string, max = 256) => {
    const v = m[k];
    return typeof v === "string" && v.length > 0 && v.length <= max ? v : undefined;
  };
  const int = (k: string, min: number, max: number) => {
    const v = m[k];
    return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max ? v : undefined;
  };
  const chain = m[`${META_PREFIX}caller`];
  const deadlineText = str(`${META_PREFIX}deadline`, 64);
  const deadline = deadlineText ? Date.parse(deadlineText) : NaN;
  const facts = m[`${META_PREFIX}facts`];
  const history = m[`${META_PREFIX}history`];
  const sessionId = str(`${META_PREFIX}session`);
  const tracestate = str("tracestate", 512);
  const baggage = str("baggage", 8192);
  const key = m[IDEMPOTENCY_KEY_META];
  const idempotencyKey = idempotencyKeyProblem(key) === undefined && typeof key === "string" ? key : undefined;
  return {
    traceId: tp?.[1] ?? hex(16),
    spanId: tp?.[2] ?? hex(8),
    traceFlags: tp?.[3] ?? "01",
    ...(tracestate ? { tracestate } : {}),
    ...(baggage ? { baggage } : {}),
    ...(sessionId ? { sessionId } : {}),
    callerChain: Array.isArray(chain) ? chain.filter((c): c is string => typeof c === "string").slice(0, 64) : [],
    hop: int(`${META_PREFIX}hop`, 0, 1_000) ?? 0,
    hopLimit: int(`${META_PREFIX}hop-limit`, 0, 1_000) ?? DEFAULT_HOP_LIMIT,
    ...(Number.isFinite(deadline) ? { deadline } : {}),
    ...(idempotencyKey ? { idempotencyKey } : {}),
    facts: facts && typeof facts === "object" && !Array.isArray(facts) ? (facts as Record<string, unknown>) : {},
    history: Array.isArray(history) ? (history.filter(isTurn).slice(-MAX_HISTORY_TURNS) as Turn[]) : [],
    ...(m[`${META_PREFIX}report-hops`] === true ? { reportHops: true } : {}),
  };
}

function isTurn(t: unknown): boolean {
  const x = t as Partial<Turn> | null;
  return !!x && (x.role === "user" || x.role === "agent") && typeof x.text === "string";
}

const storage = new AsyncLocalStorage<MeshContext>();

/** The context of the tool call being served, if any (set by the agent kit). */
export function currentMeshContext(): MeshContext | undefined {
  return storage.getStore();
}

/** Runs `fn` with `ctx` as the current context (the agent kit does this per tools/call). */
export function runWithMeshContext<T>(ctx: MeshContext, fn: () => T): T {
  return storage.run(ctx, fn);
}
