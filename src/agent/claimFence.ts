import { claimLost, type Fence, type FenceGuard } from "../state/fence.ts";
import type { SharedState } from "../state/sharedState.ts";

/** One key's record, shared by every replica. */
export interface KeyRecord {
  state: "running" | "done";
  tool: string;
  /** SHA-256 of the tool and its arguments: a key is bound to one request. */
  digest?: string;
  instance: string;
  /** running: until when the claim holds unless renewed. */
  leaseUntil?: number;
  /**
   * running: an effect of this call committed (fenced, in one transaction with this record):
   * the call must never run again under this key, even if its holder never comes back.
   */
  applied?: boolean;
  /** done: the first result, replayed to repeats (absent if too large to keep). */
  result?: unknown;
  /** done: after this, the key is forgotten. */
  expiresAt?: number;
}

/**
 * The fence of one held claim: the claim record's version as this holder last wrote it.
 * Renewals, fenced effects (sharedState) and the final record take turns through one chain,
 * each a check-and-set on that version.
 */
export class ClaimFence implements Fence {
  readonly kind = "claim";
  readonly label: string;
  record: KeyRecord;
  private index: number;
  /** Local time just before the claim's last successful write: its lease runs from then. */
  private confirmedAt: number;
  private readonly leaseMs: number;
  private chain: Promise<unknown> = Promise.resolve();
  private state: "held" | "lost" | "closed" = "held";
  private effect = false;
  private readonly store: SharedState;
  private readonly id: string;

  constructor(o: { store: SharedState; id: string; index: number; record: KeyRecord; label: string; leaseMs: number; claimedAt: number }) {
    this.store = o.store;
    this.id = o.id;
    this.index = o.index;
    this.record = o.record;
    this.label = o.label;
    this.leaseMs = o.leaseMs;
    this.confirmedAt = o.claimedAt;
  }

  get open(): boolean {
    return this.state === "held";
  }
  get applied(): boolean {
    return this.effect;
  }
  get isLost(): boolean {
    return this.state === "lost";
  }

  guard(): FenceGuard | undefined {
    const key = this.store.kvKey(this.id);
    if (key === undefined || this.state !== "held") return undefined;
    const sentAt = Date.now();
    return { key, index: this.index, sentAt, value: JSON.stringify({ ...this.record, applied: true, leaseUntil: sentAt + this.leaseMs }) };
  }

  committed(claimIndex: number, sentAt: number): void {
    this.index = claimIndex;
    this.confirmedAt = sentAt;
    this.effect = true;
    this.record = { ...this.record, applied: true, leaseUntil: sentAt + this.leaseMs };
  }

  lost(detail?: string): never {
    if (this.state === "held") this.state = "lost";
    throw claimLost(this.label, detail);
  }

  assertHeld(): void {
    if (this.state === "lost") throw claimLost(this.label);
  }

  async verify(): Promise<void> {
    this.assertHeld();
    // A taker needs the lease to have lapsed; a third of it is left for the effect itself and for
    // clock skew between hosts. Past that (this process was paused, or renewals failed), renew now.
    if (Date.now() - this.confirmedAt < (this.leaseMs * 2) / 3) return;
    await this.renew();
    this.assertHeld();
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Extends the lease (check-and-set on our version); a changed record means the claim was taken. */
  renew(): Promise<void> {
    return this.exclusive(async () => {
      if (this.state !== "held") return;
      const sent = Date.now();
      const record = { ...this.record, leaseUntil: sent + this.leaseMs };
      const v = await this.store.writeIf(this.id, record, this.index);
      if (v === undefined) {
        this.state = "lost";
        return;
      }
      this.index = v;
      this.record = record;
      this.confirmedAt = sent;
    });
  }

  /** Writes the final record (null: releases the key) if the claim is still ours; false if it was taken. */
  close(final: KeyRecord | null): Promise<boolean> {
    return this.exclusive(async () => {
      if (this.state === "lost") return false;
      this.state = "closed";
      return (await this.store.writeIf(this.id, final, this.index)) !== undefined;
    });
  }
}
