import { z } from "zod";
import { DEFAULT_CONSUL_ADDR, parseConsulAddresses } from "../consul/address.ts";
import { parseDurationMs } from "../consul/client.ts";
import { MeshError } from "../protocol/errors.ts";
import { LOG_LEVELS } from "../logger.ts";
import { DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_MS } from "../mcp/legacySessions.ts";
import { DEFAULT_MAX_BODY_BYTES } from "../http/server.ts";
import { DEFAULT_CLAIM_LEASE_MS } from "./idempotency.ts";

/** Interface the agent binds to. Loopback unless told otherwise. @default "127.0.0.1" */
export const DEFAULT_HOST = "127.0.0.1";
/** Path of the MCP endpoint. @default "/mcp" */
export const DEFAULT_MCP_PATH = "/mcp";
/** Consul HTTP check interval; 1 s (Consul's minimum) so a new instance passes fast. @default "1s" */
export const DEFAULT_CHECK_INTERVAL = "1s";
/** Safety net only: shutdown deregisters explicitly. Consul's minimum is 1m. @default "1m" */
export const DEFAULT_DEREGISTER_AFTER = "1m";
/** How long SIGTERM waits for in-flight calls before closing. @default 15000 */
export const DEFAULT_DRAIN_TIMEOUT_MS = 15_000;
/** How often the agent checks that Consul still knows it (and re-registers if not). @default 2000 */
export const DEFAULT_RECONCILE_INTERVAL_MS = 2_000;
/**
 * Tool calls one instance runs at once; more are refused at once with HTTP 503 and
 * OVERLOADED (the caller tries another replica) instead of queueing without bound. @default 64
 */
export const DEFAULT_MAX_CONCURRENT_CALLS = 64;

const duration = z.string().refine(
  (d) => {
    try {
      parseDurationMs(d);
      return true;
    } catch {
      return false;
    }
  },
  { message: "expected a duration such as 500ms, 1s, 2m" },
);

export const AgentConfigSchema = z
  .object({
    transport: z.enum(["http", "stdio"]).default("http"),
    host: z.string().min(1).default(DEFAULT_HOST),
    port: z.coerce.number().int().min(0).max(65_535).default(0),
    /** Address other machines reach this instance at (Consul's service address). Defaults to host, or 127.0.0.1 when host is a wildcard. */
    advertiseHost: z.string().min(1).optional(),
    mcpPath: z
      .string()
      .regex(/^\/[A-Za-z0-9._~/-]*$/, "expected an absolute URL path such as /mcp")
      .default(DEFAULT_MCP_PATH),
    consulAddr: z.string().default(DEFAULT_CONSUL_ADDR),
    consulToken: z.string().min(1).optional(),
    /**
     * Mesh token(s) this agent accepts (with its own kind's credential derived from each), the
     * first also the key of the credentials it sends on its onward calls: env MESH_TOKEN only
     * (never a flag: argv is visible to every user).
     */
    meshToken: z.string().min(1).optional(),
    /** A file of accepted mesh tokens, one per line (the first keys the credentials sent on onward calls). */
    meshTokenFile: z.string().min(1).optional(),
    /**
     * A token that opens /metrics only, never the MCP endpoint, for a scraper: Prometheus finds
     * every instance tagged mcp in Consul, a forged registration too, so what it sends should
     * open nothing else. Env MESH_METRICS_TOKEN (comma-separated during a rotation).
     */
    metricsToken: z.string().min(1).optional(),
    /** Register in Consul (HTTP transport only). */
    register: z.boolean().default(true),
    /**
     * Where shared state (bookings, expenses) lives: Consul KV, shared by every replica, or
     * this process's memory (one instance only). Default: consul over HTTP, memory on stdio.
     */
    state: z.enum(["consul", "memory"]).optional(),
    instanceId: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, "expected letters, digits, '.', '_' or '-' (at most 128)")
      .optional(),
    checkInterval: duration.default(DEFAULT_CHECK_INTERVAL),
    deregisterAfter: duration.default(DEFAULT_DEREGISTER_AFTER),
    drainTimeoutMs: z.coerce.number().int().min(0).default(DEFAULT_DRAIN_TIMEOUT_MS),
    reconcileIntervalMs: z.coerce.number().int().min(100).default(DEFAULT_RECONCILE_INTERVAL_MS),
    sessionIdleMs: z.coerce.number().int().min(1_000).default(DEFAULT_SESSION_IDLE_MS),
    maxConcurrentCalls: z.coerce.number().int().min(1).max(100_000).default(DEFAULT_MAX_CONCURRENT_CALLS),
    /** How long an idempotency claim holds without renewal (DEFAULT_CLAIM_LEASE_MS): another replica takes a key over only after it lapses. */
    claimLeaseMs: z.coerce.number().int().min(500).max(600_000).default(DEFAULT_CLAIM_LEASE_MS),
    /** Sessions kept at once; a new one evicts the least recently used. */
    maxSessions: z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_MAX_SESSIONS),
    /** Largest request body accepted. */
    maxBodyBytes: z.coerce
      .number()
      .int()
      .min(1_024)
      .max(64 * 1024 * 1024)
      .default(DEFAULT_MAX_BODY_BYTES),
    /** More host names the MCP endpoint answers to (DNS-rebinding protection), comma-separated in env. */
    allowedHosts: z.preprocess(
      (v) =>
        typeof v === "string"
          ? v
              .split(",")
              .map((h) => h.trim())
              .filter(Boolean)
          : v,
      z.array(z.string().regex(/^[A-Za-z0-9.:_-]+$/, "expected host names such as hr-1 or mesh.example.com")).default([]),
    ),
    logLevel: z.enum(LOG_LEVELS).default("info"),
  })
  .strict();

export { DEFAULT_SESSION_IDLE_MS };

export type AgentConfig = Readonly<z.infer<typeof AgentConfigSchema>>;

export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

/** Environment variables the agent reads; flags win over them. */
export const AGENT_ENV: Readonly<Record<string, keyof AgentConfigInput>> = {
  MESH_TRANSPORT: "transport",
  MESH_HOST: "host",
  MESH_PORT: "port",
  MESH_ADVERTISE_HOST: "advertiseHost",
  MESH_MCP_PATH: "mcpPath",
  CONSUL_HTTP_ADDR: "consulAddr",
  CONSUL_HTTP_TOKEN: "consulToken",
  MESH_TOKEN: "meshToken",
  MESH_TOKEN_FILE: "meshTokenFile",
  MESH_METRICS_TOKEN: "metricsToken",
  MESH_REGISTER: "register",
  MESH_STATE: "state",
  MESH_INSTANCE_ID: "instanceId",
  MESH_CHECK_INTERVAL: "checkInterval",
  MESH_DEREGISTER_AFTER: "deregisterAfter",
  MESH_DRAIN_TIMEOUT_MS: "drainTimeoutMs",
  MESH_MAX_CONCURRENT_CALLS: "maxConcurrentCalls",
  MESH_CLAIM_LEASE_MS: "claimLeaseMs",
  MESH_MAX_SESSIONS: "maxSessions",
  MESH_SESSION_IDLE_MS: "sessionIdleMs",
  MESH_LOG_LEVEL: "logLevel",
  MESH_ALLOWED_HOSTS: "allowedHosts",
};

/**
 * Merges env and flags (flags win), validates once, and returns a frozen config.
 * Errors name the setting, what was expected and what was got.
 */
export function resolveAgentConfig(
  flags: Partial<Record<keyof AgentConfigInput, unknown>>,
  env: NodeJS.ProcessEnv = process.env,
): AgentConfig {
  const fromEnv: Record<string, unknown> = {};
  for (const [variable, key] of Object.entries(AGENT_ENV)) {
    const raw = env[variable];
    if (raw === undefined || raw === "") continue;
    fromEnv[key] = key === "register" ? !/^(0|false|no|off)$/i.test(raw) : raw;
  }
  const merged: Record<string, unknown> = { ...fromEnv };
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) merged[k] = v;
  const parsed = AgentConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = issue.path.join(".");
      const variable = Object.entries(AGENT_ENV).find(([, k]) => k === key)?.[0];
      const got = key in merged ? ` (got ${JSON.stringify(merged[key])})` : "";
      return `  ${key}${variable ? ` / ${variable}` : ""}: ${issue.message}${got}`;
    });
    throw new MeshError("CONFIG_INVALID", `Invalid agent configuration:\n${lines.join("\n")}`);
  }
  parseConsulAddresses(parsed.data.consulAddr); // throws a clear CONFIG_INVALID
  return Object.freeze(parsed.data);
}

/** The host other processes use to reach this instance. */
export function advertisedHost(config: AgentConfig): string {
  if (config.advertiseHost) return config.advertiseHost;
  return config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
}
