import { randomUUID } from "node:crypto";
import type { CallToolResult } from "@modelcontextprotocol/server";
import { describeError, isMeshError } from "../protocol/errors.ts";
import { collectHopsSettled, hopId, type Hop } from "../telemetry/hops.ts";

/**
 * The gateway's call log: every call through it (MCP, A2A or the console's form), newest first.
 * The gateway writes it; the console reads it. It lives here, below both, so the forwarding path
 * never imports the console.
 */
/** Calls the log remembers (the newest first). @default 100 */
export const RECENT_CALLS = 100;
/** The window a per-instance call rate is measured over. @default 10000 */
export const RATE_WINDOW_MS = 10_000;

/** A call through the gateway, as the console lists it. */
export interface CallRecord {
  id: string;
  at: string;
  traceId: string;
  agent: string;
  tool: string;
  /** The instance that answered (or the last one tried). */
  instance?: string;
  ms: number;
  outcome: "ok" | "tool_error" | "failed";
  /** What failed, for a failed call. */
  error?: string;
  /** Where it came from: an MCP client of the gateway, an A2A client, or the console's form. */
  via: "mcp" | "a2a" | "console";
  /** The call's hops (when a console was watching, or the console made it). */
  hops?: Hop[];
}

/**
 * The calls through the gateway, newest first, bounded; with the number of console viewers
 * (hops are collected only while someone watches).
 */
export class RecentCalls {
  private readonly calls: CallRecord[] = [];
  private readonly listeners = new Set<(c: CallRecord) => void>();
  /** Console streams open now. */
  viewers = 0;

  get watching(): boolean {
    return this.viewers > 0;
  }

  add(c: CallRecord): void {
    this.calls.unshift(c);
    if (this.calls.length > RECENT_CALLS) this.calls.length = RECENT_CALLS;
    for (const l of this.listeners) l(c);
  }

  list(): readonly CallRecord[] {
    return this.calls;
  }

  get(id: string): CallRecord | undefined {
    return this.calls.find((c) => c.id === id || c.traceId === id);
  }

  /** Calls per second an instance answered over the last RATE_WINDOW_MS. */
  rate(instance: string, now = Date.now()): number {
    let n = 0;
    for (const c of this.calls) {
      if (now - Date.parse(c.at) > RATE_WINDOW_MS) break;
      if (c.instance === instance) n++;
    }
    return n / (RATE_WINDOW_MS / 1_000);
  }

  onCall(l: (c: CallRecord) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** Runs a gateway call and records it (with its hops while the console watches). */
export async function recordedCall(
  calls: RecentCalls,
  what: { agent: string; tool: string; traceId: string; via: CallRecord["via"]; hops: boolean },
  call: () => Promise<{ result: CallToolResult; instance: string }>,
): Promise<{ result: CallToolResult; instance: string; record: CallRecord }> {
  const started = performance.now();
  const at = new Date().toISOString();
  const gatewayHop = what.hops ? hopId() : "";
  const settled = what.hops
    ? await collectHopsSettled(gatewayHop, call)
    : await call().then(
        (value) => ({ value, hops: [] as Hop[] }),
        (error: unknown) => ({ error, hops: [] as Hop[] }),
      );
  const ms = performance.now() - started;
  const value = "value" in settled ? settled.value : undefined;
  const error = "error" in settled ? settled.error : undefined;
  const outcome: CallRecord["outcome"] = value ? (value.result.isError ? "tool_error" : "ok") : "failed";
  const own: Hop = {
    id: gatewayHop,
    kind: "server",
    service: "gateway",
    name: `${what.agent}.${what.tool}`,
    start: performance.timeOrigin + started,
    ms,
    ...(outcome === "ok" ? {} : { error: outcome === "failed" ? (isMeshError(error) ? error.code : "failed") : "tool_error" }),
  };
  const record: CallRecord = {
    id: randomUUID(),
    at,
    traceId: what.traceId,
    agent: what.agent,
    tool: what.tool,
    ...(value ? { instance: value.instance } : {}),
    ms,
    outcome,
    ...(error ? { error: describeError(error).slice(0, 500) } : {}),
    via: what.via,
    ...(what.hops ? { hops: [own, ...settled.hops] } : {}),
  };
  calls.add(record);
  if (!value) throw error;
  return { ...value, record };
}
