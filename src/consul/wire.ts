import type { HttpResponse } from "./http.ts";

/** A service as the local agent lists it (`/v1/agent/services`). */
export interface AgentService {
  id: string;
  service: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
}

/** The health check a registration asks the local agent to run. */
export interface ServiceCheck {
  name: string;
  http?: string;
  /** host:port for a TCP connect check. */
  tcp?: string;
  ttl?: string;
  /** Initial status (Consul starts checks critical). */
  status?: "passing" | "warning" | "critical";
  interval?: string;
  timeout?: string;
  deregisterCriticalServiceAfter: string;
}

/** The agent's answer to `/v1/agent/services`, as a list. */
export function agentServiceList(body: unknown): AgentService[] {
  return Object.values(
    (body ?? {}) as Record<
      string,
      { ID: string; Service: string; Address: string; Port: number; Tags?: string[]; Meta?: Record<string, string> }
    >,
  ).map((x) => ({
    id: x.ID,
    service: x.Service,
    address: x.Address,
    port: x.Port,
    tags: x.Tags ?? [],
    meta: x.Meta ?? {},
  }));
}

/** A registration's check as Consul's API spells it. */
export function checkBody(c: ServiceCheck | undefined): Record<string, unknown> | undefined {
  if (!c) return undefined;
  return {
    Name: c.name,
    ...(c.http ? { HTTP: c.http, Interval: c.interval, Timeout: c.timeout } : {}),
    ...(c.tcp ? { TCP: c.tcp, Interval: c.interval, Timeout: c.timeout } : {}),
    ...(c.ttl ? { TTL: c.ttl } : {}),
    ...(c.status ? { Status: c.status } : {}),
    DeregisterCriticalServiceAfter: c.deregisterCriticalServiceAfter,
  };
}

/** The KV path of a key, each segment escaped. */
export function kvPath(key: string): string {
  return `/kv/${key.split("/").map(encodeURIComponent).join("/")}`;
}

/** The X-Consul-Index of an answer, for the next blocking query. */
export function consulIndex(res: HttpResponse): string {
  return res.headers["x-consul-index"] ?? "0";
}
