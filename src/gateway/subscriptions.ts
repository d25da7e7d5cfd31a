import type { Client } from "@modelcontextprotocol/client";
import type { MeshClient } from "../client/meshClient.ts";
import { describeError } from "../protocol/errors.ts";
import type { Logger } from "../logger.ts";

/** Wait before subscribing again upstream after an instance dropped a subscription. @default 1000 */
export const RESUBSCRIBE_DELAY_MS = 1_000;

type Listener = (uri: string) => void;

interface Upstream {
  agent: string;
  listeners: Set<Listener>;
  /** Ends the upstream subscription (closes the listen stream, or unsubscribes). */
  release: Promise<(() => Promise<void>) | undefined>;
}

/**
 * The gateway's resource subscriptions to its agents, one upstream subscription per URI
 * however many clients want it: a 2025-era session's `resources/subscribe`, or a URI in a
 * 2026-07-28 client's `subscriptions/listen` filter. Upstream, each is a listen stream on
 * a 2026-07-28 agent (or `resources/subscribe` on a 2025-era one), on the shared
 * connections; an update that arrives is handed to every listener of its URI. When the
 * instance holding one goes away, it is made again on another. Nothing here is per
 * client beyond the listeners: a second gateway replica rebuilds it from its own clients.
 */
export class ResourceSubscriptions {
  private readonly upstream = new Map<string, Upstream>();
  private closed = false;

  private readonly mesh: MeshClient;
  private readonly logger: Logger;

  constructor(mesh: MeshClient, logger: Logger) {
    this.mesh = mesh;
    this.logger = logger;
  }

  /** An update from an agent (any connection of the shared pool). */
  updated(uri: string): void {
    for (const listener of this.upstream.get(uri)?.listeners ?? []) listener(uri);
  }

  /**
   * Adds a listener for `uri` (owned by `agent`), subscribing upstream if it is the first;
   * resolves once the agent accepted (rejects, with nothing kept, if it refused).
   * Returns the function that removes the listener again.
   */
  async acquire(uri: string, agent: string, listener: Listener): Promise<() => Promise<void>> {
    let entry = this.upstream.get(uri);
    if (!entry) {
      entry = { agent, listeners: new Set(), release: this.subscribe(uri, agent) };
      this.upstream.set(uri, entry);
      entry.release.catch(() => {
        if (this.upstream.get(uri) === entry) this.upstream.delete(uri);
      });
    }
    entry.listeners.add(listener);
    try {
      await entry.release;
    } catch (e) {
      entry.listeners.delete(listener);
      throw e;
    }
    const held = entry;
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      held.listeners.delete(listener);
      if (held.listeners.size > 0 || this.upstream.get(uri) !== held) return;
      this.upstream.delete(uri);
      await (await held.release.catch(() => undefined))?.().catch(() => undefined);
    };
  }

  /** Ends every upstream subscription. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.upstream.values()];
    this.upstream.clear();
    await Promise.allSettled(all.map(async (u) => (await u.release.catch(() => undefined))?.()));
  }

  private subscribe(uri: string, agent: string): Promise<(() => Promise<void>) | undefined> {
    let instance: string | undefined;
    return this.mesh.withAgent(
      agent,
      async (client: Client) => {
        if (client.getProtocolEra() === "modern") {
          const sub = await client.listen({ resourceSubscriptions: [uri] });
          void sub.closed.then((how) => {
            if (how === "remote") this.resubscribe(uri, instance);
          });
          return () => sub.close();
        }
        await client.subscribeResource({ uri });
        return async () => {
          await this.mesh.withAgent(agent, (c) => c.unsubscribeResource({ uri }), instance ? { prefer: instance } : {});
        };
      },
      { onInstance: (id) => (instance = id) },
    );
  }

  /** The instance holding `uri`'s subscription dropped it: make it again elsewhere while anyone listens. */
  private resubscribe(uri: string, lost: string | undefined): void {
    const entry = this.upstream.get(uri);
    if (!entry || this.closed) return;
    this.logger.info({ uri, instance: lost }, "an agent dropped a resource subscription; subscribing again");
    setTimeout(() => {
      if (this.closed || this.upstream.get(uri) !== entry || entry.listeners.size === 0) return;
      entry.release = this.subscribe(uri, entry.agent);
      entry.release.catch((e: unknown) => {
        this.logger.warn({ uri, err: describeError(e) }, "cannot subscribe to a resource again; its listeners get no more updates");
      });
    }, RESUBSCRIBE_DELAY_MS).unref();
  }
}
