import { IDEMPOTENCY_CONFLICT_ERROR_CODE, IN_PROGRESS_ERROR_CODE } from "../protocol/codes.ts";
import { createHash } from "node:crypto";
import { isInputRequiredResult } from "@modelcontextprotocol/server";
import type { ToolOutcome } from "./tools.ts";
import { describeError } from "../protocol/errors.ts";
import type { Logger } from "../logger.ts";
import type { SharedState } from "../state/sharedState.ts";
import type { ConsulClient } from "../consul/client.ts";
import { CallRefusal } from "./callRefusal.ts";

/** How long the first result for an idempotency key is kept and replayed. @default 600000 (10 min) */
export const DEFAULT_IDEMPOTENCY_WINDOW_MS = 600_000;
/**
 * How long a claim holds without renewal. The instance running the call renews it every
 * third of this while the handler runs, so a claim outlives any deadline of the caller and
 * lapses only when its holder dies. @default 15000
 */
export const DEFAULT_CLAIM_LEASE_MS = 15_000;
/** Results larger than this are not kept (Consul KV values are limited to 512 KiB). @default 262144 */
export const MAX_KEPT_RESULT_BYTES = 256 * 1024;

/** One key's record, shared by every replica. */
interface KeyRecord {
  state: "running" | "done";
  tool: string;
  /** SHA-256 of the tool and its arguments: a key is bound to one request. */
  digest?: string;
  instance: string;
  /** running: until when the claim holds unless renewed. */
  leaseUntil?: number;
  /** done: the first result, replayed to repeats (absent if too large to keep). */
  result?: unknown;
  /** done: after this, the key is forgotten. */
  expiresAt?: number;
}

export interface IdempotencyOptions {
  agent: string;
  /** This instance's id (read at call time: it is known only once the agent listens). */
  instance: () => string;
  /** Where records live: Consul KV (shared by replicas) or memory (one instance only). */
  state: SharedState;
  windowMs?: number;
  leaseMs?: number;
  /** Whether an instance is alive (Consul reports it passing): a dead holder's claim is taken over. */
  isAlive?: (instance: string) => Promise<boolean>;
  logger: Logger;
}

/** Thrown inside a claim update to stop it: the key is already taken. */
class Claimed extends Error {
  readonly record: KeyRecord;
  constructor(record: KeyRecord) {
    super("claimed");
    this.record = record;
  }
}

/**
 * Runs side effects at most once per idempotency key, across every replica of an agent.
 * The first call claims the key (check-and-set in shared state), bound to a digest of its
 * tool and arguments, and runs; the claim is renewed while the handler runs and released
 * only when the handler has really finished: its result is recorded then (even if the
 * caller's deadline passed long before), and every repeat gets that result without the
 * tool running again. A repeat while the first still runs waits for its result, until its
 * own deadline. A key reused for another tool or other arguments is refused. A claim whose
 * holder died is taken over (the first run may or may not have had its effect: that is
 * the price of a crash). A handler that throws did not complete: the key is released.
 */
export class IdempotencyLedger {
  private readonly o: IdempotencyOptions;
  private readonly windowMs: number;
  private readonly leaseMs: number;

  constructor(options: IdempotencyOptions) {
    this.o = options;
    this.windowMs = options.windowMs ?? DEFAULT_IDEMPOTENCY_WINDOW_MS;
    this.leaseMs = options.leaseMs ?? DEFAULT_CLAIM_LEASE_MS;
  }

  /** Runs `handler` once for `key` (or replays its first result). */
  async run(
    key: string,
    call: { tool: string; args: unknown; deadline: number | undefined; traceId: string },
    handler: () => Promise<ToolOutcome>,
  ): Promise<ToolOutcome> {
    const id = createHash("sha256").update(key).digest("base64url");
    const digest = requestDigest(call.tool, call.args);
    const me = this.o.instance();
    let deadHolder: string | undefined;
    for (let wait = 25; ; wait = Math.min(wait * 2, 500)) {
      try {
        await this.o.state.update<KeyRecord | null>(id, (cur) => {
          const now = Date.now();
          const live = cur && (cur.state === "done" ? (cur.expiresAt ?? 0) > now : (cur.leaseUntil ?? 0) > now);
          const abandoned = cur?.state === "running" && cur.instance === deadHolder;
          if (live && !abandoned) throw new Claimed(cur);
          return { state: "running", tool: call.tool, digest, instance: me, leaseUntil: now + this.leaseMs };
        });
      } catch (e) {
        if (!(e instanceof Claimed)) throw e; // the ledger is unreachable: nothing ran, the caller may retry
        const rec = e.record;
        if (rec.tool !== call.tool || (rec.digest !== undefined && rec.digest !== digest)) {
          throw new CallRefusal(
            IDEMPOTENCY_CONFLICT_ERROR_CODE,
            `This idempotency key was first used for ${this.o.agent}.${rec.tool} with ${rec.tool === call.tool ? "other arguments" : "another tool"}; a key stands for one request. Nothing ran. Use a new key for a new request.`,
          );
        }
        if (rec.state === "done") {
          this.o.logger.info(
            { tool: call.tool, firstRanOn: rec.instance, traceId: call.traceId },
            "repeated idempotency key: returning the first result",
          );
          return rec.result !== undefined
            ? (rec.result as ToolOutcome)
            : {
                isError: true,
                content: [
                  {
                    type: "text",
                    text: `${this.o.agent}.${call.tool} already ran with this idempotency key; its result was too large to keep.`,
                  },
                ],
              };
        }
        if (rec.instance !== me && this.o.isAlive && !(await this.o.isAlive(rec.instance).catch(() => true))) {
          this.o.logger.warn(
            { tool: call.tool, holder: rec.instance, traceId: call.traceId },
            "idempotency key held by a dead instance; running the call here",
          );
          deadHolder = rec.instance;
          continue;
        }
        if (call.deadline !== undefined && Date.now() + wait >= call.deadline) {
          throw new CallRefusal(
            IN_PROGRESS_ERROR_CODE,
            `${this.o.agent}.${call.tool} with this idempotency key is still running on ${rec.instance}; it did not finish before this call's deadline. Call again with the same key later for its result.`,
          );
        }
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      return this.runClaimed(id, me, call, handler);
    }
  }

  private async runClaimed(
    id: string,
    me: string,
    call: { tool: string; traceId: string },
    handler: () => Promise<ToolOutcome>,
  ): Promise<ToolOutcome> {
    const renew = setInterval(() => {
      void this.o.state
        .update<KeyRecord | null>(id, (cur) =>
          cur?.instance === me && cur.state === "running" ? { ...cur, leaseUntil: Date.now() + this.leaseMs } : (cur ?? null),
        )
        .catch((e: unknown) => this.o.logger.warn({ err: describeError(e), tool: call.tool }, "could not renew an idempotency claim"));
    }, this.leaseMs / 3);
    renew.unref();
    const release = () =>
      this.o.state
        .update<KeyRecord | null>(id, (cur) => (cur?.instance === me && cur.state === "running" ? null : (cur ?? null)))
        .catch((err: unknown) => this.o.logger.warn({ err: describeError(err), tool: call.tool }, "could not release an idempotency key"));
    let result: ToolOutcome;
    try {
      result = await handler();
    } catch (e) {
      clearInterval(renew);
      await release(); // not completed: let a repeat run it
      throw e;
    }
    clearInterval(renew);
    // A request for the client's input is no final result: the retry that answers it claims again.
    if (isInputRequiredResult(result)) {
      await release();
      return result;
    }
    const keep = JSON.stringify(result).length <= MAX_KEPT_RESULT_BYTES;
    await this.o.state
      .update<KeyRecord>(id, (cur) => ({
        state: "done",
        tool: call.tool,
        ...(cur?.digest ? { digest: cur.digest } : {}),
        instance: me,
        ...(keep ? { result } : {}),
        expiresAt: Date.now() + this.windowMs,
      }))
      .catch((e: unknown) =>
        this.o.logger.warn(
          { err: describeError(e), tool: call.tool, traceId: call.traceId },
          "could not keep the result for an idempotency key; a repeat after the claim lapses may run again",
        ),
      );
    return result;
  }
}

/** SHA-256 over the tool name and its arguments in a canonical form (object keys sorted). */
export function requestDigest(tool: string, args: unknown): string {
  return createHash("sha256").update(tool).update("\0").update(canonicalJson(args)).digest("base64url");
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * Deletes the records under `prefix` (an agent's idempotency keys in Consul KV) that no
 * repeat can use any more: results past their window, claims whose lease ended a window
 * ago, released keys. Check-and-set per key, so a key claimed meanwhile is left alone;
 * replicas may sweep at the same time. Returns how many were deleted.
 */
export async function sweepIdempotencyRecords(consul: ConsulClient, prefix: string, windowMs: number, now = Date.now()): Promise<number> {
  let deleted = 0;
  for (const key of await consul.kvKeys(prefix)) {
    const entry = await consul.kvGet(key);
    if (!entry) continue;
    let rec: KeyRecord | null;
    try {
      rec = JSON.parse(entry.value) as KeyRecord | null;
    } catch {
      rec = null; // not ours to keep
    }
    const dead = !rec || (rec.state === "done" ? (rec.expiresAt ?? 0) < now : (rec.leaseUntil ?? 0) + windowMs < now);
    if (dead && (await consul.kvDelete(key, { cas: entry.modifyIndex }))) deleted++;
  }
  return deleted;
}
