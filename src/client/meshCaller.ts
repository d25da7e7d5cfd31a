import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { ConsulClient, ServiceEntry } from "../consul/client.ts";
import { MeshError, describeError } from "../errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { notDelivered } from "./delivery.ts";

export interface CallToolOptions {
  signal?: AbortSignal;
  /** Per-call timeout. @default DEFAULT_CALL_TIMEOUT_MS */
  timeoutMs?: number;
  /** Told which instance the call was sent to (for logs and demos). */
  onInstance?: (instanceId: string) => void;
}

/** Default per-call timeout of agent-to-agent calls. @default 30000 */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/** Calls a tool of another agent, wherever its healthy instances are. */
export interface MeshCaller {
  callTool(agent: string, tool: string, args: Record<string, unknown>, options?: CallToolOptions): Promise<CallToolResult>;
  close(): Promise<void>;
}

export interface ConsulMeshCallerOptions {
  consul: ConsulClient;
  /** Name this caller gives itself in MCP initialize. */
  clientName: string;
  logger?: Logger;
}

/** The MCP URL an instance serves, from its Consul registration. */
export function instanceUrl(entry: Pick<ServiceEntry, "address" | "port" | "meta">): string {
  const host = entry.address.includes(":") ? `[${entry.address}]` : entry.address;
  return `http://${host}:${entry.port}${entry.meta["mcp_path"] ?? "/mcp"}`;
}

/**
 * Discovers passing instances of the target agent in Consul on each call, round-robins
 * across them, and reuses one MCP client connection per instance. A call that provably
 * never ran (connection refused, session unknown after a restart, instance draining) is
 * sent to the next instance; any other failure is the caller's to see.
 */
export class ConsulMeshCaller implements MeshCaller {
  private readonly consul: ConsulClient;
  private readonly clientName: string;
  private readonly logger: Logger;
  private readonly clients = new Map<string, Promise<Client>>();
  private readonly cursor = new Map<string, number>();

  constructor(options: ConsulMeshCallerOptions) {
    this.consul = options.consul;
    this.clientName = options.clientName;
    this.logger = (options.logger ?? silentLogger).child({ component: "mesh-caller" });
  }

  async callTool(agent: string, tool: string, args: Record<string, unknown>, options: CallToolOptions = {}): Promise<CallToolResult> {
    const { value: instances } = await this.consul.healthService(agent, { passing: true, signal: options.signal });
    if (instances.length === 0) {
      throw new MeshError(
        "NO_HEALTHY_INSTANCE",
        `No healthy instance of agent "${agent}" is registered in Consul at ${this.consul.address.url}. Start one (mesh serve ${agent}) or check "mesh agents".`,
        { retryable: true, details: { agent } },
      );
    }
    const start = (this.cursor.get(agent) ?? 0) % instances.length;
    this.cursor.set(agent, start + 1);
    const order = [...instances.slice(start), ...instances.slice(0, start)];
    let lastError: unknown;
    for (const instance of order) {
      // A restarted instance (same address) forgets our session: one fresh session is safe.
      for (let attempt = 0; attempt < 2; attempt++) {
        let client: Client;
        try {
          client = await this.client(instance);
        } catch (e) {
          lastError = e;
          this.logger.warn({ instance: instance.id, err: describeError(e) }, "cannot connect to instance; trying the next one");
          break;
        }
        options.onInstance?.(instance.id);
        try {
          return (await client.callTool({ name: tool, arguments: args }, undefined, {
            signal: options.signal,
            timeout: options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
          })) as CallToolResult;
        } catch (e) {
          this.evict(instance.id);
          const reason = notDelivered(e);
          // The request may have reached the agent: never silently call again elsewhere.
          if (!reason || options.signal?.aborted) throw e;
          lastError = e;
          this.logger.info({ instance: instance.id, reason }, "call was not delivered; trying again");
          if (reason !== "session-unknown") break;
        }
      }
    }
    throw new MeshError(
      "AGENT_UNREACHABLE",
      `No healthy instance of agent "${agent}" took the call (${order.map((i) => i.id).join(", ")}): ${describeError(lastError)}`,
      { retryable: true, cause: lastError, details: { agent } },
    );
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.allSettled(all.map(async (c) => (await c).close()));
  }

  private client(instance: ServiceEntry): Promise<Client> {
    const key = `${instance.id}@${instanceUrl(instance)}`;
    let pending = this.clients.get(key);
    if (!pending) {
      pending = (async () => {
        const client = new Client({ name: this.clientName, version: "1" });
        client.onclose = () => this.clients.delete(key);
        await client.connect(new StreamableHTTPClientTransport(new URL(instanceUrl(instance))));
        return client;
      })();
      pending.catch(() => this.clients.delete(key));
      this.clients.set(key, pending);
    }
    return pending;
  }

  private evict(instanceId: string): void {
    for (const [key, pending] of this.clients) {
      if (key.startsWith(`${instanceId}@`)) {
        this.clients.delete(key);
        void pending.then((c) => c.close()).catch(() => undefined);
      }
    }
  }
}
