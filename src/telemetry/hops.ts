import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";

/**
 * Hop reports: a call's own account of where it went and where it spent its time, returned
 * with its result, so the gateway's console draws a call's waterfall across hops without an
 * external tracing backend (and without OpenTelemetry). Asked for per call (the MeshContext's
 * `reportHops`, carried on to every onward call); nothing is recorded otherwise.
 *
 * Each attempt a caller makes is a "client" hop, each tool call an agent serves a "server"
 * hop whose parent is the attempt that reached it; an agent's result carries the hops of the
 * call it served (its own and everything below), and the caller adds them to its own.
 */
export interface Hop {
  id: string;
  /** The hop this one ran inside (an attempt's: the server hop that made it; a server hop's: the attempt). */
  parent?: string;
  kind: "client" | "server";
  /** The process: an agent's name, "gateway", "mesh-cli". */
  service: string;
  /** agent.tool */
  name: string;
  instance?: string;
  /** Epoch milliseconds (fractional). */
  start: number;
  ms: number;
  /** The attempt's number within its call (client hops). */
  attempt?: number;
  /** Why it failed: an error code or "tool_error". */
  error?: string;
}

/** Result `_meta` key holding the hops of the call (a server's, and everything below it). */
export const HOPS_META = "io.toolmesh/hops";
/** At most this many hops travel back with one result (a runaway fan-out does not bloat answers). @default 200 */
export const MAX_HOPS = 200;

interface Collector {
  /** The hop the code running now belongs to (the parent of its attempts). */
  parent: string;
  hops: Hop[];
}

const collectors = new AsyncLocalStorage<Collector>();

export function hopId(): string {
  return randomBytes(8).toString("hex");
}

/** Runs `fn` collecting the hops it makes under `parent`; returns them with its result. */
export async function collectHops<T>(parent: string, fn: () => Promise<T>): Promise<{ value: T; hops: Hop[] }> {
  const collector: Collector = { parent, hops: [] };
  const value = await collectors.run(collector, fn);
  return { value, hops: collector.hops };
}

/** Like collectHops, but the hops come back when `fn` throws too (a failed call's attempts). */
export async function collectHopsSettled<T>(parent: string, fn: () => Promise<T>): Promise<{ value?: T; error?: unknown; hops: Hop[] }> {
  const collector: Collector = { parent, hops: [] };
  try {
    return { value: await collectors.run(collector, fn), hops: collector.hops };
  } catch (error) {
    return { error, hops: collector.hops };
  }
}

/** The hop id the current code runs inside, if hops are being collected. */
export function currentHopParent(): string | undefined {
  return collectors.getStore()?.parent;
}

/** Adds hops to the collection of the call running now (ignored when none is). */
export function recordHops(...hops: Hop[]): void {
  const c = collectors.getStore();
  if (!c) return;
  for (const h of hops) if (c.hops.length < MAX_HOPS) c.hops.push(h);
}

/** The hops a result reports, checked: whatever else a peer sends is ignored. */
export function hopsOf(meta: unknown): Hop[] {
  const list = (meta as Record<string, unknown> | undefined)?.[HOPS_META];
  if (!Array.isArray(list)) return [];
  return list
    .filter(
      (h): h is Hop =>
        !!h &&
        typeof h === "object" &&
        typeof (h as Hop).id === "string" &&
        ((h as Hop).kind === "client" || (h as Hop).kind === "server") &&
        typeof (h as Hop).service === "string" &&
        typeof (h as Hop).name === "string" &&
        typeof (h as Hop).start === "number" &&
        typeof (h as Hop).ms === "number",
    )
    .slice(0, MAX_HOPS);
}
