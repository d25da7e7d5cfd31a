import type { CallToolResult } from "@modelcontextprotocol/client";
import { MESH_FAILURE_ERROR_CODE } from "../../src/protocol/codes.ts";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConsulClient } from "../../src/consul/client.ts";
import { resolveConsulBinary, startDevConsul } from "../../src/consul/devAgent.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { randomLoopback, startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually, untilInstances, within } from "../helpers/eventually.ts";
import { MeshClient } from "../../src/client/meshClient.ts";

const SLOW_AGENT = fileURLToPath(new URL("../fixtures/slowAgent.ts", import.meta.url));

let consul: TestConsul;
const running: TestAgent[] = [];

beforeAll(async () => {
  consul = await startTestConsul();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.process.stop(2_000)));
});
afterAll(async () => {
  await consul.stop();
});

async function passing(name: string, id: string): Promise<boolean> {
  return (await consul.client.healthService(name, { passing: true })).value.some((e) => e.id === id);
}

describe("shutdown", () => {
  it("SIGTERM: deregisters before the process exits, refuses new calls, finishes the call in flight, exits 0", async () => {
    const agent = await spawnAgent(SLOW_AGENT, consul.address);
    running.push(agent);
    await eventually(() => passing("slow", agent.instanceId), { timeoutMs: 3_000, what: "slow agent passing" });
    const client = await connectHttp(agent.url);
    const inFlight = client.callTool({ name: "sleep", arguments: { ms: 1_500 } });
    await eventually(async () => ((await (await fetch(new URL("/healthz", agent.url))).json()) as { inFlight: number }).inFlight >= 1, {
      timeoutMs: 2_000,
      what: "the call to be in flight",
    });

    agent.process.signal("SIGTERM");
    await eventually(async () => !(await consul.client.hasAgentService(agent.instanceId)), { timeoutMs: 1_000, what: "deregistration" });
    let exitCode: number | null | undefined;
    void agent.process.exited.then((c) => (exitCode = c));
    expect(exitCode, "process still running while it drains").toBeUndefined();

    // A second session's new call is turned away while draining (a caller may try another instance).
    const late = await fetch(agent.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "late", version: "1" } },
      }),
    });
    expect(late.status).toBe(503);
    expect(await late.text()).toMatch(/draining/);

    const result = (await inFlight) as CallToolResult;
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ slept: 1_500 });
    expect(await agent.process.exited).toBe(0);

    const messages = agent.logs().map((l) => l["msg"]);
    expect(messages.indexOf("deregistered from Consul")).toBeGreaterThan(-1);
    expect(messages.indexOf("deregistered from Consul")).toBeLessThan(messages.indexOf("stopped"));
    await client.close().catch(() => undefined);
  });

  it("SIGINT drains and deregisters the same way", async () => {
    const agent = await spawnAgent("knowledge", consul.address);
    await eventually(() => passing("knowledge", agent.instanceId), { timeoutMs: 3_000, what: "knowledge passing" });
    agent.process.signal("SIGINT");
    expect(await agent.process.exited).toBe(0);
    expect(await consul.client.hasAgentService(agent.instanceId)).toBe(false);
  });

  it("SIGKILL: Consul marks the instance critical within a few seconds", async () => {
    const agent = await spawnAgent("hr", consul.address);
    running.push(agent);
    await eventually(() => passing("hr", agent.instanceId), { timeoutMs: 3_000, what: "hr passing" });
    agent.process.signal("SIGKILL");
    await eventually(
      async () => (await consul.client.healthService("hr")).value.find((e) => e.id === agent.instanceId)?.status === "critical",
      { timeoutMs: 5_000, what: "hr critical" },
    );
    expect(await passing("hr", agent.instanceId)).toBe(false);
  });
});

describe("Consul restarts and outages", () => {
  it("a fresh dev agent on the same address gets every live agent registered again, by itself", async () => {
    const agents = await Promise.all(["hr", "finance", "knowledge"].map((n) => spawnAgent(n, consul.address)));
    running.push(...agents);
    for (const a of agents)
      await eventually(() => passing(a.instanceId.split("-")[0]!, a.instanceId), { timeoutMs: 3_000, what: a.instanceId });

    await consul.restart();
    expect((await consul.client.healthService("hr")).value).toEqual([]); // the new agent knows nobody

    await eventually(
      async () => {
        for (const a of agents) if (!(await passing(a.instanceId.split("-")[0]!, a.instanceId))) return false;
        return true;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: "every agent passing in the restarted Consul" },
    );
    // Each says why in its log (the line may reach the file a moment after Consul has it).
    for (const a of agents)
      await eventually(() => a.logs().some((l) => String(l["msg"]).startsWith("Consul had forgotten this instance")), {
        timeoutMs: 2_000,
        what: `${a.instanceId}'s log line`,
      });
  });

  it("an agent started while Consul is down serves anyway and registers once Consul appears", async () => {
    const bind = randomLoopback();
    const address = `http://${bind}:8500`;
    const agent = await within(10_000, "spawning hr", spawnAgent("hr", address));
    running.push(agent);
    const client = await within(5_000, "connecting", connectHttp(agent.url));
    const r = (await within(
      5_000,
      "calling",
      client.callTool({ name: "get_leave_policy", arguments: { leave_type: "sick" } }),
    )) as CallToolResult;
    expect(r.isError).toBeFalsy();
    await within(5_000, "closing the client", client.close());
    expect(agent.logs().some((l) => l["msg"] === "cannot register in Consul; serving anyway and retrying")).toBe(true);

    const binary = await within(5_000, "resolving the consul binary", resolveConsulBinary());
    const late = await within(10_000, "starting Consul", startDevConsul({ bindAddress: bind, binary }));
    const lateClient = new ConsulClient({ address });
    try {
      await eventually(async () => (await lateClient.healthService("hr", { passing: true })).value.some((e) => e.id === agent.instanceId), {
        timeoutMs: 8_000,
        what: "registration after Consul came up",
      });
    } finally {
      lateClient.destroy();
      await within(5_000, "stopping hr", agent.process.stop(2_000));
      await within(8_000, "stopping Consul", late.stop());
    }
  });

  it("a booking during a Consul outage is an infrastructure failure (a retryable mesh error), not a business answer", async () => {
    const own = await startTestConsul();
    const agent = await spawnAgent("hr", own.address);
    running.push(agent);
    const caller = new MeshClient({ consul: own.client, callerName: "test" });
    try {
      await untilInstances(caller, "hr", 1);
      const args = { employee_id: "E1031", leave_type: "personal", start_date: "2026-06-01", end_date: "2026-06-01" };
      own.agent.kill("SIGKILL");
      await own.agent.exited;
      // Straight to the agent over MCP: a JSON-RPC error naming the failure, no isError result.
      const direct = await connectHttp(agent.url);
      const refused = direct.callTool({ name: "request_leave", arguments: args });
      await expect(refused).rejects.toMatchObject({ code: MESH_FAILURE_ERROR_CODE, data: { code: "CONSUL_UNREACHABLE", retryable: true } });
      // Said without the agent's Consul address or key paths (the agent's log has them).
      await expect(refused).rejects.toThrow(
        /hr\.request_leave could not complete: this agent's Consul failed under it \(CONSUL_UNREACHABLE\)/,
      );
      await expect(refused).rejects.not.toThrow(own.bind);
      await direct.close();
      // Through the mesh (the caller's last-known catalog): a MeshError, which the CLI exits 3 on.
      await expect(caller.callTool("hr", "request_leave", args)).rejects.toMatchObject({ code: "CONSUL_UNREACHABLE", retryable: true });
    } finally {
      await caller.close();
      own.client.destroy();
    }
  });
});

it("--no-register --state memory: an HTTP agent that needs no Consul at all", async () => {
  const agent = await spawnAgent("hr", `http://${randomLoopback()}:8500`, { args: ["--no-register", "--state", "memory"] });
  running.push(agent);
  const client = await connectHttp(agent.url);
  const booked = (await client.callTool({
    name: "request_leave",
    arguments: { employee_id: "E1030", leave_type: "personal", start_date: "2026-05-04", end_date: "2026-05-04" },
  })) as CallToolResult;
  expect(booked.isError, JSON.stringify(booked.content)).toBeFalsy();
  const again = (await client.callTool({
    name: "request_leave",
    arguments: { employee_id: "E1030", leave_type: "personal", start_date: "2026-05-04", end_date: "2026-05-04" },
  })) as CallToolResult;
  expect(again.isError).toBe(true); // the booking is remembered in memory
  await client.close();
  expect(agent.logs().find((l) => l["msg"] === "agent ready")).toMatchObject({ registered: false, state: "memory" });
});
