import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashTools } from "../../src/agent/toolsHash.ts";
import { AGENTS } from "../../servers/index.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

let consul: TestConsul;
const started: TestAgent[] = [];

beforeAll(async () => {
  consul = await startTestConsul();
});
afterAll(async () => {
  await Promise.all(started.map((a) => a.process.stop()));
  await consul.stop();
});

describe.each(Object.keys(AGENTS))("agent %s over HTTP", (name) => {
  it("is passing in Consul's health API soon after it is ready, with tag mcp and the meta callers rely on", async () => {
    const agent = await spawnAgent(name, consul.address);
    started.push(agent);
    const { value: entry } = await eventually(
      async () => (await consul.client.healthService(name, { passing: true })).value.find((e) => e.id === agent.instanceId),
      { timeoutMs: 3_000, what: `${agent.instanceId} passing` },
    );
    const def = AGENTS[name]!;
    expect(entry.tags).toEqual(["mcp", ...def.intents]);
    expect(entry.status).toBe("passing");
    expect(entry.port).toBe(Number(new URL(agent.url).port));
    expect(entry.meta).toMatchObject({
      mcp_path: "/mcp",
      mcp_transport: "streamable-http",
      mcp_protocols: "2026-07-28,2025-11-25",
      agent_version: def.version,
    });
    expect(entry.meta["description"]).toBe(def.description);

    // The published hash is the hash of the tool list a real client sees.
    const client = await connectHttp(agent.url);
    const { tools } = await client.listTools();
    await client.close();
    expect(entry.meta["tools_hash"]).toBe(hashTools(tools));
    expect(entry.meta["tools_count"]).toBe(String(tools.length));
    expect(entry.id).toBe(`${name}-${(await import("node:os")).hostname()}-${entry.port}`);
  });
});

it("registers an HTTP health check on /healthz with deregister_critical_service_after as a safety net", async () => {
  const hr = started.find((a) => a.instanceId.startsWith("hr-"))!;
  type Check = { ServiceID: string; Type: string; Status: string; Output: string };
  const checkOf = async () =>
    Object.values((await (await fetch(`${consul.address}/v1/agent/checks`)).json()) as Record<string, Check>).find(
      (c) => c.ServiceID === hr.instanceId,
    );
  // The check is registered passing; its output appears with Consul's first probe (within its 1 s interval, later on a busy machine).
  await eventually(async () => Boolean((await checkOf())?.Output), { timeoutMs: 10_000, what: "Consul's first probe of /healthz" });
  const check = (await checkOf())!;
  expect(check.Type).toBe("http");
  expect(check.Status).toBe("passing");
  expect(check.Output).toContain("/healthz");
  const healthz = await fetch(new URL("/healthz", hr.url));
  expect(healthz.status).toBe(200);
  expect(await healthz.json()).toMatchObject({ status: "passing", agent: "hr", id: hr.instanceId });
});
