import type { Client, Implementation, ServerCapabilities } from "@modelcontextprotocol/client";

/** Where 2026-07-28 puts serverInfo in a result's `_meta`. */
const SERVER_INFO_META = "io.modelcontextprotocol/serverInfo";

/** An upstream server as it introduced itself. */
export interface UpstreamIdentity {
  info: Implementation;
  capabilities: ServerCapabilities;
  instructions?: string;
}

function isImplementation(v: unknown): v is Implementation {
  const o = v as { name?: unknown; version?: unknown } | null;
  return typeof o === "object" && o !== null && typeof o.name === "string" && typeof o.version === "string";
}

/** What each agent kind said it is when its tool list was last fetched (serverInfo, capabilities, instructions). */
export class UpstreamIdentities {
  private readonly identities = new Map<string, UpstreamIdentity>();

  /** The agent kind's identity; undefined until known. */
  get(agent: string): UpstreamIdentity | undefined {
    return this.identities.get(agent);
  }

  /** Keeps what the agent's connection says it is (asking server/discover when the connection skipped it). */
  async learn(agent: string, client: Client, signal: AbortSignal): Promise<void> {
    let info = client.getServerVersion();
    let capabilities = client.getServerCapabilities();
    let instructions = client.getInstructions();
    // A connection made from what the agent published in Consul skipped server/discover:
    // ask once (a catalog refresh is rare), so the identity is the agent's own word.
    if (!info) {
      const found = await client.discover({ signal }).catch(() => undefined);
      // 2026-07-28 carries serverInfo in every result's _meta, server/discover's included.
      const said = (found as { _meta?: Record<string, unknown> } | undefined)?._meta?.[SERVER_INFO_META];
      if (found && isImplementation(said)) {
        info = said;
        capabilities = found.capabilities;
        instructions = found.instructions;
      }
    }
    if (info && capabilities) this.identities.set(agent, { info, capabilities, ...(instructions ? { instructions } : {}) });
  }
}
