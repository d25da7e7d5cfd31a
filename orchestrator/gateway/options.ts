// `mesh gateway`: its flags (each with its environment variable, said in its help).
import type { Command } from "commander";
import { logLevelOption } from "../../src/agent/main.ts";
import type { LOG_LEVELS } from "../../src/logger.ts";

/** The flags of `mesh gateway`, as commander parses them (strings: settings.ts checks them). */
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

/** Adds the gateway's flags to a command (`mesh gateway`). */
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
