import { hostname } from "node:os";
import { serveStdio } from "@modelcontextprotocol/server/stdio";
import { Command } from "commander";
import { logLevelOption } from "../../src/agent/main.ts";
import { DEFAULT_HOST, DEFAULT_SESSION_IDLE_MS } from "../../src/agent/config.ts";
import { DEFAULT_MAX_BODY_BYTES, serveHttp } from "../../src/http/server.ts";
import { A2A_PATH, A2aAgentEndpoint } from "../../src/a2a/inbound.ts";
import { A2A_TASK_PREFIX, SharedA2aTaskStore } from "../../src/a2a/taskStore.ts";
import { CONSOLE_PATH, ConsoleEndpoint } from "../../src/console/console.ts";
import { sweepTaskRecords } from "../../src/agent/tasks.ts";
import { TASK_SWEEP_INTERVAL_MS } from "../../src/protocol/tasks.ts";
import { describeError, isMeshError } from "../../src/protocol/errors.ts";
import { startTracing, stopTracing } from "../../src/telemetry/tracing.ts";
import { DEFAULT_MAX_SESSIONS } from "../../src/mcp/legacySessions.ts";
import { McpEndpoint } from "../../src/mcp/endpoint.ts";
import { UsageError } from "../common/errors.ts";
import { parsePort } from "../common/options.ts";
import { TokenVerifier } from "../../src/http/auth.ts";
import { loadTokens } from "../../src/protocol/credentials.ts";
import { oauthConfigFromEnv, OAuthResourceServer } from "../../src/http/oauth.ts";
import { MeshClient } from "../../src/client/meshClient.ts";
import { DEFAULT_MAX_CONCURRENT_PER_INSTANCE, DEFAULT_MAX_QUEUED_PER_INSTANCE } from "../../src/client/pool.ts";
import { consulSettings } from "../../src/consul/settings.ts";
import { ConsulClient } from "../../src/consul/client.ts";
import { Gateway, GATEWAY_IDLE_TIMEOUT_MS, GATEWAY_MAX_CALL_MS } from "../../src/gateway/gateway.ts";
import { PolicyStore } from "../../src/gateway/policyStore.ts";
import type { LOG_LEVELS } from "../../src/logger.ts";
import { createLogger } from "../../src/logger.ts";

export interface GatewayFlags {
  stdio?: boolean;
  host?: string;
  port?: string;
  allowedHosts?: string;
  maxSessions?: string;
  sessionIdleMs?: string;
  consul?: string;
  token?: string;
  clientTokenFile?: string;
  include: string[];
  exclude: string[];
  dynamic?: boolean;
  maxCallsPerInstance?: string;
  maxQueuedPerInstance?: string;
  idleTimeoutMs?: string;
  maxCallMs?: string;
  oauthIssuer?: string;
  oauthResource?: string;
  oauthJwksUrl?: string;
  oauthIntrospectionUrl?: string;
  oauthRequiredScopes?: string;
  logLevel?: (typeof LOG_LEVELS)[number];
}

const collect = (v: string, acc: string[]) => [...acc, v];

/** The per-agent passthrough endpoint. */
const AGENT_PATH = /^\/agents\/([a-z][a-z0-9-]{0,62})\/mcp$/;

export function addGatewayOptions(cmd: Command): Command {
  return cmd
    .option("--stdio", "serve one MCP client on stdin/stdout (for desktop clients that spawn it)")
    .option("--host <host>", "interface to bind (env MESH_HOST)")
    .option("-p, --port <port>", "HTTP port; 0 picks a free one (env MESH_PORT)")
    .option("--consul <addr>", "Consul HTTP address (env CONSUL_HTTP_ADDR)")
    .option("--token <token>", "Consul ACL token (env CONSUL_HTTP_TOKEN)")
    .option(
      "--client-token-file <path>",
      "bearer tokens HTTP clients must present, one per line (env MESH_GATEWAY_TOKEN_FILE or MESH_GATEWAY_TOKEN; default: the MESH_TOKEN ones)",
    )
    .option("--include <pattern>", "offer only matching tools: agent, agent.tool, * wildcards (repeatable)", collect, [])
    .option("--exclude <pattern>", "hide matching tools (repeatable)", collect, [])
    .option("--dynamic", "offer three meta-tools (search_tools, describe_tool, call_tool) instead of every tool: for large meshes")
    .option(
      "--allowed-hosts <list>",
      "more host names clients may use to reach the gateway, comma-separated (DNS-rebinding protection; env MESH_ALLOWED_HOSTS)",
    )
    .option(
      "--max-sessions <n>",
      "MCP sessions kept at once; a new one evicts the least recently used (env MESH_MAX_SESSIONS, default 512)",
    )
    .option(
      "--max-calls-per-instance <n>",
      "calls the gateway sends one agent instance at once; more wait (env MESH_MAX_CALLS_PER_INSTANCE, default 64)",
    )
    .option(
      "--max-queued-per-instance <n>",
      "calls that may wait for one instance; more are refused OVERLOADED (env MESH_MAX_QUEUED_PER_INSTANCE, default 256)",
    )
    .option(
      "--idle-timeout-ms <ms>",
      "longest an agent may stay silent (no answer, no progress) during one attempt of a call; a read-only call moves to another replica after half of it (env MESH_GATEWAY_IDLE_TIMEOUT_MS, default 60000)",
    )
    .option(
      "--max-call-ms <ms>",
      "longest call through the gateway when its client sends no shorter deadline, progress or not (env MESH_GATEWAY_MAX_CALL_MS, default 3600000)",
    )
    .option(
      "--oauth-issuer <url>",
      "accept OAuth 2.1 access tokens from this authorization server (its exact issuer; env MESH_OAUTH_ISSUER); static tokens keep working",
    )
    .option(
      "--oauth-resource <url>",
      "this gateway's canonical public URL: the audience tokens must name (env MESH_OAUTH_RESOURCE; default http://<host>:<port>/)",
    )
    .option("--oauth-jwks-url <url>", "the authorization server's JWKS (env MESH_OAUTH_JWKS_URL; default: from the issuer's metadata)")
    .option(
      "--oauth-introspection-url <url>",
      "RFC 7662 introspection for opaque tokens (env MESH_OAUTH_INTROSPECTION_URL; client id and secret in MESH_OAUTH_CLIENT_ID / MESH_OAUTH_CLIENT_SECRET)",
    )
    .option("--oauth-required-scopes <list>", "scopes every request needs, space- or comma-separated (env MESH_OAUTH_REQUIRED_SCOPES)")
    .option("--session-idle-ms <ms>", "an MCP session with no request for this long is closed (env MESH_SESSION_IDLE_MS, default 600000)")
    .addOption(logLevelOption());
}

/** A whole-number setting from a flag or env, or a usage error naming both. */
function whole(raw: string | undefined, what: string, min: number, max: number, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n < min || n > max)
    throw new UsageError(`${what} must be a whole number from ${min} to ${max}; got "${raw}".`);
  return n;
}

/** How many calls the gateway sends one instance at once, and lets wait for it (flags win over env). */
function callerLimits(flags: GatewayFlags, env: NodeJS.ProcessEnv) {
  return {
    maxConcurrentPerInstance: whole(
      flags.maxCallsPerInstance ?? env["MESH_MAX_CALLS_PER_INSTANCE"],
      "--max-calls-per-instance / MESH_MAX_CALLS_PER_INSTANCE",
      1,
      1_000_000,
      DEFAULT_MAX_CONCURRENT_PER_INSTANCE,
    ),
    maxQueuedPerInstance: whole(
      flags.maxQueuedPerInstance ?? env["MESH_MAX_QUEUED_PER_INSTANCE"],
      "--max-queued-per-instance / MESH_MAX_QUEUED_PER_INSTANCE",
      0,
      1_000_000,
      DEFAULT_MAX_QUEUED_PER_INSTANCE,
    ),
  };
}

/** How long a call through the gateway may take, and stay silent per attempt (flags win over env). */
function deadlines(flags: GatewayFlags, env: NodeJS.ProcessEnv) {
  const maxCallMs = whole(
    flags.maxCallMs ?? env["MESH_GATEWAY_MAX_CALL_MS"],
    "--max-call-ms / MESH_GATEWAY_MAX_CALL_MS",
    100,
    86_400_000,
    GATEWAY_MAX_CALL_MS,
  );
  const idleTimeoutMs = whole(
    flags.idleTimeoutMs ?? env["MESH_GATEWAY_IDLE_TIMEOUT_MS"],
    "--idle-timeout-ms / MESH_GATEWAY_IDLE_TIMEOUT_MS",
    100,
    86_400_000,
    GATEWAY_IDLE_TIMEOUT_MS,
  );
  return { maxCallMs, idleTimeoutMs };
}

/** The gateway's HTTP settings from flags and env (flags win), checked once: bad values are usage errors. */
function httpSettings(flags: GatewayFlags, env: NodeJS.ProcessEnv) {
  const hosts = (flags.allowedHosts ?? env["MESH_ALLOWED_HOSTS"] ?? "")
    .split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  for (const h of hosts)
    if (!/^[A-Za-z0-9.:_-]+$/.test(h)) throw new UsageError(`--allowed-hosts: "${h}" is not a host name (expected e.g. mesh.example.com).`);
  return {
    host: flags.host ?? env["MESH_HOST"] ?? DEFAULT_HOST,
    port: parsePort(flags.port ?? env["MESH_PORT"] ?? "0"),
    allowedHosts: hosts,
    maxSessions: whole(
      flags.maxSessions ?? env["MESH_MAX_SESSIONS"],
      "--max-sessions / MESH_MAX_SESSIONS",
      1,
      1_000_000,
      DEFAULT_MAX_SESSIONS,
    ),
    sessionIdleMs: whole(
      flags.sessionIdleMs ?? env["MESH_SESSION_IDLE_MS"],
      "--session-idle-ms / MESH_SESSION_IDLE_MS",
      1_000,
      86_400_000,
      DEFAULT_SESSION_IDLE_MS,
    ),
  };
}

/** Runs the gateway until SIGTERM/SIGINT (HTTP) or until the client closes stdin (stdio). */
export async function runGateway(flags: GatewayFlags): Promise<void> {
  // OpenTelemetry traces when the OTEL_* environment asks for them (off otherwise).
  await startTracing("toolmesh-gateway", { "service.instance.id": `${hostname()}/${process.pid}` });
  const env = process.env;
  const settings = flags.stdio ? undefined : httpSettings(flags, env);
  const limits = callerLimits(flags, env);
  const timing = deadlines(flags, env);
  const log = createLogger({
    name: "gateway",
    level: flags.logLevel ?? (env["MESH_LOG_LEVEL"] as GatewayFlags["logLevel"]) ?? "info",
    destination: flags.stdio ? "stderr" : "stdout",
  });
  const consul = new ConsulClient(consulSettings({ address: flags.consul, token: flags.token }, env));
  // Tokens clients must present (HTTP only; a stdio client spawned the gateway itself).
  // Calls to agents use the gateway's own credentials (MESH_TOKEN_<AGENT>, else the agent's
  // credential derived from MESH_TOKEN), never the client's.
  const clientTokens =
    flags.clientTokenFile || env["MESH_GATEWAY_TOKEN"] || env["MESH_GATEWAY_TOKEN_FILE"]
      ? loadTokens({
          value: env["MESH_GATEWAY_TOKEN"],
          file: flags.clientTokenFile ?? env["MESH_GATEWAY_TOKEN_FILE"],
          what: "MESH_GATEWAY_TOKEN",
        })
      : loadTokens({ value: env["MESH_TOKEN"], file: env["MESH_TOKEN_FILE"], what: "MESH_TOKEN" });
  await consul.leader({ timeoutMs: 3_000 });
  // Input requests of 2026-07-28 agents go back to the gateway's own clients.
  // Resource updates arrive on the shared connections; the gateway hands them to whoever listens.
  let gateway: Gateway | undefined;
  const mesh = new MeshClient({
    consul,
    callerName: "gateway",
    catalogMode: "all",
    relayInputRequests: true,
    ...limits,
    configure: (client) => client.setNotificationHandler("notifications/resources/updated", (n) => gateway?.resourceUpdated(n.params.uri)),
    onListChanged: (agent, list) => gateway?.listChanged(agent, list),
    logger: log,
  });
  await mesh.start();
  // The OAuth resource server (HTTP only), once set up.
  let oauth: OAuthResourceServer | "starting" | undefined;
  // Who may call which tool (Consul KV, watched); read before the first client is served.
  const policy = new PolicyStore({ consul, logger: log });
  await policy.start();
  gateway = new Gateway({
    policy,
    // MESH_OAUTH_STEP_UP=1: OAuth callers the policy refuses get a 403 scope challenge (RFC 6750) too.
    scopeChallenge: () => (env["MESH_OAUTH_STEP_UP"] === "1" && typeof oauth === "object" ? oauth.metadataUrl : undefined),
    mesh,
    include: flags.include,
    exclude: flags.exclude,
    dynamic: flags.dynamic ?? false,
    ...timing,
    logger: log,
  });
  let closeServer: () => Promise<void>;
  if (flags.stdio) {
    const view = gateway.viewFor();
    const handle = serveStdio(({ era }) => gateway.createServer(view, era), {
      onerror: (e) => log.debug({ err: e.message }, "stdio connection error"),
    });
    const closed = new Promise<void>((resolve) => {
      process.stdin.once("end", resolve);
      process.stdin.once("close", resolve);
    });
    log.info({ tools: gateway.tools().length }, "gateway ready on stdio");
    closeServer = () => handle.close();
    await closed;
  } else {
    // One endpoint per view: /mcp (the whole mesh), /agents/<name>/mcp (one agent kind as its
    // own servers present it, load-balanced across its replicas), each serving both eras.
    const endpoints = new Map<string, McpEndpoint>();
    const endpointFor = (agent?: string): McpEndpoint => {
      const key = agent ?? "";
      let endpoint = endpoints.get(key);
      if (!endpoint) {
        const view = gateway.viewFor(agent);
        endpoint = new McpEndpoint({
          createServer: (era) => gateway.createServer(view, era),
          onListen: (uris, closed) => gateway.listen(view, uris, closed),
          fastToolCalls: gateway.fastToolCalls(view),
          maxSessions: settings!.maxSessions,
          idleMs: settings!.sessionIdleMs,
          maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
          logger: log,
        });
        gateway.attach(view, endpoint.notify);
        endpoints.set(key, endpoint);
      }
      return endpoint;
    };
    endpointFor();
    const a2aEndpoints = new Map<string, A2aAgentEndpoint>();
    // The live web console at /ui (its API behind the same client token).
    const sessionInfo = () => ({
      sessions: [...endpoints.values()].reduce((n, e) => n + e.legacy.size, 0),
      evicted: [...endpoints.values()].reduce((n, e) => n + e.legacy.evicted, 0),
    });
    const webConsole = new ConsoleEndpoint({ gateway, consul, logger: log, info: sessionInfo });
    const instance = `gateway@${hostname()}/${process.pid}`;
    // Forget A2A task records past their TTL (every gateway sweeps, with CAS).
    const a2aSweeper = setInterval(
      () =>
        void sweepTaskRecords(consul, A2A_TASK_PREFIX)
          .then((n) => n > 0 && log.debug({ deleted: n }, "expired A2A task records swept"))
          .catch((e: unknown) => log.debug({ err: describeError(e) }, "A2A task sweep failed; trying again later")),
      TASK_SWEEP_INTERVAL_MS + Math.random() * 30_000,
    ).unref();
    // OAuth 2.1 (MESH_OAUTH_* or the --oauth-* flags): set up once the gateway knows its own URL
    // (the default resource); until then a request gets 503 "starting".
    const oauthEnv = {
      ...env,
      ...(flags.oauthIssuer ? { MESH_OAUTH_ISSUER: flags.oauthIssuer } : {}),
      ...(flags.oauthResource ? { MESH_OAUTH_RESOURCE: flags.oauthResource } : {}),
      ...(flags.oauthJwksUrl ? { MESH_OAUTH_JWKS_URL: flags.oauthJwksUrl } : {}),
      ...(flags.oauthIntrospectionUrl ? { MESH_OAUTH_INTROSPECTION_URL: flags.oauthIntrospectionUrl } : {}),
      ...(flags.oauthRequiredScopes ? { MESH_OAUTH_REQUIRED_SCOPES: flags.oauthRequiredScopes } : {}),
    };
    oauth = oauthEnv["MESH_OAUTH_ISSUER"]?.trim() ? "starting" : undefined;
    const http = await serveHttp({
      host: settings!.host,
      oauth: () => oauth,
      assertsIdentity: true,
      port: settings!.port,
      tokenHint: "clients of the gateway send one of its MESH_GATEWAY_TOKEN tokens (default: the MESH_TOKEN ones)",
      endpoint: (path) => {
        if (path === "/mcp") return endpointFor();
        if (CONSOLE_PATH.test(path)) return webConsole;
        const agent = AGENT_PATH.exec(path)?.[1];
        if (agent) return gateway.hasAgent(agent) ? endpointFor(agent) : undefined;
        // A2A: each agent kind with an ask tool (the orchestrator is the whole mesh's).
        const a2aAgent = A2A_PATH.exec(path)?.[1];
        if (!a2aAgent || !mesh.catalog.agent(a2aAgent)?.tools.some((t) => t.name === "ask")) return undefined;
        let a2a = a2aEndpoints.get(a2aAgent);
        if (!a2a) {
          // Its tasks in Consul KV: any gateway replica answers for them.
          const store = new SharedA2aTaskStore({ instance, consul, prefix: `${A2A_TASK_PREFIX}${a2aAgent}/` });
          a2a = new A2aAgentEndpoint({ agent: a2aAgent, mesh, logger: log, bearer: clientTokens.length > 0, store, calls: gateway.calls });
          a2aEndpoints.set(a2aAgent, a2a);
        }
        return a2a;
      },
      endpointsHint:
        "/mcp, /agents/<name>/mcp for each agent with a healthy instance, A2A at /a2a/<name> (card: /a2a/<name>/.well-known/agent-card.json), and the console at /ui",
      verifier: new TokenVerifier(clientTokens),
      // A scraper that holds the mesh's token, or its own metrics-only MESH_METRICS_TOKEN, reads
      // every agent's /metrics; the gateway's too.
      ...(clientTokens.length
        ? {
            metricsVerifier: new TokenVerifier([
              ...clientTokens,
              ...loadTokens({ value: env["MESH_TOKEN"], file: env["MESH_TOKEN_FILE"], what: "MESH_TOKEN" }),
              ...loadTokens({ value: env["MESH_METRICS_TOKEN"], what: "MESH_METRICS_TOKEN" }),
            ]),
          }
        : {}),
      allowedHosts: settings!.allowedHosts,
      healthInfo: () => ({ gateway: true, ...sessionInfo() }),
      logger: log,
    });
    let oauthRetry: NodeJS.Timeout | undefined;
    if (oauth === "starting") {
      const config = oauthConfigFromEnv(oauthEnv, () => `${http.origin}/`)!;
      // An authorization server that cannot be reached yet is waited for (OAuth requests get 503
      // meanwhile, static tokens work); a wrong setting (an issuer that does not match) stops the gateway.
      const setUp = async (): Promise<void> => {
        try {
          const ready = await OAuthResourceServer.create(config);
          oauth = ready;
          log.info({ issuer: ready.config.issuer, resource: ready.resource, metadata: ready.metadataUrl }, "OAuth access tokens accepted");
        } catch (e) {
          if (!isMeshError(e) || !e.retryable) throw e;
          log.warn({ err: describeError(e) }, "the authorization server cannot be reached yet; trying again in 2 s");
          oauthRetry = setTimeout(
            () => void setUp().catch((err: unknown) => log.error({ err: describeError(err) }, "OAuth set-up failed")),
            2_000,
          );
          oauthRetry.unref();
        }
      };
      try {
        await setUp();
      } catch (e) {
        await http.close();
        throw e;
      }
    }
    log.info(
      { url: `${http.origin}/mcp`, console: `${http.origin}/ui`, tools: gateway.tools().length, agents: mesh.catalog.agents().length },
      "gateway ready",
    );
    closeServer = async () => {
      clearTimeout(oauthRetry);
      clearInterval(a2aSweeper);
      webConsole.close();
      await Promise.all([...endpoints.values()].map((e) => e.close()));
      await http.close();
    };
    await new Promise<void>((resolve) => {
      process.once("SIGTERM", resolve);
      process.once("SIGINT", resolve);
    });
  }
  await closeServer();
  policy.close();
  gateway.close();
  await mesh.close();
  consul.destroy();
  await stopTracing();
  log.info("gateway stopped");
}

/** `mesh gateway`: the whole mesh as one MCP server. */
export function gatewayCommand(): Command {
  return addGatewayOptions(new Command("gateway").description("serve the whole mesh as one MCP server (HTTP or --stdio) for LLM clients"))
    .addHelpText(
      "after",
      "\nExamples:\n  mesh gateway --port 7000                     # http://127.0.0.1:7000/mcp\n  mesh gateway --stdio --include hr --include '*.ask'",
    )
    .action(async (flags: GatewayFlags) => runGateway(flags));
}
