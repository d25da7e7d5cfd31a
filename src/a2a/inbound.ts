import type { IncomingMessage, ServerResponse } from "node:http";
import { A2A_PROTOCOL_VERSION, A2A_VERSION_HEADER, AgentCard, type AgentSkill } from "@a2a-js/sdk";
import { defaultServerCallContextBuilder, JsonRpcTransportHandler, UnauthenticatedUser, validateVersion } from "@a2a-js/sdk/server";
import { RequestMalformedError } from "@a2a-js/sdk/errors";
import type { MeshClient } from "../client/meshClient.ts";
import type { Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";
import { MAX_ARGUMENT_DEPTH, nestsDeeperThan } from "../protocol/limits.ts";
import { MeshA2aRequestHandler, SharedA2aTaskStore } from "./taskStore.ts";
import { AskExecutor } from "./askExecutor.ts";
import { RecentCalls } from "../gateway/callLog.ts";

/** Where the gateway serves A2A: /a2a/<agent> (JSON-RPC) and /a2a/<agent>/.well-known/agent-card.json. */
export const A2A_PATH = /^\/a2a\/([a-z][a-z0-9-]{0,62})(\/\.well-known\/agent-card\.json)?\/?$/;

/**
 * Deepest nesting of a JSON-RPC request at /a2a: the A2A envelope's own levels (at most 8,
 * e.g. params.message.parts[i].data) plus what a tool's arguments may have. Checked before
 * the SDK walks the request (recursively). @default 40
 */
export const A2A_MAX_DEPTH = MAX_ARGUMENT_DEPTH + 8;

/**
 * One agent kind of the mesh as an A2A 1.0 agent (JSON-RPC over HTTP, SSE streaming), built on
 * the official A2A JavaScript SDK: its Agent Card lists the agent's tools as skills (its `ask`
 * tool with its example questions first), and a message is answered by the agent's `ask`
 * through the mesh, with the A2A context as the mesh session (one per client and context id:
 * sessionFor). Its tasks live in the mesh's shared state (a2aTasks.ts), so every gateway
 * replica answers for them, to the client that created them only.
 */
export class A2aAgentEndpoint {
  private readonly agent: string;
  private readonly mesh: MeshClient;
  private readonly logger: Logger;
  private readonly bearer: boolean;
  private readonly handler: MeshA2aRequestHandler;
  private readonly transport: JsonRpcTransportHandler;
  private origin = "http://127.0.0.1";

  /** `store`: where its tasks live (one per agent kind; in memory when omitted, for tests). */
  constructor(o: { agent: string; mesh: MeshClient; logger: Logger; bearer: boolean; store?: SharedA2aTaskStore; calls?: RecentCalls }) {
    this.agent = o.agent;
    this.mesh = o.mesh;
    this.logger = o.logger;
    this.bearer = o.bearer;
    const store = o.store ?? new SharedA2aTaskStore({ instance: "gateway" });
    this.handler = new MeshA2aRequestHandler(
      this.card(),
      store,
      new AskExecutor(o.agent, o.mesh, o.logger, store, o.calls ?? new RecentCalls()),
    );
    this.transport = new JsonRpcTransportHandler(this.handler);
  }

  /**
   * The agent card, for the address clients reach this gateway by, in the SDK's in-memory shape
   * (its request handler takes that); cardJson() is what goes on the wire.
   */
  card(): AgentCard {
    const info = this.mesh.catalog.agent(this.agent);
    const tools = info?.tools ?? [];
    const ask = tools.find((t) => t.name === "ask");
    const examples = examplesOf(ask?.description ?? "");
    const skills: AgentSkill[] = [
      ...(ask
        ? [
            {
              id: "ask",
              name: ask.title ?? `Ask ${this.agent}`,
              description: ask.description || `Ask ${this.agent} in words.`,
              // A skill has at least one tag (A2A 1.0 requires it).
              tags: nonEmpty(info?.tags.filter((t) => t !== "mcp") ?? [], [this.agent]),
              examples,
              inputModes: ["text/plain"],
              outputModes: ["text/plain"],
              securityRequirements: [],
            },
          ]
        : []),
      ...tools
        .filter((t) => t.name !== "ask")
        .map((t) => ({
          id: t.name,
          name: t.title ?? t.name,
          description: `${t.description ?? ""} (an MCP tool of ${this.agent}: call it through the gateway's /mcp as ${this.agent}__${t.name}; over A2A, ask in words)`,
          tags: [this.agent],
          examples: [],
          inputModes: ["text/plain"],
          outputModes: ["text/plain"],
          securityRequirements: [],
        })),
    ];
    return {
      name: this.agent,
      description: info?.description || `The ${this.agent} agent of a toolmesh mesh.`,
      provider: undefined,
      supportedInterfaces: [
        { url: `${this.origin}/a2a/${this.agent}`, protocolBinding: "JSONRPC", tenant: "", protocolVersion: A2A_PROTOCOL_VERSION },
      ],
      version: "1.0.0",
      capabilities: { streaming: true, pushNotifications: false, extensions: [], extendedAgentCard: false },
      securitySchemes: this.bearer
        ? {
            bearer: {
              scheme: {
                $case: "httpAuthSecurityScheme",
                value: { scheme: "Bearer", bearerFormat: "opaque", description: "The gateway's client token (MESH_GATEWAY_TOKEN)" },
              },
            },
          }
        : {},
      securityRequirements: this.bearer ? [{ schemes: { bearer: { list: [] } } }] : [],
      defaultInputModes: ["text/plain"],
      defaultOutputModes: ["text/plain"],
      skills,
      signatures: [],
    };
  }

  /**
   * The agent card as A2A 1.0 JSON: ProtoJSON of the card (the specification's section 5.5 and
   * ADR-001), by the SDK's own converter. A oneof is its member's field, so the bearer scheme is
   * `{"httpAuthSecurityScheme": {"scheme": "Bearer", …}}`, never the in-memory
   * `{"scheme": {"$case": …}}` that strict parsers refuse and the Python SDK drops.
   */
  cardJson(): unknown {
    return AgentCard.toJSON(this.card());
  }

  /** The agent card is public (it says how to authenticate); the JSON-RPC endpoint is not. */
  isPublic(req: IncomingMessage): boolean {
    return req.method === "GET" && (req.url ?? "").split("?")[0]!.endsWith("/.well-known/agent-card.json");
  }

  async handle(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    this.origin = `http://${req.headers.host ?? "127.0.0.1"}`;
    if (req.method === "GET" && (req.url ?? "").split("?")[0]!.endsWith("/agent-card.json")) {
      const json = JSON.stringify(this.cardJson());
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache" }).end(json);
      return;
    }
    if (req.method !== "POST") {
      res
        .writeHead(405, { allow: "GET, POST", "content-type": "application/json" })
        .end(JSON.stringify({ error: "POST JSON-RPC here; GET .well-known/agent-card.json" }));
      return;
    }
    // Only an id JSON-RPC allows is echoed (a nested one is no id).
    const given = (body as { id?: unknown } | undefined)?.id;
    const id = typeof given === "string" || typeof given === "number" ? given : null;
    try {
      if (nestsDeeperThan(body, A2A_MAX_DEPTH))
        throw new RequestMalformedError(
          `Invalid params: the request nests deeper than ${A2A_MAX_DEPTH} levels (its metadata or data parts); send flatter JSON.`,
        );
      const requestedVersion = header(req, A2A_VERSION_HEADER);
      const context = defaultServerCallContextBuilder({
        extensions: undefined,
        user: new UnauthenticatedUser(),
        headers: req.headers as never,
        ...(requestedVersion ? { requestedVersion } : {}),
      });
      validateVersion(context.requestedVersion, this.card(), "JSONRPC");
      const answer = await this.transport.handle(body as Record<string, unknown>, context);
      if (typeof (answer as AsyncGenerator)[Symbol.asyncIterator] !== "function") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
        return;
      }
      const stream = answer as AsyncGenerator<unknown>;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      try {
        for await (const event of stream) {
          if (res.destroyed) break;
          res.write(`data: ${JSON.stringify(event)}\n\n`);
        }
      } catch (e) {
        if (!res.destroyed)
          res.write(
            `event: error\ndata: ${JSON.stringify({ jsonrpc: "2.0", id, error: JsonRpcTransportHandler.mapToJSONRPCError(e) })}\n\n`,
          );
      } finally {
        if (!res.writableEnded) res.end();
      }
    } catch (e) {
      this.logger.debug({ agent: this.agent, err: describeError(e) }, "A2A request refused");
      if (!res.headersSent)
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ jsonrpc: "2.0", id, error: JsonRpcTransportHandler.mapToJSONRPCError(e) }));
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function nonEmpty<T>(list: T[], otherwise: T[]): T[] {
  return list.length > 0 ? list : otherwise;
}

/** The example questions an `ask` tool lists at the end of its description (askTool.ts). */
function examplesOf(description: string): string[] {
  const tail = /Examples: (.*)$/s.exec(description)?.[1] ?? "";
  return [...tail.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
