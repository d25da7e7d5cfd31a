// `mesh gateway`: its settings from flags and env (flags win), checked once: a bad value is a
// usage error naming both.
import { DEFAULT_HOST, DEFAULT_SESSION_IDLE_MS } from "../../src/agent/config.ts";
import { DEFAULT_MAX_CONCURRENT_PER_INSTANCE, DEFAULT_MAX_QUEUED_PER_INSTANCE } from "../../src/client/pool.ts";
import { GATEWAY_IDLE_TIMEOUT_MS, GATEWAY_MAX_CALL_MS } from "../../src/gateway/gateway.ts";
import { DEFAULT_MAX_SESSIONS } from "../../src/mcp/legacySessions.ts";
import { loadTokens } from "../../src/protocol/credentials.ts";
import { UsageError } from "../common/errors.ts";
import { parsePort } from "../common/options.ts";
import type { GatewayFlags } from "./options.ts";

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

/** The gateway's settings from flags and env, checked before anything starts. */
export interface GatewaySettings {
  /** Where and how it serves HTTP; undefined with --stdio. */
  http: HttpSettings | undefined;
  /** How many calls it sends one instance at once, and lets wait for it. */
  limits: ReturnType<typeof callerLimits>;
  /** How long a call through it may take, and stay silent per attempt. */
  timing: ReturnType<typeof deadlines>;
}

/** Every setting of `mesh gateway` (a usage error for the first bad one). */
export function gatewaySettings(flags: GatewayFlags, env: NodeJS.ProcessEnv): GatewaySettings {
  const http = flags.stdio ? undefined : httpSettings(flags, env);
  return { http, limits: callerLimits(flags, env), timing: deadlines(flags, env) };
}

/** Where and how the gateway serves HTTP. */
export interface HttpSettings {
  host: string;
  port: number;
  /** More host names clients may reach it by (DNS-rebinding protection). */
  allowedHosts: string[];
  /** MCP sessions kept at once, and how long an idle one is kept. */
  maxSessions: number;
  sessionIdleMs: number;
}

/** The gateway's HTTP settings from flags and env (flags win), checked once: bad values are usage errors. */
function httpSettings(flags: GatewayFlags, env: NodeJS.ProcessEnv): HttpSettings {
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

/**
 * Tokens clients must present (HTTP only; a stdio client spawned the gateway itself):
 * MESH_GATEWAY_TOKEN (or --client-token-file / MESH_GATEWAY_TOKEN_FILE), else the MESH_TOKEN
 * ones. Calls to agents use the gateway's own credentials (MESH_TOKEN_<AGENT>, else the
 * agent's credential derived from MESH_TOKEN), never the client's.
 */
export function clientTokensOf(flags: GatewayFlags, env: NodeJS.ProcessEnv): string[] {
  return flags.clientTokenFile || env["MESH_GATEWAY_TOKEN"] || env["MESH_GATEWAY_TOKEN_FILE"]
    ? loadTokens({
        value: env["MESH_GATEWAY_TOKEN"],
        file: flags.clientTokenFile ?? env["MESH_GATEWAY_TOKEN_FILE"],
        what: "MESH_GATEWAY_TOKEN",
      })
    : loadTokens({ value: env["MESH_TOKEN"], file: env["MESH_TOKEN_FILE"], what: "MESH_TOKEN" });
}

/**
 * Who may read /metrics besides the gateway's clients: a scraper that holds the mesh's token,
 * or its own metrics-only MESH_METRICS_TOKEN (it reads every agent's /metrics; the gateway's too).
 */
export function metricsTokensOf(clientTokens: readonly string[], env: NodeJS.ProcessEnv): string[] {
  return [
    ...clientTokens,
    ...loadTokens({ value: env["MESH_TOKEN"], file: env["MESH_TOKEN_FILE"], what: "MESH_TOKEN" }),
    ...loadTokens({ value: env["MESH_METRICS_TOKEN"], what: "MESH_METRICS_TOKEN" }),
  ];
}

/** The OAuth settings (MESH_OAUTH_*), with the --oauth-* flags in place of their variables. */
export function oauthEnv(flags: GatewayFlags, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...env,
    ...(flags.oauthIssuer ? { MESH_OAUTH_ISSUER: flags.oauthIssuer } : {}),
    ...(flags.oauthResource ? { MESH_OAUTH_RESOURCE: flags.oauthResource } : {}),
    ...(flags.oauthJwksUrl ? { MESH_OAUTH_JWKS_URL: flags.oauthJwksUrl } : {}),
    ...(flags.oauthIntrospectionUrl ? { MESH_OAUTH_INTROSPECTION_URL: flags.oauthIntrospectionUrl } : {}),
    ...(flags.oauthRequiredScopes ? { MESH_OAUTH_REQUIRED_SCOPES: flags.oauthRequiredScopes } : {}),
  };
}
