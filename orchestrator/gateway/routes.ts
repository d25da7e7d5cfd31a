// `mesh gateway` over HTTP: which endpoint serves which path (the MCP views, each agent's A2A
// endpoint, the console), each made on first use and kept.
import { hostname } from "node:os";
import { DEFAULT_MAX_BODY_BYTES } from "../../src/http/server.ts";
import { A2A_PATH, A2aAgentEndpoint } from "../../src/a2a/inbound.ts";
import { A2A_TASK_PREFIX, SharedA2aTaskStore } from "../../src/a2a/taskStore.ts";
import { CONSOLE_PATH, ConsoleEndpoint } from "../../src/console/console.ts";
import { sweepTaskRecords } from "../../src/agent/tasks.ts";
import { TASK_SWEEP_INTERVAL_MS } from "../../src/protocol/tasks.ts";
import { describeError } from "../../src/protocol/errors.ts";
import { McpEndpoint } from "../../src/mcp/endpoint.ts";
import type { MeshClient } from "../../src/client/meshClient.ts";
import type { ConsulClient } from "../../src/consul/client.ts";
import type { Gateway } from "../../src/gateway/gateway.ts";
import type { Logger } from "../../src/logger.ts";
import type { HttpSettings } from "./settings.ts";

/** The per-agent passthrough endpoint. */
const AGENT_PATH = /^\/agents\/([a-z][a-z0-9-]{0,62})\/mcp$/;

/** Where the gateway's endpoints are, for a 404's message. */
export const GATEWAY_ENDPOINTS_HINT =
  "/mcp, /agents/<name>/mcp for each agent with a healthy instance, A2A at /a2a/<name> (card: /a2a/<name>/.well-known/agent-card.json), and the console at /ui";

/**
 * The gateway's HTTP endpoints: one MCP endpoint per view (/mcp, the whole mesh;
 * /agents/<name>/mcp, one agent kind as its own servers present it, load-balanced across its
 * replicas; each serving both eras), an A2A endpoint per agent kind with an ask tool, and the
 * live web console at /ui (its API behind the same client token). It also sweeps the A2A task
 * records past their TTL (every gateway sweeps, with CAS).
 */
export class GatewayRoutes {
  private readonly gateway: Gateway;
  private readonly mesh: MeshClient;
  private readonly consul: ConsulClient;
  private readonly log: Logger;
  private readonly settings: HttpSettings;
  /** Whether clients must send a bearer token (said in the A2A agent cards). */
  private readonly bearer: boolean;
  private readonly instance = `gateway@${hostname()}/${process.pid}`;
  private readonly endpoints = new Map<string, McpEndpoint>();
  private readonly a2aEndpoints = new Map<string, A2aAgentEndpoint>();
  private readonly webConsole: ConsoleEndpoint;
  private readonly a2aSweeper: NodeJS.Timeout;

  constructor(o: { gateway: Gateway; mesh: MeshClient; consul: ConsulClient; log: Logger; settings: HttpSettings; bearer: boolean }) {
    this.gateway = o.gateway;
    this.mesh = o.mesh;
    this.consul = o.consul;
    this.log = o.log;
    this.settings = o.settings;
    this.bearer = o.bearer;
    this.endpointFor();
    this.webConsole = new ConsoleEndpoint({ gateway: o.gateway, consul: o.consul, logger: o.log, info: () => this.sessionInfo() });
    this.a2aSweeper = setInterval(
      () =>
        void sweepTaskRecords(o.consul, A2A_TASK_PREFIX)
          .then((n) => n > 0 && o.log.debug({ deleted: n }, "expired A2A task records swept"))
          .catch((e: unknown) => o.log.debug({ err: describeError(e) }, "A2A task sweep failed; trying again later")),
      TASK_SWEEP_INTERVAL_MS + Math.random() * 30_000,
    ).unref();
  }

  /** The endpoint serving `path`, or undefined (404). */
  endpoint(path: string): McpEndpoint | ConsoleEndpoint | A2aAgentEndpoint | undefined {
    if (path === "/mcp") return this.endpointFor();
    if (CONSOLE_PATH.test(path)) return this.webConsole;
    const agent = AGENT_PATH.exec(path)?.[1];
    if (agent) return this.gateway.hasAgent(agent) ? this.endpointFor(agent) : undefined;
    // A2A: each agent kind with an ask tool (the orchestrator is the whole mesh's).
    const a2aAgent = A2A_PATH.exec(path)?.[1];
    if (!a2aAgent || !this.mesh.catalog.agent(a2aAgent)?.tools.some((t) => t.name === "ask")) return undefined;
    return this.a2aFor(a2aAgent);
  }

  /** MCP sessions open across the views, and how many were evicted. */
  sessionInfo(): { sessions: number; evicted: number } {
    return {
      sessions: [...this.endpoints.values()].reduce((n, e) => n + e.legacy.size, 0),
      evicted: [...this.endpoints.values()].reduce((n, e) => n + e.legacy.evicted, 0),
    };
  }

  /** Stops the sweep, ends the console's streams and closes every MCP endpoint. */
  async close(): Promise<void> {
    clearInterval(this.a2aSweeper);
    this.webConsole.close();
    await Promise.all([...this.endpoints.values()].map((e) => e.close()));
  }

  /** The MCP endpoint of a view: one agent kind's, or the whole mesh's (no agent). */
  private endpointFor(agent?: string): McpEndpoint {
    const key = agent ?? "";
    let endpoint = this.endpoints.get(key);
    if (!endpoint) {
      const gateway = this.gateway;
      const view = gateway.viewFor(agent);
      endpoint = new McpEndpoint({
        createServer: (era) => gateway.createServer(view, era),
        onListen: (uris, closed) => gateway.listen(view, uris, closed),
        fastToolCalls: gateway.fastToolCalls(view),
        maxSessions: this.settings.maxSessions,
        idleMs: this.settings.sessionIdleMs,
        maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
        logger: this.log,
      });
      gateway.attach(view, endpoint.notify);
      this.endpoints.set(key, endpoint);
    }
    return endpoint;
  }

  /** An agent kind's A2A endpoint; its tasks in Consul KV, so any gateway replica answers for them. */
  private a2aFor(agent: string): A2aAgentEndpoint {
    let a2a = this.a2aEndpoints.get(agent);
    if (!a2a) {
      const store = new SharedA2aTaskStore({ instance: this.instance, consul: this.consul, prefix: `${A2A_TASK_PREFIX}${agent}/` });
      a2a = new A2aAgentEndpoint({ agent, mesh: this.mesh, logger: this.log, bearer: this.bearer, store, calls: this.gateway.calls });
      this.a2aEndpoints.set(agent, a2a);
    }
    return a2a;
  }
}
