import { IDEMPOTENCY_CONFLICT_ERROR_CODE, IN_PROGRESS_ERROR_CODE, MESH_FAILURE_ERROR_CODE } from "../protocol/codes.ts";
import { createHash } from "node:crypto";
import { isInputRequiredResult } from "@modelcontextprotocol/server";
import type { ToolOutcome } from "./tools.ts";
import { describeError, isMeshError } from "../protocol/errors.ts";
import { withFence } from "../state/fence.ts";
import type { Logger } from "../logger.ts";
import type { SharedState } from "../state/sharedState.ts";
import type { ConsulClient } from "../consul/client.ts";
import { CallRefusal } from "./callRefusal.ts";
import { ClaimFence, type KeyRecord } from "./claimFence.ts";

/** How long the first result for an idempotency key is kept and replayed. @default 600000 (10 min) */
export const DEFAULT_IDEMPOTENCY_WINDOW_MS = 600_000;
/**
 * How long a claim holds without renewal. The instance running the call renews it every
 * third of this while the handler runs, so a claim outlives any deadline of the caller and
 * lapses only when its holder stops (dies, is paused, or is cut off from Consul) for this
 * long; only then may another replica take the key over (if no effect of it committed). A
 * keyed call whose holder died is run elsewhere after at most this. Env MESH_CLAIM_LEASE_MS.
 * @default 10000
 */
export const DEFAULT_CLAIM_LEASE_MS = 10_000;
/** Results larger than this are not kept (Consul KV values are limited to 512 KiB). @default 262144 */
export const MAX_KEPT_RESULT_BYTES = 256 * 1024;

export interface IdempotencyOptions {
  agent: string;
  /** This instance's id (read at call time: it is known only once the agent listens). */
  instance: () => string;
  /** Where records live: Consul KV (shared by replicas) or memory (one instance only). */
  state: SharedState;
  windowMs?: number;
  leaseMs?: number;
  /** Whether an instance is alive (Consul reports it passing): said to a repeat that waits on it. */
  isAlive?: (instance: string) => Promise<boolean>;
  logger: Logger;
}

/** One keyed call as the ledger sees it. */
export interface KeyedCall {
  tool: string;
  args: unknown;
  deadline: number | undefined;
  traceId: string;
  /** Who is asking (ownerOf): a key is scoped to its caller, another caller's key is another key. */
  owner: string;
}

/**
 * Runs side effects exactly once per idempotency key and caller, across every replica of an
 * agent, and fences them. The first call claims the key (check-and-set), bound to a digest of
 * its tool and arguments; the claim record's version is a fencing token. While the handler
 * runs, the claim is renewed (check-and-set on that version) and every write the handler makes
 * to shared state commits in one Consul transaction with the claim, so it lands only while the
 * claim is still this holder's, and marks the claim applied. The result is recorded the same
 * way. A claim is taken over only when its lease lapsed (its holder stopped renewing: dead,
 * paused or cut off) and no effect of it committed; a holder that resumes after losing its claim
 * finds its next write refused (CLAIM_LOST) and never overwrites the taker's record. A repeat
 * gets the first result; one made while the first still runs waits for it until its own
 * deadline. A key reused for another tool or other arguments is refused. A handler that throws
 * before any effect did not complete: the key is released. Effects outside Consul KV cannot be
 * fenced (claimStillHeld narrows the window): exactly-once ends there.
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

  /** Runs `handler` once for `key` of this caller (or replays its first result). */
  async run(key: string, call: KeyedCall, handler: () => Promise<ToolOutcome>): Promise<ToolOutcome> {
    const id = keyId(call.owner, key);
    const digest = requestDigest(call.tool, call.args);
    const me = this.o.instance();
    for (let wait = 25; ; wait = Math.min(wait * 2, 500)) {
      const { value: cur, version } = await this.ledgerStep("read the key's record", () => this.o.state.read<KeyRecord | null>(id));
      const now = Date.now();
      if (cur && (cur.state === "done" ? (cur.expiresAt ?? 0) > now : true)) {
        if (cur.tool !== call.tool || (cur.digest !== undefined && cur.digest !== digest)) {
          throw new CallRefusal(
            IDEMPOTENCY_CONFLICT_ERROR_CODE,
            `This idempotency key was first used for ${this.o.agent}.${cur.tool} with ${cur.tool === call.tool ? "other arguments" : "another tool"}; a key stands for one request. Nothing ran. Use a new key for a new request.`,
          );
        }
        if (cur.state === "done") return this.replay(cur, call);
        const lapsed = (cur.leaseUntil ?? 0) <= now;
        if (!(lapsed && !cur.applied)) {
          // A caller without a deadline waits while the holder renews; for an applied claim that
          // lapsed (its holder stopped after the effect), one more lease for it to come back.
          const giveUp = call.deadline ?? (lapsed ? (cur.leaseUntil ?? 0) + this.leaseMs : undefined);
          if (giveUp !== undefined && Date.now() + wait >= giveUp) throw await this.stillRunning(cur, call);
          await new Promise((r) => setTimeout(r, wait));
          continue;
        }
        this.o.logger.warn(
          { tool: call.tool, holder: cur.instance, traceId: call.traceId },
          "idempotency claim lapsed (its holder stopped renewing it) before any effect: running the call here",
        );
      }
      const record: KeyRecord = { state: "running", tool: call.tool, digest, instance: me, leaseUntil: now + this.leaseMs };
      const claimed = await this.ledgerStep("claim the key", () => this.o.state.writeIf(id, record, version));
      if (claimed === undefined) continue; // another caller wrote first: look again
      const fence = new ClaimFence({
        store: this.o.state,
        id,
        index: claimed,
        record,
        label: `${this.o.agent}.${call.tool}`,
        leaseMs: this.leaseMs,
        claimedAt: now,
      });
      return this.runClaimed(fence, call, handler);
    }
  }

  private replay(rec: KeyRecord, call: KeyedCall): ToolOutcome {
    this.o.logger.info(
      { tool: call.tool, firstRanOn: rec.instance, traceId: call.traceId },
      "repeated idempotency key: returning the first result",
    );
    return rec.result !== undefined
      ? (rec.result as ToolOutcome)
      : {
          isError: true,
          content: [
            { type: "text", text: `${this.o.agent}.${call.tool} already ran with this idempotency key; its result was too large to keep.` },
          ],
        };
  }

  /** The refusal for a repeat whose deadline comes while the first call still holds the key. */
  private async stillRunning(rec: KeyRecord, call: KeyedCall): Promise<CallRefusal> {
    const what = `${this.o.agent}.${call.tool} with this idempotency key`;
    if (!rec.applied || (rec.leaseUntil ?? 0) > Date.now()) {
      return new CallRefusal(
        IN_PROGRESS_ERROR_CODE,
        `${what} is still running on ${rec.instance}; it did not finish before this call's deadline. Call again with the same key later for its result.`,
      );
    }
    const alive = this.o.isAlive ? await this.o.isAlive(rec.instance).catch(() => undefined) : undefined;
    return new CallRefusal(
      IN_PROGRESS_ERROR_CODE,
      `${what} ran on ${rec.instance} and its effect is committed, but ${rec.instance} ${alive === false ? "is not passing its health check" : "stopped renewing its claim"} and has not recorded the result yet. It will not run again. Call again with the same key later: the result is returned once ${rec.instance} records it.`,
    );
  }

  private async runClaimed(fence: ClaimFence, call: KeyedCall, handler: () => Promise<ToolOutcome>): Promise<ToolOutcome> {
    const renew = setInterval(() => {
      void fence
        .renew()
        .catch((e: unknown) =>
          this.o.logger.warn({ err: describeError(e), tool: call.tool, traceId: call.traceId }, "could not renew an idempotency claim"),
        );
    }, this.leaseMs / 3);
    renew.unref();
    let result: ToolOutcome;
    try {
      result = await withFence(fence, handler);
    } catch (e) {
      clearInterval(renew);
      if (fence.isLost) throw e; // the taker owns the key now: nothing of ours to release or record
      if (fence.applied) {
        // Part of the effect committed: the key must not run again. Record the failure as its result.
        await this.finish(fence, call, {
          isError: true,
          content: [
            {
              type: "text",
              text: `${fence.label} failed after committing part of its effect: ${describeError(e)}. It will not run again with this key.`,
            },
          ],
        });
        throw e;
      }
      await this.release(fence, call); // not completed: let a repeat run it
      throw e;
    }
    clearInterval(renew);
    // A request for the client's input is no final result: the retry that answers it claims again.
    if (isInputRequiredResult(result) && !fence.applied) {
      await this.release(fence, call);
      return result;
    }
    await this.finish(fence, call, result);
    return result;
  }

  /** Records the result, only while the claim is still ours. */
  private async finish(fence: ClaimFence, call: KeyedCall, result: ToolOutcome): Promise<void> {
    const keep = JSON.stringify(result).length <= MAX_KEPT_RESULT_BYTES;
    const done: KeyRecord = {
      state: "done",
      tool: call.tool,
      ...(fence.record.digest ? { digest: fence.record.digest } : {}),
      instance: fence.record.instance,
      ...(keep ? { result } : {}),
      expiresAt: Date.now() + this.windowMs,
    };
    const written = await fence.close(done).catch((e: unknown) => {
      this.o.logger.warn(
        { err: describeError(e), tool: call.tool, traceId: call.traceId },
        "could not keep the result for an idempotency key; a repeat after the claim lapses may run again unless an effect committed",
      );
      return true;
    });
    if (!written) {
      this.o.logger.warn(
        { tool: call.tool, traceId: call.traceId },
        "idempotency claim was taken over before the result was recorded; the taker's record stands",
      );
    }
  }

  private async release(fence: ClaimFence, call: KeyedCall): Promise<void> {
    await fence
      .close(null)
      .catch((err: unknown) => this.o.logger.warn({ err: describeError(err), tool: call.tool }, "could not release an idempotency key"));
  }

  /** The ledger's own reads and writes: an unreachable ledger is a retryable mesh failure, and nothing ran. */
  private async ledgerStep<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const code = isMeshError(e) ? e.code : undefined;
      throw new CallRefusal(
        MESH_FAILURE_ERROR_CODE,
        `${this.o.agent} could not ${what} in its shared state (${code ?? describeError(e)}); nothing ran. Try again with the same key.`,
        { code: code === "CONSUL_FORBIDDEN" ? code : "CONSUL_UNREACHABLE", retryable: code !== "CONSUL_FORBIDDEN" },
      );
    }
  }
}

/** Where a caller's key is kept: a digest of the caller and the key, so one caller never reaches another's. */
function keyId(owner: string, key: string): string {
  return createHash("sha256").update(owner).update("\0").update(key).digest("base64url");
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
