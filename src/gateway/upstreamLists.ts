import type { McpSubscription } from "@modelcontextprotocol/client";
import type { MeshClient } from "../client/meshClient.ts";
import { describeError } from "../protocol/errors.ts";
import type { Logger } from "../logger.ts";

/** Wait before listening again after an agent's listen stream ended. @default 1000 */
export const RELISTEN_DELAY_MS = 1_000;

/**
 * One `subscriptions/listen` stream per agent kind (on one of its instances, over the
 * shared connections) for its tools, prompts and resources list changes: an agent's own
 * changes (a tool added at run time, prompts that changed) reach the gateway's clients
 * with no Consul round trip, as they would reach the agent's own clients. Membership
 * changes (agents coming and going) come from the Consul watch. A 2025-era agent sends the
 * same notifications on its session without a stream; an agent that does not support
 * listening is left alone.
 */
export class UpstreamLists {
  private readonly streams = new Map<string, Promise<McpSubscription | undefined>>();
  private readonly mesh: MeshClient;
  private readonly logger: Logger;
  private closed = false;

  constructor(mesh: MeshClient, logger: Logger) {
    this.mesh = mesh;
    this.logger = logger;
  }

  /** Listens to every agent with a healthy instance; stops listening to agents that have none. */
  sync(agents: readonly string[]): void {
    if (this.closed) return;
    for (const agent of agents) if (!this.streams.has(agent)) this.open(agent);
    for (const agent of [...this.streams.keys()]) if (!agents.includes(agent)) this.stop(agent);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.streams.values()];
    this.streams.clear();
    await Promise.allSettled(all.map(async (s) => (await s)?.close()));
  }

  private open(agent: string): void {
    const stream: Promise<McpSubscription | undefined> = this.mesh
      .withAgent(agent, async (client) => {
        if (client.getProtocolEra() !== "modern") return undefined;
        const caps = client.getServerCapabilities() ?? {};
        const filter = {
          toolsListChanged: Boolean(caps.tools?.listChanged),
          promptsListChanged: Boolean(caps.prompts?.listChanged),
          resourcesListChanged: Boolean(caps.resources?.listChanged),
        };
        // An agent that announces no list changes has nothing to listen to.
        if (!filter.toolsListChanged && !filter.promptsListChanged && !filter.resourcesListChanged) return undefined;
        return client.listen(filter);
      })
      .catch((e: unknown) => {
        this.logger.debug(
          { agent, err: describeError(e) },
          "cannot listen to an agent's list changes; its membership changes still come from Consul",
        );
        return undefined;
      });
    this.streams.set(agent, stream);
    void stream.then((sub) =>
      sub?.closed.then((how) => {
        if (how === "local" || this.streams.get(agent) !== stream) return;
        // The instance went away or ended the stream: listen again (on whichever instance is healthy).
        this.streams.delete(agent);
        setTimeout(() => {
          if (!this.closed && !this.streams.has(agent) && (this.mesh.catalog.agent(agent)?.instances.length ?? 0) > 0) this.open(agent);
        }, RELISTEN_DELAY_MS).unref();
      }),
    );
  }

  private stop(agent: string): void {
    const stream = this.streams.get(agent);
    this.streams.delete(agent);
    void stream?.then((s) => s?.close()).catch(() => undefined);
  }
}
