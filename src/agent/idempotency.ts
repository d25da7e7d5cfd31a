import { createHash } from "node:crypto";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { fromMeta, META_PREFIX } from "../context/meshContext.ts";
import { describeError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { SharedState } from "../state/sharedState.ts";
import type { ConsulClient } from "../consul/client.ts";

/** How long the first result for an idempotency key is kept and replayed. @default 600000 (10 min) */
export const DEFAULT_IDEMPOTENCY_WINDOW_MS = 600_000;
/** How long a claim holds when the call has no deadline (then another instance may take over). @default 60000 */
export const DEFAULT_CLAIM_LEASE_MS = 60_000;
/** Results larger than this are not kept (Consul KV values are limited to 512 KiB). @default 262144 */
export const MAX_KEPT_RESULT_BYTES = 256 * 1024;
/** JSON-RPC error: the call with this key is still running elsewhere and did not finish in time. */
export const IN_PROGRESS_ERROR_CODE = -32_015;

/** One key's record, shared by every replica. */
interface KeyRecord {
  state: "running" | "done";
  tool: string;
  instance: string;
  /** running: until when the claim holds (the call's deadline). */
  leaseUntil?: number;
  /** done: the first result, replayed to repeats (absent if too large to keep). */
  result?: unknown;
  /** done: after this, the key is forgotten. */
  expiresAt?: number;
}

export interface IdempotencyOptions {
  agent: string;
  instance: string;
  /** Where records live: Consul KV (shared by replicas) or memory (one instance only). */
  state: SharedState;
  windowMs?: number;
  /** Whether an instance is alive (Consul reports it passing): a dead holder's claim is taken over. */
  isAlive?: (instance: string) => Promise<boolean>;
  logger: Logger;
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

/** Where a call's idempotency key travels in `_meta`. */
const KEY_META = `${META_PREFIX}idempotency-key`;

class Claimed extends Error {
  readonly record: KeyRecord;
  constructor(record: KeyRecord) {
    super("claimed");
    this.record = record;
  }
}

type Request = { jsonrpc: "2.0"; id: string | number; method: string; params?: { _meta?: unknown; name?: unknown } };

/**
 * Makes tools/call with an idempotency key (in `_meta`, from MeshContext) safe to repeat,
 * on any replica: the first call claims the key (check-and-set in shared state) and runs;
 * its result is kept for the window and returned to every repeat without running the tool
 * again. A repeat while the first still runs waits for its result (until its own deadline);
 * a claim whose holder died expires at the first call's deadline, and the tool may then run
 * again (the first run may not have finished). A call that ended with a JSON-RPC error (it
 * did not complete: bad arguments, deadline) releases the key. Uses only Transport hooks.
 */
export function installIdempotency(transport: Transport, o: IdempotencyOptions): void {
  const deliver = transport.onmessage;
  if (!deliver) throw new Error("installIdempotency must run after server.connect(transport)");
  const send = transport.send.bind(transport);
  const windowMs = o.windowMs ?? DEFAULT_IDEMPOTENCY_WINDOW_MS;
  /** Request id → the key it claimed. */
  const claims = new Map<string | number, string>();

  transport.send = async (message, options) => {
    if ("id" in message && ("result" in message || "error" in message)) {
      const key = claims.get(message.id as string | number);
      if (key) {
        claims.delete(message.id as string | number);
        await settle(key, message).catch((e: unknown) =>
          o.logger.warn({ err: describeError(e), key }, "could not keep the result for an idempotency key; a repeat may run again"),
        );
      }
    }
    return send(message, options);
  };

  const settle = async (key: string, message: JSONRPCMessage) => {
    if ("error" in message) {
      // Not completed: let a repeat run it.
      await o.state.update<KeyRecord | null>(key, (cur) =>
        cur?.instance === o.instance && cur.state === "running" ? null : (cur ?? null),
      );
      return;
    }
    const result = (message as { result: unknown }).result;
    const keep = JSON.stringify(result).length <= MAX_KEPT_RESULT_BYTES;
    await o.state.update<KeyRecord>(key, (cur) => ({
      state: "done",
      tool: cur?.tool ?? "",
      instance: o.instance,
      ...(keep ? { result } : {}),
      expiresAt: Date.now() + windowMs,
    }));
  };

  transport.onmessage = (message, extra) => {
    if (!("method" in message) || message.method !== "tools/call" || !("id" in message)) return deliver(message, extra);
    const req = message as Request;
    // Most calls carry no key: look for it before decoding the whole context (the context
    // middleware decodes it for the call anyway).
    const meta = req.params?._meta;
    if (typeof meta !== "object" || meta === null || !(KEY_META in meta)) return deliver(message, extra);
    const ctx = fromMeta(meta);
    if (!ctx?.idempotencyKey) return deliver(message, extra);
    const tool = typeof req.params?.name === "string" ? req.params.name : "?";
    const key = `${tool}/${createHash("sha256").update(ctx.idempotencyKey).digest("base64url")}`;
    const answer = (body: { result: unknown } | { error: { code: number; message: string } }) =>
      void send({ jsonrpc: "2.0", id: req.id, ...body } as JSONRPCMessage, { relatedRequestId: req.id });

    void (async () => {
      const lease = ctx.deadline ?? Date.now() + DEFAULT_CLAIM_LEASE_MS;
      let deadHolder: string | undefined;
      for (let wait = 25; ; wait = Math.min(wait * 2, 500)) {
        try {
          await o.state.update<KeyRecord | null>(key, (cur) => {
            const now = Date.now();
            const live = cur && (cur.state === "done" ? (cur.expiresAt ?? 0) > now : (cur.leaseUntil ?? 0) > now);
            const abandoned = cur?.state === "running" && cur.instance === deadHolder;
            if (live && !abandoned) throw new Claimed(cur);
            return { state: "running", tool, instance: o.instance, leaseUntil: lease };
          });
        } catch (e) {
          if (!(e instanceof Claimed)) {
            o.logger.warn({ err: describeError(e), tool }, "idempotency store unavailable; running the call without deduplication");
            return deliver(message, extra);
          }
          const rec = e.record;
          if (rec.state === "done") {
            o.logger.info({ tool, firstRanOn: rec.instance, traceId: ctx.traceId }, "repeated idempotency key: returning the first result");
            return answer(
              rec.result !== undefined
                ? { result: rec.result }
                : {
                    result: {
                      isError: true,
                      content: [
                        {
                          type: "text",
                          text: `${o.agent}.${tool} already ran with this idempotency key; its result was too large to keep.`,
                        },
                      ],
                    },
                  },
            );
          }
          // Its holder died mid-call (the caller failed over to us): take the claim over. The
          // first run may or may not have had its effect; that is the price of a crash.
          if (rec.instance !== o.instance && o.isAlive && !(await o.isAlive(rec.instance).catch(() => true))) {
            o.logger.warn(
              { tool, holder: rec.instance, traceId: ctx.traceId },
              "idempotency key held by a dead instance; running the call here",
            );
            deadHolder = rec.instance;
            continue;
          }
          if (ctx.deadline !== undefined && Date.now() + wait >= ctx.deadline) {
            return answer({
              error: {
                code: IN_PROGRESS_ERROR_CODE,
                message: `${o.agent}.${tool} with this idempotency key is still running on ${rec.instance}; it did not finish before this call's deadline. Call again later for its result.`,
              },
            });
          }
          await new Promise((r) => setTimeout(r, wait));
          continue;
        }
        claims.set(req.id, key);
        return deliver(message, extra);
      }
    })();
  };
}
