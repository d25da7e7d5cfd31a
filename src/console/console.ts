import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { rootContext } from "../context/meshContext.ts";
import type { ConsulClient } from "../consul/client.ts";
import { currentPrincipal } from "../http/principal.ts";
import { PRINCIPAL_META } from "../protocol/keys.ts";
import type { Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";
import type { Gateway } from "../gateway/gateway.ts";

import { recordedCall } from "../gateway/callLog.ts";

/** How often the console's live stream sends the topology. @default 1000 */
export const CONSOLE_REFRESH_MS = 1_000;

/** The console's static files: a page, its script and its styles (no build step, no CDN). */
const ASSETS: Record<string, { file: string; type: string }> = {
  "/ui": { file: "index.html", type: "text/html; charset=utf-8" },
  "/ui/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/ui/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/ui/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
};
const assetCache = new Map<string, Buffer>();
function asset(file: string): Buffer {
  let body = assetCache.get(file);
  if (!body) assetCache.set(file, (body = readFileSync(new URL(`./ui/${file}`, import.meta.url))));
  return body;
}

/** Where the console lives on the gateway. */
export const CONSOLE_PATH = /^\/ui(\/.*)?$/;

/**
 * The live web console, served by the gateway at /ui: the gateway already holds the live
 * catalog, every instance's breaker and calls in flight, the token check and the path to call
 * any tool, so a separate process would only copy them. The page and its assets are public
 * (they hold no data); everything under /ui/api needs the gateway's client token, like /mcp.
 * Shows no secret: no tokens, no task results, no arguments of other callers' calls.
 */
export class ConsoleEndpoint {
  private readonly gateway: Gateway;
  private readonly consul: ConsulClient;
  private readonly logger: Logger;
  private readonly info: () => Record<string, unknown>;
  private readonly streams = new Set<ServerResponse>();

  constructor(o: { gateway: Gateway; consul: ConsulClient; logger: Logger; info: () => Record<string, unknown> }) {
    this.gateway = o.gateway;
    this.consul = o.consul;
    this.logger = o.logger;
    this.info = o.info;
  }

  isPublic(req: IncomingMessage): boolean {
    return req.method === "GET" && pathOf(req) in ASSETS;
  }

  async handle(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    const path = pathOf(req);
    try {
      const file = ASSETS[path];
      if (file && req.method === "GET") {
        res
          .writeHead(200, {
            "content-type": file.type,
            "cache-control": "no-cache",
            // Its own files only: no inline script, no other origin; and never inside another
            // page's frame (clickjacking: a hidden frame over a decoy could make an operator press "Call").
            "content-security-policy":
              "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            // The same for browsers that predate frame-ancestors.
            "x-frame-options": "DENY",
            "x-content-type-options": "nosniff",
          })
          .end(asset(file.file));
        return;
      }
      if (req.method === "GET" && path === "/ui/api/topology") return json(res, 200, await this.topology());
      if (req.method === "GET" && path === "/ui/api/tools") return json(res, 200, this.tools());
      if (req.method === "GET" && path === "/ui/api/calls") return json(res, 200, this.gateway.calls.list());
      if (req.method === "GET" && path === "/ui/api/work") return json(res, 200, await this.work());
      if (req.method === "GET" && path === "/ui/api/events") return this.events(req, res);
      if (req.method === "POST" && path === "/ui/api/call") return json(res, 200, await this.call(body));
      json(res, 404, { error: `No ${req.method} ${path} here. The console is at /ui.` });
    } catch (e) {
      const status = e instanceof ConsoleInputError ? 400 : 500;
      if (status === 500) this.logger.warn({ path, err: describeError(e) }, "console request failed");
      if (!res.headersSent) json(res, status, { error: describeError(e) });
      else if (!res.writableEnded) res.end();
    }
  }

  /** Ends the live streams (the gateway is stopping). */
  close(): void {
    for (const s of this.streams) s.end();
    this.streams.clear();
  }

  /** Agent kinds → instances: Consul's health for each (so a dead one shows, red), this gateway's breaker, calls in flight and rate. */
  async topology(): Promise<Record<string, unknown>> {
    const mesh = this.gateway.mesh;
    const { value: services } = await this.consul.catalogServices({ timeoutMs: 2_000 });
    const names = Object.entries(services)
      .filter(([, tags]) => tags.includes("mcp"))
      .map(([name]) => name)
      .sort();
    const agents = await Promise.all(
      names.map(async (name) => {
        const { value: entries } = await this.consul.healthService(name, { timeoutMs: 2_000 });
        const info = mesh.catalog.agent(name);
        return {
          name,
          tags: info?.tags ?? [],
          tools: info?.tools.length ?? 0,
          instances: entries
            .map((e) => ({
              id: e.id,
              address: `${e.address}:${e.port}`,
              status: e.status,
              breaker: mesh.health.state(e.id),
              inFlight: mesh.pool.inFlight(e.id),
              rate: this.gateway.calls.rate(e.id),
              version: e.meta["agent_version"] ?? e.meta["toolmesh_version"] ?? "",
            }))
            .sort((a, b) => a.id.localeCompare(b.id)),
        };
      }),
    );
    return { at: new Date().toISOString(), agents, gateway: this.info() };
  }

  /** Every tool of the mesh with what a caller needs to call it. */
  tools(): Record<string, unknown>[] {
    return this.gateway.mesh.catalog
      .agents()
      .flatMap((a) =>
        a.tools.map((t) => ({
          agent: a.name,
          name: t.name,
          title: t.title ?? t.annotations?.title ?? "",
          description: t.description ?? "",
          annotations: t.annotations ?? {},
          inputSchema: t.inputSchema,
          ...(t.outputSchema ? { outputSchema: t.outputSchema } : {}),
        })),
      )
      .sort((x, y) => `${x.agent}.${x.name}`.localeCompare(`${y.agent}.${y.name}`));
  }

  /** Tasks (MCP and A2A) and conversation sessions, from Consul KV: status only, no results, no owners. */
  async work(): Promise<Record<string, unknown>> {
    const tasks: Record<string, unknown>[] = [];
    for (const [prefix, kind] of [
      ["toolmesh/tasks/", "mcp"],
      ["toolmesh/a2a-tasks/", "a2a"],
    ] as const) {
      const keys = (await this.consul.kvKeys(prefix, { timeoutMs: 2_000 })).slice(0, 200);
      for (const key of keys) {
        const entry = await this.consul.kvGet(key, { timeoutMs: 2_000 });
        if (!entry) continue;
        try {
          const r = JSON.parse(entry.value) as Record<string, unknown>;
          const agent = key.slice(prefix.length).split("/")[0];
          if (kind === "mcp")
            tasks.push({
              kind,
              agent,
              taskId: r["taskId"],
              tool: r["tool"],
              status: r["status"],
              statusMessage: r["statusMessage"],
              instance: r["instance"],
              createdAt: r["createdAt"],
              lastUpdatedAt: r["lastUpdatedAt"],
            });
          else {
            const task = r["task"] as { id?: string; status?: { state?: string; timestamp?: string } } | undefined;
            tasks.push({
              kind,
              agent,
              taskId: task?.id,
              status: task?.status?.state,
              instance: r["instance"],
              createdAt: r["createdAt"],
              lastUpdatedAt: task?.status?.timestamp,
            });
          }
        } catch {
          // not a record of ours
        }
      }
    }
    tasks.sort((a, b) => String(b["lastUpdatedAt"] ?? "").localeCompare(String(a["lastUpdatedAt"] ?? "")));
    // The orchestrator's conversation sessions (its SessionStore's prefix).
    const sessions = (await this.consul.kvKeys("toolmesh/sessions/", { timeoutMs: 2_000 })).length;
    return { tasks, conversations: sessions, gateway: this.info() };
  }

  /** A tool called from the console's form, through the mesh: the result, the instance, the trace and its hops. */
  private async call(body: unknown): Promise<Record<string, unknown>> {
    const b = body as { agent?: unknown; tool?: unknown; arguments?: unknown } | undefined;
    if (typeof b?.agent !== "string" || typeof b.tool !== "string")
      throw new ConsoleInputError('Send {"agent": "...", "tool": "...", "arguments": {...}}.');
    const args = b.arguments ?? {};
    if (typeof args !== "object" || args === null || Array.isArray(args)) throw new ConsoleInputError("arguments must be a JSON object.");
    const { agent, tool } = b as { agent: string; tool: string };
    if (!this.gateway.mesh.catalog.agent(agent)?.tools.some((t) => t.name === tool))
      throw new ConsoleInputError(`The mesh has no tool ${agent}.${tool} (see the tool list).`);
    const context = rootContext({ caller: "console", timeoutMs: this.gateway.maxCallMs, reportHops: true });
    try {
      const { result, instance, record } = await recordedCall(
        this.gateway.calls,
        { agent, tool, traceId: context.traceId, via: "console", hops: true },
        () =>
          this.gateway.mesh.call(agent, tool, args as Record<string, unknown>, {
            context,
            timeoutMs: this.gateway.maxCallMs,
            // As for a client's call: a silent replica is left after half the idle timeout.
            idleTimeoutMs: this.gateway.idleTimeoutMs,
            envelope: { [PRINCIPAL_META]: currentPrincipal() },
          }),
      );
      const { _meta: _hops, ...shown } = result;
      return { result: shown, instance, traceId: context.traceId, call: record };
    } catch (e) {
      return { error: describeError(e), traceId: context.traceId, call: this.gateway.calls.get(context.traceId) };
    }
  }

  /** Server-sent events: the topology every CONSOLE_REFRESH_MS, each call as it ends. */
  private events(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    this.streams.add(res);
    this.gateway.calls.viewers++;
    const send = (event: string, data: unknown) => {
      if (!res.destroyed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    let busy = false;
    const tick = async () => {
      if (busy) return; // a slow Consul: skip a beat rather than pile up
      busy = true;
      try {
        send("topology", await this.topology());
      } catch (e) {
        send("problem", { error: `Cannot read the topology from Consul: ${describeError(e)}` });
      } finally {
        busy = false;
      }
    };
    void tick();
    const timer = setInterval(() => void tick(), CONSOLE_REFRESH_MS);
    const off = this.gateway.calls.onCall((c) => send("call", c));
    const end = () => {
      clearInterval(timer);
      off();
      if (this.streams.delete(res)) this.gateway.calls.viewers--;
    };
    res.once("close", end);
    req.once("close", end);
  }
}

class ConsoleInputError extends Error {}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? "/").split("?")[0]!;
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-cache" }).end(JSON.stringify(value));
}
