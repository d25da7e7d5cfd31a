import { EventEmitter } from "node:events";
import type { ConsulClient } from "../consul/client.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";
import { parsePolicy, PolicyEngine, POLICY_KV_KEY } from "./policy.ts";

/** Wait after a failed watch before asking Consul again. @default 1000 */
export const POLICY_RETRY_MS = 1_000;

/**
 * The gateway's tool policy, kept live from Consul KV with a blocking query: every gateway
 * replica sees a change within one round trip, and emits "change" (the views' tool lists are
 * announced again). A document that does not parse is refused with an error in the log and
 * the last good policy stays in force; if the first one read is bad, nothing is allowed
 * (fail closed) until it is fixed. A missing key: no policy, everything allowed.
 */
export class PolicyStore extends EventEmitter<{ change: [PolicyEngine] }> {
  private current = new PolicyEngine(undefined);
  private readonly consul: ConsulClient;
  private readonly key: string;
  private readonly logger: Logger;
  private readonly stop = new AbortController();
  private lastText: string | undefined;

  constructor(o: { consul: ConsulClient; key?: string; logger?: Logger }) {
    super();
    this.consul = o.consul;
    this.key = o.key ?? POLICY_KV_KEY;
    this.logger = (o.logger ?? silentLogger).child({ component: "policy" });
  }

  get engine(): PolicyEngine {
    return this.current;
  }

  /** Reads the policy once (before the gateway serves), then watches it until close(). */
  async start(): Promise<void> {
    const first = await this.consul.kvGetBlocking(this.key, { signal: this.stop.signal });
    this.apply(first.value?.value, true);
    void this.watch(first.index);
  }

  close(): void {
    this.stop.abort();
  }

  private async watch(from: string): Promise<void> {
    let index = from;
    while (!this.stop.signal.aborted) {
      try {
        const next = await this.consul.kvGetBlocking(this.key, { index, wait: "30s", signal: this.stop.signal });
        // An index that goes backwards (a Consul restart) starts over (CONSUL.md).
        index = Number(next.index) < Number(index) ? "0" : next.index;
        this.apply(next.value?.value, false);
      } catch (e) {
        if (this.stop.signal.aborted) return;
        this.logger.warn({ err: describeError(e) }, "cannot watch the tool policy in Consul; the last one read stays in force");
        await new Promise((r) => setTimeout(r, POLICY_RETRY_MS).unref());
      }
    }
  }

  private apply(text: string | undefined, first: boolean): void {
    if (text === this.lastText && !first) return; // a return is not a change (CONSUL.md)
    this.lastText = text;
    if (text === undefined) {
      this.current = new PolicyEngine(undefined);
      this.logger.info({ key: this.key }, "no tool policy in Consul: every caller may call every tool");
    } else {
      try {
        this.current = new PolicyEngine(parsePolicy(text, this.key));
        this.logger.info({ key: this.key, rules: this.current.policy!.rules.length }, "tool policy loaded");
      } catch (e) {
        this.logger.error(
          { key: this.key, err: describeError(e) },
          first ? "tool policy refused: nothing is allowed until it is fixed" : "tool policy refused: the last good one stays in force",
        );
        if (first) this.current = new PolicyEngine({ version: 1, rules: [] });
        else return;
      }
    }
    this.emit("change", this.current);
  }
}
