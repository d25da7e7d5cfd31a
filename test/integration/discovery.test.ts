import type { CallToolResult } from "@modelcontextprotocol/client";
import { MESH_FAILURE_ERROR_CODE } from "../../src/protocol/codes.ts";
import { resultText } from "../../src/protocol/results.ts";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

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

it("finance's compute_net_pay finds hr through Consul: it follows hr to a new address and says when none is healthy", async () => {
  const hr1 = await spawnAgent("hr", consul.address);
  const finance = await spawnAgent("finance", consul.address);
  running.push(hr1, finance);
  const client = await connectHttp(finance.url);
  const call = async () =>
    (await client.callTool({ name: "compute_net_pay", arguments: { employee_id: "E1002", period: "annual" } })) as CallToolResult;

  const first = await eventually(
    async () => {
      const r = await call();
      return r.isError ? undefined : r;
    },
    { timeoutMs: 3_000, what: "net pay via hr" },
  );
  expect(first.value.structuredContent).toMatchObject({
    employeeId: "E1002",
    gross: 192_000,
    source: { agent: "hr", tool: "get_employee" },
  });
  const net = (first.value.structuredContent as { net: number }).net;

  // hr goes away: finance reports it in plain words instead of calling a stale address, as
  // the mesh failure it is (a JSON-RPC error carrying the code), not as a business answer.
  await hr1.process.stop();
  const none = call();
  await expect(none).rejects.toMatchObject({ code: MESH_FAILURE_ERROR_CODE, data: { code: "NO_HEALTHY_INSTANCE", retryable: true } });
  await expect(none).rejects.toThrow(`No healthy instance of agent "hr" is registered in Consul at ${consul.address}`);

  // hr comes back on another port: finance finds it without being told.
  const hr2 = await spawnAgent("hr", consul.address);
  running.push(hr2);
  expect(hr2.url).not.toBe(hr1.url);
  const again = await eventually(
    async () => {
      const r = await call();
      return r.isError ? undefined : r;
    },
    { timeoutMs: 3_000, what: "net pay via the new hr" },
  );
  expect((again.value.structuredContent as { net: number }).net).toBe(net);

  // HR's business errors pass through with HR's own words.
  const unknown = (await client.callTool({ name: "compute_net_pay", arguments: { employee_id: "E9999" } })) as CallToolResult;
  expect(unknown.isError).toBe(true);
  expect(resultText(unknown)).toContain('HR agent: Unknown employee id "E9999"');
  await client.close();
});

it("two hr replicas share leave state: concurrent bookings across both never overspend a balance", async () => {
  const [a, b] = await Promise.all([spawnAgent("hr", consul.address), spawnAgent("hr", consul.address)]);
  running.push(a!, b!);
  const [ca, cb] = await Promise.all([connectHttp(a!.url), connectHttp(b!.url)]);
  const employee = "E1020";
  const before = (await ca!.callTool({ name: "get_leave_balance", arguments: { employee_id: employee } })) as CallToolResult;
  const remaining = (before.structuredContent as { balances: { vacation: { remaining: number } } }).balances.vacation.remaining;
  expect(remaining).toBeGreaterThan(5);

  // remaining + 6 single working days, alternately through each replica, all at once.
  const days: string[] = [];
  for (let t = Date.UTC(2026, 0, 5); days.length < remaining + 6; t += 86_400_000) {
    const d = new Date(t);
    if (d.getUTCDay() !== 0 && d.getUTCDay() !== 6) days.push(d.toISOString().slice(0, 10));
  }
  const results = (await Promise.all(
    days.map((day, i) =>
      (i % 2 ? cb! : ca!).callTool({
        name: "request_leave",
        arguments: { employee_id: employee, leave_type: "vacation", start_date: day, end_date: day },
      }),
    ),
  )) as CallToolResult[];
  const ok = results.filter((r) => !r.isError);
  const refused = results.filter((r) => r.isError);
  expect(ok.length).toBe(remaining);
  expect(refused.length).toBe(6);
  for (const r of refused) expect(resultText(r)).toMatch(/Not enough vacation leave/);

  for (const c of [ca!, cb!]) {
    const after = (await c.callTool({ name: "get_leave_balance", arguments: { employee_id: employee } })) as CallToolResult;
    expect((after.structuredContent as { balances: { vacation: { remaining: number } } }).balances.vacation.remaining).toBe(0);
  }
  await Promise.all([ca!.close(), cb!.close()]);
});

it("when hr restarts on the same port, finance's pooled session is renewed and the call succeeds", async () => {
  const { createServer } = await import("node:net");
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const p = (probe.address() as { port: number }).port;
      probe.close(() => resolve(p));
    });
  });
  const hr = await spawnAgent("hr", consul.address, { port });
  running.push(hr);
  const finance = await spawnAgent("finance", consul.address);
  running.push(finance);
  const client = await connectHttp(finance.url);
  const call = async () => (await client.callTool({ name: "compute_net_pay", arguments: { employee_id: "E1003" } })) as CallToolResult;
  await eventually(async () => !(await call()).isError, { timeoutMs: 3_000, what: "first net pay" });

  await hr.process.stop();
  const again = await spawnAgent("hr", consul.address, { port });
  running.push(again);
  expect(again.instanceId).toBe(hr.instanceId); // stable id on a fixed port
  await eventually(
    async () => (await consul.client.healthService("hr", { passing: true })).value.map((e) => e.id).join() === again.instanceId,
    {
      timeoutMs: 3_000,
      what: "the restarted hr passing, alone",
    },
  );
  // The very first call must work: finance's pooled session belongs to the old process.
  const first = await call();
  expect(first.isError, JSON.stringify(first.content)).toBeFalsy();
  expect(first.structuredContent).toMatchObject({ employeeId: "E1003" });
  await client.close();
});
