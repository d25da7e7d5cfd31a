// /metrics on an agent and the gateway: Prometheus text, parsed with a Prometheus text parser
// and checked against a known number of calls.
import { fileURLToPath } from "node:url";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
const TOKEN = "metrics-test-token-0123456789";

let consul: TestConsul;
let hr: TestAgent;
let gateway: TestAgent;
let probe: TestAgent;

beforeAll(async () => {
  consul = await startTestConsul();
  hr = await spawnAgent("hr", consul.address, { env: { MESH_TOKEN: TOKEN } });
  probe = await spawnAgent(PROBE, consul.address, { env: { MESH_TOKEN: TOKEN, PROBE_NAME: "slow" } });
  await eventually(async () => (await consul.client.healthService("hr", { passing: true })).value.length === 1, {
    timeoutMs: 5_000,
    what: "hr passing",
  });
  gateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready", env: { MESH_TOKEN: TOKEN } });
}, 60_000);
afterAll(async () => {
  await gateway.process.stop(2_000);
  await hr.process.stop(2_000);
  await probe.process.stop(2_000);
  await consul.stop();
});

type Family = { name: string; type: string; metrics: { labels?: Record<string, string>; value?: string; count?: string }[] };

let lastText = "";

async function scrape(base: string): Promise<Family[]> {
  const res = await fetch(new URL("/metrics", base), { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  lastText = await res.text();
  return parsePrometheusTextFormat(lastText) as Family[];
}

function sample(families: Family[], name: string, labels: Record<string, string>): number {
  const f = families.find((x) => x.name === name);
  const m = f?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return Number(m?.value ?? m?.count ?? 0);
}

describe("/metrics", () => {
  it("an agent counts its calls by tool and outcome, times them, and keeps its metrics behind its token", async () => {
    expect((await fetch(new URL("/metrics", hr.url))).status).toBe(401);
    const client = await connectHttp(hr.url, { token: TOKEN });
    for (let i = 0; i < 3; i++) await client.callTool({ name: "get_leave_policy", arguments: { leave_type: "sick" } });
    await client.callTool({ name: "get_employee", arguments: { employee_id: "E9999" } }); // a business error
    await client.callTool({ name: "get_employee", arguments: { employee_id: 42 } }); // invalid arguments: refused
    await client.close();
    const families = await scrape(hr.url);
    expect(sample(families, "toolmesh_tool_calls_total", { agent: "hr", tool: "get_leave_policy", outcome: "ok" })).toBe(3);
    expect(sample(families, "toolmesh_tool_calls_total", { agent: "hr", tool: "get_employee", outcome: "tool_error" })).toBe(1);
    expect(sample(families, "toolmesh_tool_calls_total", { agent: "hr", tool: "get_employee", outcome: "refused" })).toBe(1);
    // The latency histogram (the parser drops a histogram's labels when `le` comes first, as prom-client writes it: read its count line).
    expect(families.find((f) => f.name === "toolmesh_tool_call_duration_seconds")?.type).toBe("HISTOGRAM");
    expect(lastText).toMatch(/^toolmesh_tool_call_duration_seconds_count\{agent="hr",tool="get_leave_policy"\} 3$/m);
    expect(families.find((f) => f.name === "toolmesh_tool_calls_in_flight")?.type).toBe("GAUGE");
    expect(families.some((f) => f.name === "toolmesh_process_resident_memory_bytes")).toBe(true);
    // Consul says where to scrape.
    const [entry] = (await consul.client.healthService("hr", { passing: true })).value;
    expect(entry!.meta["metrics_path"]).toBe("/metrics");
  });

  it("a call its client cancels is counted as cancelled, not as a failure, and logs no error", async () => {
    const client = await connectHttp(probe.url, { token: TOKEN });
    const withdrawn = new AbortController();
    const call = client.callTool({ name: "sleep", arguments: { ms: 30_000, fail_on_abort: true } }, { signal: withdrawn.signal });
    call.catch(() => undefined);
    await eventually(async () => sample(await scrape(probe.url), "toolmesh_tool_calls_in_flight", {}) === 1, {
      timeoutMs: 10_000,
      what: "the call running at the agent",
    });
    withdrawn.abort();
    await expect(call).rejects.toThrow();
    await eventually(
      async () => sample(await scrape(probe.url), "toolmesh_tool_calls_total", { tool: "sleep", outcome: "cancelled" }) === 1,
      {
        timeoutMs: 10_000,
        what: "the cancelled call counted",
      },
    );
    const families = await scrape(probe.url);
    expect(sample(families, "toolmesh_tool_calls_total", { tool: "sleep", outcome: "tool_error" })).toBe(0);
    expect(sample(families, "toolmesh_tool_calls_total", { tool: "sleep", outcome: "failed" })).toBe(0);
    // Logged as what it is (info), with no error line and no stack trace.
    expect(probe.logs().filter((l) => Number(l["level"]) >= 50)).toEqual([]);
    expect(probe.logs().some((l) => l["msg"] === "tool call cancelled by its caller")).toBe(true);
    await client.close();
  });

  it.each(["modern", "legacy"] as const)(
    "a call through the gateway its client cancels (%s era) is counted as cancelled at the gateway, not as a failure, and logs no error",
    async (era) => {
      const client = await connectHttp(gateway.url, { token: TOKEN, era });
      await eventually(async () => (await client.listTools()).tools.some((t) => t.name === "slow__sleep"), {
        timeoutMs: 5_000,
        what: "the probe at the gateway",
      });
      const inFlight = async () => sample(await scrape(probe.url), "toolmesh_tool_calls_in_flight", {});
      await eventually(async () => (await inFlight()) === 0, { timeoutMs: 10_000, what: "no call running at the probe" });
      const labels = { agent: "slow", tool: "sleep" };
      const counted = async (outcome: string) => sample(await scrape(gateway.url), "toolmesh_gateway_calls_total", { ...labels, outcome });
      const before = await counted("cancelled");
      const started = Date.now();
      const withdrawn = new AbortController();
      const call = client.callTool({ name: "slow__sleep", arguments: { ms: 30_000, fail_on_abort: true } }, { signal: withdrawn.signal });
      call.catch(() => undefined);
      await eventually(async () => (await inFlight()) === 1, { timeoutMs: 10_000, what: "the call running at the agent" });
      withdrawn.abort();
      await expect(call).rejects.toThrow();
      await eventually(async () => (await counted("cancelled")) === before + 1, {
        timeoutMs: 10_000,
        what: "the cancelled call counted at the gateway",
      });
      expect(await counted("failed")).toBe(0);
      // Logged as what it is (info), with no error or warning line.
      const lines = gateway.logs().filter((l) => Number(l["time"]) >= started);
      expect(lines.filter((l) => Number(l["level"]) >= 40)).toEqual([]);
      expect(lines.some((l) => l["msg"] === "call through the gateway cancelled by its client" && Number(l["level"]) === 30)).toBe(true);
      await client.close();
    },
  );

  it("the gateway counts the calls it forwards; the agent counts them too", async () => {
    const before = sample(await scrape(hr.url), "toolmesh_tool_calls_total", { agent: "hr", tool: "get_leave_policy", outcome: "ok" });
    const client = await connectHttp(gateway.url, { token: TOKEN });
    await eventually(async () => (await client.listTools()).tools.some((t) => t.name === "hr__get_leave_policy"), {
      timeoutMs: 5_000,
      what: "hr at the gateway",
    });
    for (let i = 0; i < 2; i++) await client.callTool({ name: "hr__get_leave_policy", arguments: { leave_type: "vacation" } });
    await client.close();
    expect(
      sample(await scrape(gateway.url), "toolmesh_gateway_calls_total", { agent: "hr", tool: "get_leave_policy", outcome: "ok" }),
    ).toBe(2);
    expect(sample(await scrape(hr.url), "toolmesh_tool_calls_total", { agent: "hr", tool: "get_leave_policy", outcome: "ok" })).toBe(
      before + 2,
    );
  });

  it("the gateway shows what its callers see: a dead instance's breaker open, the failover, discovery changes", async () => {
    const real = (await consul.client.healthService("hr", { passing: true })).value[0]!;
    const changesBefore = sample(await scrape(gateway.url), "toolmesh_discovery_changes_total", { kind: "instances" });
    // Registered and passing in Consul, but nothing listens on its port.
    await consul.client.registerService({ id: "hr-dead", name: "hr", address: "127.0.0.1", port: 9, tags: real.tags, meta: real.meta });
    try {
      await eventually(
        async () => sample(await scrape(gateway.url), "toolmesh_discovery_changes_total", { kind: "instances" }) > changesBefore,
        { timeoutMs: 5_000, what: "the gateway's catalog to see the new instance" },
      );
      const client = await connectHttp(gateway.url, { token: TOKEN });
      // Round robin over two instances: within two calls one goes to the dead one first and fails over.
      for (let i = 0; i < 2; i++) {
        const r = await client.callTool({ name: "hr__get_leave_policy", arguments: { leave_type: "vacation" } });
        expect(r.isError).toBeFalsy();
      }
      await client.close();
      const families = await scrape(gateway.url);
      expect(sample(families, "toolmesh_breaker_state", { instance: "hr-dead" })).toBe(2);
      expect(sample(families, "toolmesh_breaker_state", { instance: real.id })).toBe(0);
      expect(families.find((f) => f.name === "toolmesh_failovers_total")?.metrics.some((m) => m.labels?.["agent"] === "hr")).toBe(true);
      expect(families.find((f) => f.name === "toolmesh_sessions")?.type).toBe("GAUGE");
    } finally {
      await consul.client.deregisterService("hr-dead");
    }
  });
});
