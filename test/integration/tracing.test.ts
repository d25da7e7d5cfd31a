// OpenTelemetry traces across every hop, received over OTLP/HTTP by a real receiver in this
// process (test/helpers/otlp.ts): mesh call finance.compute_net_pay makes one trace from the
// CLI through finance to hr, with parent links hop by hop, and so does a call through the gateway.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../helpers/otlp.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const SERVER = 2;
const CLIENT = 3;
const INTERNAL = 1;

let consul: TestConsul;
let otlp: OtlpReceiver;
let env: NodeJS.ProcessEnv;
const agents: TestAgent[] = [];
let gateway: TestAgent;

beforeAll(async () => {
  consul = await startTestConsul();
  otlp = await startOtlpReceiver();
  // The standard variables, nothing toolmesh-specific; a short batch delay so spans arrive soon.
  env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_BSP_SCHEDULE_DELAY: "100",
  };
  agents.push(...(await Promise.all(["hr", "finance"].map((a) => spawnAgent(a, consul.address, { env })))));
  gateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready", env });
}, 120_000);
afterAll(async () => {
  await gateway?.process.stop(2_000);
  await Promise.all(agents.map((a) => a.process.stop(2_000)));
  await consul?.stop();
  await otlp?.close();
});

/** finance.compute_net_pay through the gateway's /mcp, as a 2026-07-28 client with its own traceparent. */
function callThroughGateway(traceId: string, parentSpan: string): Promise<Response> {
  return fetch(gateway.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": "tools/call",
      "mcp-name": "finance__compute_net_pay",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: {
        name: "finance__compute_net_pay",
        arguments: { employee_id: "E1002" },
        _meta: {
          traceparent: `00-${traceId}-${parentSpan}-01`,
          "io.modelcontextprotocol/clientInfo": { name: "trace-test", version: "1" },
          "io.modelcontextprotocol/clientCapabilities": {},
          "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        },
      },
    }),
  });
}

/** The one span matching, failing with what the trace holds otherwise. */
function only(spans: ReceivedSpan[], match: Partial<ReceivedSpan>): ReceivedSpan {
  const found = spans.filter((s) => Object.entries(match).every(([k, v]) => s[k as keyof ReceivedSpan] === v));
  const shown = spans.map((s) => `${s.service}:${s.kind}:${s.name}`).join(", ");
  expect(found, `exactly one span like ${JSON.stringify(match)} in [${shown}]`).toHaveLength(1);
  return found[0]!;
}

describe("OpenTelemetry traces over OTLP", () => {
  it("mesh call finance.compute_net_pay: one trace, CLI → finance → hr, each span the child of the one before", async () => {
    const run = await mesh(["call", "finance.compute_net_pay", "--arg", "employee_id=E1002", "--json", "--consul", consul.address], env);
    expect(run.code, run.stderr).toBe(0);
    const { traceId } = JSON.parse(run.stdout) as { traceId: string };
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    // CLI root + attempt, finance server + its attempt to hr, hr server (+ no others from the call).
    await eventually(async () => otlp.trace(traceId).filter((s) => !s.name.startsWith("consul ")).length >= 5, {
      timeoutMs: 10_000,
      what: `the trace's spans over OTLP (have: ${JSON.stringify(otlp.spans.map((s) => [s.service, s.name, s.traceId === traceId]))})`,
    });
    const spans = otlp.trace(traceId);
    const root = only(spans, { service: "mesh-cli", kind: INTERNAL });
    expect(root).toMatchObject({ name: "mesh call finance.compute_net_pay", parentSpanId: "" });
    const cliAttempt = only(spans, { service: "mesh-cli", kind: CLIENT });
    expect(cliAttempt).toMatchObject({ name: "tools/call compute_net_pay", parentSpanId: root.spanId });
    expect(cliAttempt.attributes).toMatchObject({
      "mcp.method.name": "tools/call",
      "gen_ai.tool.name": "compute_net_pay",
      "toolmesh.agent": "finance",
      "toolmesh.attempt": 1,
      "toolmesh.instance": agents[1]!.instanceId,
      "toolmesh.hop": 0,
      "toolmesh.caller_chain": ["mesh-cli"],
    });
    const finance = only(spans, { service: "finance", kind: SERVER });
    expect(finance).toMatchObject({ name: "tools/call compute_net_pay", parentSpanId: cliAttempt.spanId, status: 0 });
    const financeAttempt = only(spans, { service: "finance", kind: CLIENT, name: "tools/call get_employee" });
    expect(financeAttempt.parentSpanId).toBe(finance.spanId);
    expect(financeAttempt.attributes).toMatchObject({
      "toolmesh.agent": "hr",
      "toolmesh.hop": 1,
      "toolmesh.caller_chain": ["mesh-cli", "finance"],
    });
    const hr = only(spans, { service: "hr", kind: SERVER });
    expect(hr).toMatchObject({ name: "tools/call get_employee", parentSpanId: financeAttempt.spanId });
    // Every span of the trace hangs off the root: no orphan, nothing from another trace.
    const ids = new Set(spans.map((s) => s.spanId));
    for (const s of spans) if (s !== root) expect(ids.has(s.parentSpanId), `${s.service}:${s.name} has its parent in the trace`).toBe(true);
    // The pino logs carry the same trace id.
    expect(agents[1]!.logs().some((l) => l["msg"] === "tool call" && l["traceId"] === traceId)).toBe(true);
  }, 60_000);

  it("a call through the gateway continues the client's traceparent: client → gateway → finance → hr", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const clientSpan = "00f067aa0ba902b7";
    const res = await callThroughGateway(traceId, clientSpan);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/net/);
    await eventually(async () => otlp.trace(traceId).filter((s) => !s.name.startsWith("consul ")).length >= 5, {
      timeoutMs: 10_000,
      what: "the gateway trace's spans",
    });
    const spans = otlp.trace(traceId);
    const gw = only(spans, { service: "toolmesh-gateway", kind: SERVER });
    expect(gw).toMatchObject({ name: "tools/call finance__compute_net_pay", parentSpanId: clientSpan });
    const gwAttempt = only(spans, { service: "toolmesh-gateway", kind: CLIENT });
    expect(gwAttempt.parentSpanId).toBe(gw.spanId);
    const finance = only(spans, { service: "finance", kind: SERVER });
    expect(finance.parentSpanId).toBe(gwAttempt.spanId);
    const hr = only(spans, { service: "hr", kind: SERVER });
    expect(only(spans, { service: "finance", kind: CLIENT }).spanId).toBe(hr.parentSpanId);
  }, 60_000);

  it("a failover shows as two attempt spans under the gateway's span: the first failed at a dead instance, the second answered", async () => {
    // A finance instance that is registered (passing) but whose port is closed.
    const real = (await consul.client.healthService("finance", { passing: true })).value[0]!;
    await consul.client.registerService({
      id: "finance-dead",
      name: "finance",
      address: "127.0.0.1",
      port: 9,
      tags: real.tags,
      meta: real.meta,
    });
    try {
      let failover: ReceivedSpan[] | undefined;
      for (let i = 0; i < 4 && !failover; i++) {
        const traceId = `${"ab".repeat(15)}${String(i).padStart(2, "0")}`;
        await eventually(
          async () => {
            const res = await callThroughGateway(traceId, "00f067aa0ba902b7");
            return res.status === 200 && /net/.test(await res.text());
          },
          { timeoutMs: 5_000, what: "an answer" },
        );
        // Each process exports on its own schedule: wait for the last span of each.
        await eventually(
          async () =>
            ["hr", "finance", "toolmesh-gateway"].every((svc) => otlp.trace(traceId).some((s) => s.service === svc && s.kind === SERVER)),
          { timeoutMs: 10_000, what: "the spans" },
        );
        const attempts = otlp.trace(traceId).filter((s) => s.service === "toolmesh-gateway" && s.kind === CLIENT);
        if (attempts.length === 2) failover = otlp.trace(traceId);
      }
      expect(failover, "one of the calls met the dead instance first").toBeDefined();
      const gw = only(failover!, { service: "toolmesh-gateway", kind: SERVER });
      const attempts = failover!.filter((s) => s.service === "toolmesh-gateway" && s.kind === CLIENT);
      const [first, second] = [...attempts].sort(
        (a, b) => Number(a.attributes["toolmesh.attempt"]) - Number(b.attributes["toolmesh.attempt"]),
      );
      expect(first).toMatchObject({ parentSpanId: gw.spanId, status: 2 });
      expect(first!.attributes).toMatchObject({ "toolmesh.attempt": 1, "toolmesh.instance": "finance-dead" });
      expect(String(first!.attributes["error.type"])).not.toBe("");
      expect(second).toMatchObject({ parentSpanId: gw.spanId, status: 0 });
      expect(second!.attributes).toMatchObject({ "toolmesh.attempt": 2, "toolmesh.instance": real.id });
      // The agent's server span is the child of the attempt that reached it.
      expect(only(failover!, { service: "finance", kind: SERVER }).parentSpanId).toBe(second!.spanId);
    } finally {
      await consul.client.deregisterService("finance-dead");
    }
  }, 60_000);

  it("Consul KV work inside a call (the idempotency claim, the state write) shows as child spans of the agent's span", async () => {
    const run = await mesh(
      [
        "call",
        "finance.submit_expense",
        '{"employee_id":"E1004","department":"Sales","category":"meals","amount":42,"description":"Lunch"}',
        "--idempotency-key",
        "trace-test-0001",
        "--json",
        "--consul",
        consul.address,
      ],
      env,
    );
    expect(run.code, run.stderr).toBe(0);
    const { traceId } = JSON.parse(run.stdout) as { traceId: string };
    await eventually(async () => otlp.trace(traceId).some((s) => s.service === "finance" && s.kind === SERVER), {
      timeoutMs: 10_000,
      what: "finance's span",
    });
    const spans = otlp.trace(traceId);
    const finance = only(spans, { service: "finance", kind: SERVER });
    const kv = spans.filter((s) => s.service === "finance" && s.name.startsWith("consul kv."));
    // The claim and the fenced booking are written in Consul transactions (kv.txn).
    expect(kv.map((s) => s.name)).toEqual(expect.arrayContaining(["consul kv.get", "consul kv.txn"]));
    const ids = new Set(spans.map((s) => s.spanId));
    for (const s of kv) {
      expect(ids.has(s.parentSpanId)).toBe(true);
      expect(s.attributes["db.system.name"]).toBe("consul");
    }
    expect(kv.some((s) => s.parentSpanId === finance.spanId)).toBe(true);
    // The idempotency claim: under the agent's prefix, by the key's digest.
    expect(kv.some((s) => String(s.attributes["toolmesh.kv.key"]).startsWith("toolmesh/idempotency/finance/"))).toBe(true);
  }, 60_000);
});
