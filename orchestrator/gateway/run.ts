import { hostname } from "node:os";
import { serveStdio } from "@modelcontextprotocol/server/stdio";
import { Command } from "commander";
import { serveHttp } from "../../src/http/server.ts";
import { startTracing, stopTracing } from "../../src/telemetry/tracing.ts";
import { TokenVerifier } from "../../src/http/auth.ts";
import { MeshClient } from "../../src/client/meshClient.ts";
import { consulSettings } from "../../src/consul/settings.ts";
import { ConsulClient } from "../../src/consul/client.ts";
import { Gateway } from "../../src/gateway/gateway.ts";
import { PolicyStore } from "../../src/gateway/policyStore.ts";
import { createLogger, type Logger } from "../../src/logger.ts";
import { addGatewayOptions, type GatewayFlags } from "./options.ts";
import { GatewayOAuth } from "./oauth.ts";
import { GATEWAY_ENDPOINTS_HINT, GatewayRoutes } from "./routes.ts";
import { clientTokensOf, gatewaySettings, metricsTokensOf, oauthEnv, type GatewaySettings, type HttpSettings } from "./settings.ts";

/** What a running gateway is made of: its HTTP or stdio front serves `gateway`, and closes them all. */
interface GatewayParts {
  log: Logger;
  consul: ConsulClient;
  mesh: MeshClient;
  policy: PolicyStore;
  gateway: Gateway;
}

/** Runs the gateway until SIGTERM/SIGINT (HTTP) or until the client closes stdin (stdio). */
export async function runGateway(flags: GatewayFlags): Promise<void> {
  // OpenTelemetry traces when the OTEL_* environment asks for them (off otherwise).
  await startTracing("toolmesh-gateway", { "service.instance.id": `${hostname()}/${process.pid}` });
  const env = process.env;
  const settings = gatewaySettings(flags, env);
  const log = createLogger({
    name: "gateway",
    level: flags.logLevel ?? (env["MESH_LOG_LEVEL"] as GatewayFlags["logLevel"]) ?? "info",
    destination: flags.stdio ? "stderr" : "stdout",
  });
  const consul = new ConsulClient(consulSettings({ address: flags.consul, token: flags.token }, env));
  const clientTokens = clientTokensOf(flags, env);
  await consul.leader({ timeoutMs: 3_000 });
  const oauth = new GatewayOAuth(settings.http ? oauthEnv(flags, env) : undefined, log);
  const parts = await startGateway(flags, settings, { log, consul, oauth });
  const closeServer = settings.http ? await serveOverHttp(parts, settings.http, clientTokens, oauth) : await serveOverStdio(parts);
  await closeServer();
  parts.policy.close();
  parts.gateway.close();
  await parts.mesh.close();
  consul.destroy();
  await stopTracing();
  log.info("gateway stopped");
}

/**
 * The mesh client (every agent's catalog), the policy (Consul KV, watched; read before the
 * first client is served) and the gateway over them.
 */
async function startGateway(
  flags: GatewayFlags,
  { limits, timing }: GatewaySettings,
  { log, consul, oauth }: { log: Logger; consul: ConsulClient; oauth: GatewayOAuth },
): Promise<GatewayParts> {
  const env = process.env;
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
  const policy = new PolicyStore({ consul, logger: log });
  await policy.start();
  gateway = new Gateway({
    policy,
    // MESH_OAUTH_STEP_UP=1: OAuth callers the policy refuses get a 403 scope challenge (RFC 6750) too.
    scopeChallenge: () => (env["MESH_OAUTH_STEP_UP"] === "1" ? oauth.metadataUrl() : undefined),
    mesh,
    include: flags.include,
    exclude: flags.exclude,
    dynamic: flags.dynamic ?? false,
    ...timing,
    logger: log,
  });
  return { log, consul, mesh, policy, gateway };
}

/** Serves one MCP client on stdin/stdout until it closes stdin; resolves with how to close the server. */
async function serveOverStdio({ gateway, log }: GatewayParts): Promise<() => Promise<void>> {
  const view = gateway.viewFor();
  const handle = serveStdio(({ era }) => gateway.createServer(view, era), {
    onerror: (e) => log.debug({ err: e.message }, "stdio connection error"),
  });
  const closed = new Promise<void>((resolve) => {
    process.stdin.once("end", resolve);
    process.stdin.once("close", resolve);
  });
  log.info({ tools: gateway.tools().length }, "gateway ready on stdio");
  await closed;
  return () => handle.close();
}

/** Serves HTTP (GatewayRoutes) until SIGTERM or SIGINT; resolves with how to close the server. */
async function serveOverHttp(
  { gateway, mesh, consul, log }: GatewayParts,
  settings: HttpSettings,
  clientTokens: string[],
  oauth: GatewayOAuth,
): Promise<() => Promise<void>> {
  const routes = new GatewayRoutes({ gateway, mesh, consul, log, settings, bearer: clientTokens.length > 0 });
  const http = await serveHttp({
    host: settings.host,
    oauth: () => oauth.state,
    assertsIdentity: true,
    port: settings.port,
    tokenHint: "clients of the gateway send one of its MESH_GATEWAY_TOKEN tokens (default: the MESH_TOKEN ones)",
    endpoint: (path) => routes.endpoint(path),
    endpointsHint: GATEWAY_ENDPOINTS_HINT,
    verifier: new TokenVerifier(clientTokens),
    ...(clientTokens.length ? { metricsVerifier: new TokenVerifier(metricsTokensOf(clientTokens, process.env)) } : {}),
    allowedHosts: settings.allowedHosts,
    healthInfo: () => ({ gateway: true, ...routes.sessionInfo() }),
    logger: log,
  });
  try {
    await oauth.start(http.origin);
  } catch (e) {
    await http.close();
    throw e;
  }
  log.info(
    { url: `${http.origin}/mcp`, console: `${http.origin}/ui`, tools: gateway.tools().length, agents: mesh.catalog.agents().length },
    "gateway ready",
  );
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  return async () => {
    oauth.close();
    await routes.close();
    await http.close();
  };
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
