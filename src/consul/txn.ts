import type { HttpResponse } from "./http.ts";
import type { Settled } from "./requests.ts";

/** One operation of a KV transaction (Consul's verbs, the few toolmesh uses). */
export type KvTxnOp =
  | { verb: "cas"; key: string; value: string; index: number }
  | { verb: "set"; key: string; value: string }
  | { verb: "check-index"; key: string; index: number }
  | { verb: "delete-cas"; key: string; index: number };

export type KvTxnResult =
  { ok: true; results: { key: string; modifyIndex: number }[] } | { ok: false; failed: { op: number; what: string }[] };

/** Reads a key from the leader (consistent): how a transaction that got no answer is read back. */
export type ReadKey = (key: string) => Promise<{ value: string; modifyIndex: number } | undefined>;

/** The body of `PUT /v1/txn` for these operations (values base64, as Consul takes them). */
export function txnBody(ops: readonly KvTxnOp[]): unknown[] {
  return ops.map((op) => ({
    KV: {
      Verb: op.verb,
      Key: op.key,
      ...("value" in op ? { Value: Buffer.from(op.value, "utf8").toString("base64") } : {}),
      ...("index" in op ? { Index: op.index } : {}),
    },
  }));
}

/**
 * What Consul's answer to a transaction says: the operations that failed their checks (409:
 * nothing was written), or the new ModifyIndex of each written key, also when the answer is
 * a read-back's (`settled`, see settleTxn).
 */
export function txnResult(res: HttpResponse): KvTxnResult {
  if (res.status === 409) {
    const errors = ((res.body as { Errors?: { OpIndex?: number; What?: string }[] } | undefined)?.Errors ?? []).map((x) => ({
      op: x.OpIndex ?? -1,
      what: x.What ?? "",
    }));
    return { ok: false, failed: errors };
  }
  if ((res.body as { settled?: KvTxnResult } | undefined)?.settled) return (res.body as { settled: KvTxnResult }).settled;
  const results = ((res.body as { Results?: { KV?: { Key: string; ModifyIndex: number } }[] } | undefined)?.Results ?? []).map((r) => ({
    key: r.KV?.Key ?? "",
    modifyIndex: r.KV?.ModifyIndex ?? 0,
  }));
  return { ok: true, results };
}

/** Whether a transaction that got no answer applied: a transaction is all or nothing, so its first write tells. */
export async function settleTxn(ops: readonly KvTxnOp[], read: ReadKey): Promise<Settled> {
  const first = ops.find((op) => op.verb !== "check-index");
  if (!first) return { applied: false }; // only checks: nothing to apply twice
  const now = await read(first.key);
  if (first.verb === "delete-cas") {
    if (!now) return { applied: true, value: { settled: { ok: true, results: [] } } };
    return now.modifyIndex === first.index ? { applied: false } : undefined;
  }
  if (first.verb === "cas" && (now?.modifyIndex ?? 0) === first.index) return { applied: false };
  if (!now || now.value !== first.value) return undefined;
  const results: { key: string; modifyIndex: number }[] = [];
  for (const op of ops) {
    if (op.verb !== "cas" && op.verb !== "set") continue;
    const entry = op.key === first.key ? now : await read(op.key);
    results.push({ key: op.key, modifyIndex: entry?.modifyIndex ?? 0 });
  }
  return { applied: true, value: { settled: { ok: true, results } } };
}
