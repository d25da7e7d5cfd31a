import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The process's Prometheus metrics (prom-client), served at /metrics by every agent and the
 * gateway: tool calls by agent, tool and outcome with their latency, calls in flight, overload
 * refusals, tasks running; and Node's process metrics. One registry per process.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "toolmesh_" });

/** Outcomes of a tool call: answered, answered isError (a business failure), refused before it ran, failed while running. */
export type CallOutcome = "ok" | "tool_error" | "refused" | "failed";

export const toolCalls = new Counter({
  name: "toolmesh_tool_calls_total",
  help: "Tool calls served, by agent, tool and outcome (ok, tool_error, refused, failed, cancelled: the caller withdrew it).",
  labelNames: ["agent", "tool", "outcome"] as const,
  registers: [registry],
});

export const toolCallSeconds = new Histogram({
  name: "toolmesh_tool_call_duration_seconds",
  help: "Time to answer a tool call, by agent and tool.",
  labelNames: ["agent", "tool"] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const callsInFlight = new Gauge({
  name: "toolmesh_tool_calls_in_flight",
  help: "Tool calls running now on this process.",
  registers: [registry],
});

export const overloadRefusals = new Counter({
  name: "toolmesh_overload_refusals_total",
  help: "Tool calls refused with OVERLOADED before they started (the concurrency limit).",
  registers: [registry],
});

export const gatewayCalls = new Counter({
  name: "toolmesh_gateway_calls_total",
  help: "Calls the gateway forwarded, by agent, tool and outcome (ok, tool_error, failed, cancelled: by its client).",
  labelNames: ["agent", "tool", "outcome"] as const,
  registers: [registry],
});

export const quotaRefusals = new Counter({
  name: "toolmesh_quota_refusals_total",
  help: "Calls the gateway refused because their caller was over its quota (rate limit), by caller (principal) and tool (agent.tool).",
  labelNames: ["caller", "tool"] as const,
  registers: [registry],
});

export const tasksRunning = new Gauge({
  name: "toolmesh_tasks_running",
  help: "Tasks (the MCP Tasks extension) running on this process.",
  registers: [registry],
});

export const consulKvSeconds = new Histogram({
  name: "toolmesh_consul_kv_duration_seconds",
  help: "Consul KV requests (shared state, idempotency records, task records), by operation.",
  labelNames: ["op"] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
  registers: [registry],
});

export const breakerState = new Gauge({
  name: "toolmesh_breaker_state",
  help: "This caller's circuit breaker per instance it calls: 0 closed (in rotation), 1 half-open (a trial call), 2 open (ejected).",
  labelNames: ["instance"] as const,
  registers: [registry],
});

export const failovers = new Counter({
  name: "toolmesh_failovers_total",
  help: "Attempts of a call that failed before an answer (the call then went on to the next instance, if one was left), by agent and reason.",
  labelNames: ["agent", "reason"] as const,
  registers: [registry],
});

export const discoveryChanges = new Counter({
  name: "toolmesh_discovery_changes_total",
  help: "Changes this process's live catalog saw, by kind: agents (joined or left), instances, tools.",
  labelNames: ["kind"] as const,
  registers: [registry],
});

export const discoveryWatchErrors = new Counter({
  name: "toolmesh_discovery_watch_errors_total",
  help: "Consul watch requests that failed (the catalog serves the last-known state meanwhile).",
  registers: [registry],
});

export const legacySessions = new Gauge({
  name: "toolmesh_sessions",
  help: "2025-11-25 MCP sessions open on this process (2026-07-28 is stateless).",
  registers: [registry],
});

export const sessionsEvicted = new Counter({
  name: "toolmesh_sessions_evicted_total",
  help: "2025-11-25 sessions closed to make room (the session limit).",
  registers: [registry],
});

export const tasksEnded = new Counter({
  name: "toolmesh_tasks_ended_total",
  help: "Tasks that ended on this process, by tool and final status (completed, failed, cancelled).",
  labelNames: ["tool", "status"] as const,
  registers: [registry],
});

/** The exposition text (Prometheus text format). */
export function exposition(): Promise<string> {
  return registry.metrics();
}

export const METRICS_CONTENT_TYPE = registry.contentType;
