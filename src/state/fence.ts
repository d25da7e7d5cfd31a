import { AsyncLocalStorage } from "node:async_hooks";
import { MeshError } from "../protocol/errors.ts";

/**
 * The claim a call holds on its idempotency key, as a fencing token: the claim record's
 * version (Consul's ModifyIndex) while this holder still has it. A write of shared state made
 * while a fence is current commits only together with a check that the claim is unchanged (one
 * Consul transaction), so a holder that lost its claim — paused past its lease, cut off from
 * Consul — can never book after another replica took the key over.
 */
export interface Fence {
  /** An idempotency key's claim, or a running task's record (agent/taskFence.ts). */
  readonly kind: "claim" | "task";
  /** What holds the claim, for messages: "finance.submit_expense (idempotency key)". */
  readonly label: string;
  /**
   * The claim record's full KV key, its version now, and the record to write with an effect
   * (marked applied: a taker must never run the call again once an effect committed).
   * Undefined when the claim is not kept in Consul (one process: nothing to fence against).
   */
  guard(): FenceGuard | undefined;
  /** After a fenced write committed: the claim's new version (its lease renewed from `sentAt`), and that an effect is applied. */
  committed(claimIndex: number, sentAt: number): void;
  /**
   * The guarded record's version moved under this holder in a way that may leave it held (a
   * task's record moves with every heartbeat, cancel request and input): re-reads it; true if
   * still held, with the guard's version refreshed. Absent: any move means the claim was lost.
   */
  reconfirm?(): Promise<boolean>;
  /** The claim is known lost: marks it and throws CLAIM_LOST (nothing was written). */
  lost(detail?: string): never;
  /** Throws CLAIM_LOST if the claim is already known lost. */
  assertHeld(): void;
  /**
   * Proves the claim is still held before an effect that cannot be fenced: from the lease (no
   * request) while its last renewal is recent enough that no taker can have taken it over, else
   * by renewing it now. Throws CLAIM_LOST if it was taken.
   */
  verify(): Promise<void>;
  /** Runs `fn` alone among this claim's writes (renewals and effects take turns). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** True once a fenced effect committed. */
  readonly applied: boolean;
  /** Whether the fence still guards writes (it closes when the claim's record is written). */
  readonly open: boolean;
}

/** What a fenced write must check and rewrite: the claim's key, its version, its next record. */
export interface FenceGuard {
  key: string;
  index: number;
  value: string;
  /** Local time the record's renewed lease runs from. */
  sentAt: number;
}

const fences = new AsyncLocalStorage<Fence>();

/** Runs `fn` with `fence` guarding every shared-state write made inside it. */
export function withFence<T>(fence: Fence, fn: () => T): T {
  return fences.run(fence, fn);
}

/** The fence guarding writes here, if a claim is held and still open. */
export function currentFence(): Fence | undefined {
  const f = fences.getStore();
  return f?.open ? f : undefined;
}

/**
 * For a handler about to make an effect outside Consul (an HTTP call, a file, a message):
 * resolves if this call still holds its idempotency claim, throws CLAIM_LOST if another instance
 * took it over (this one was paused or cut off past its lease). Outside a keyed call it resolves
 * at once. Such effects cannot be fenced by Consul: checking right before them leaves only the
 * moments between the check and the effect (and clock skew between hosts) unguarded.
 */
export async function claimStillHeld(): Promise<void> {
  await currentFence()?.verify();
}

/** The error a holder gets once its claim is gone. Retryable: a repeat gets the taker's result. */
export function claimLost(label: string, detail?: string): MeshError {
  return new MeshError(
    "CLAIM_LOST",
    `${label}: this instance no longer holds the idempotency key's claim (${detail ?? "another instance took it over while this one was paused or cut off from Consul"}); nothing more was written here. Call again with the same key for the result.`,
    { retryable: true },
  );
}
