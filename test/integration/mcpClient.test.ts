import type { CallToolResult, Client, Tool } from "@modelcontextprotocol/client";
import { resultText } from "../../src/protocol/results.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";

let consul: TestConsul;
const agents: Record<string, TestAgent> = {};
const clients: Record<string, Client> = {};

beforeAll(async () => {
  consul = await startTestConsul();
  for (const name of ["hr", "finance", "knowledge"]) {
    agents[name] = await spawnAgent(name, consul.address);
    clients[name] = await connectHttp(agents[name].url);
  }
});
afterAll(async () => {
  await Promise.all(Object.values(clients).map((c) => c.close()));
  await Promise.all(Object.values(agents).map((a) => a.process.stop()));
  await consul.stop();
});

/** Expected annotations: what a client decides retries and confirmations on. */
const EXPECTED: Record<string, Record<string, { readOnly: boolean; idempotent: boolean }>> = {
  hr: {
    find_employee: { readOnly: true, idempotent: true },
    get_employee: { readOnly: true, idempotent: true },
    list_direct_reports: { readOnly: true, idempotent: true },
    get_leave_balance: { readOnly: true, idempotent: true },
    get_leave_policy: { readOnly: true, idempotent: true },
    request_leave: { readOnly: false, idempotent: false },
    ask: { readOnly: true, idempotent: true },
  },
  finance: {
    get_budget: { readOnly: true, idempotent: true },
    submit_expense: { readOnly: false, idempotent: false },
    list_expenses: { readOnly: true, idempotent: true },
    compute_net_pay: { readOnly: true, idempotent: true },
    run_payroll: { readOnly: false, idempotent: true },
    ask: { readOnly: true, idempotent: true },
  },
  knowledge: {
    search_documents: { readOnly: true, idempotent: true },
    get_document: { readOnly: true, idempotent: true },
    list_documents: { readOnly: true, idempotent: true },
    ask: { readOnly: true, idempotent: true },
  },
};

describe.each(Object.keys(EXPECTED))("tools of %s", (name) => {
  let tools: Tool[];
  beforeAll(async () => {
    tools = (await clients[name]!.listTools()).tools;
  });

  it("lists exactly the expected tools, each with a description, object input and output schemas", () => {
    expect(tools.map((t) => t.name).sort()).toEqual(Object.keys(EXPECTED[name]!).sort());
    for (const t of tools) {
      expect(t.description?.length, t.name).toBeGreaterThan(30);
      expect(t.inputSchema.type, t.name).toBe("object");
      expect(t.outputSchema?.type, t.name).toBe("object");
    }
  });

  it("annotates read-only, idempotent and state-changing tools accurately", () => {
    for (const t of tools) {
      const want = EXPECTED[name]![t.name]!;
      expect(t.annotations, t.name).toMatchObject({ readOnlyHint: want.readOnly, idempotentHint: want.idempotent, destructiveHint: false });
    }
  });
});

describe("calls", () => {
  it("hr: finds an employee and returns structured content matching the output schema", async () => {
    const r = (await clients["hr"]!.callTool({ name: "find_employee", arguments: { query: "okafor" } })) as CallToolResult;
    expect(r.isError).toBeFalsy();
    expect(r.structuredContent).toMatchObject({ count: 1, employees: [{ id: "E1002", name: "Bob Okafor" }] });
    expect(resultText(r)).toContain("Bob Okafor");
  });

  it("hr: request_leave changes state, and a second identical request is refused as overlapping", async () => {
    const hr = clients["hr"]!;
    const before = (await hr.callTool({ name: "get_leave_balance", arguments: { employee_id: "E1010" } })) as CallToolResult;
    const vacationBefore = (before.structuredContent as { balances: { vacation: { remaining: number } } }).balances.vacation.remaining;
    const args = { employee_id: "E1010", leave_type: "vacation", start_date: "2026-12-07", end_date: "2026-12-09" };
    const booked = (await hr.callTool({ name: "request_leave", arguments: args })) as CallToolResult;
    expect(booked.isError).toBeFalsy();
    expect(booked.structuredContent).toMatchObject({
      request: { workingDays: 3, status: "approved" },
      balance: { balances: { vacation: { remaining: vacationBefore - 3 } } },
    });
    const again = (await hr.callTool({ name: "request_leave", arguments: args })) as CallToolResult;
    expect(again.isError).toBe(true);
    expect(resultText(again)).toMatch(/already has vacation leave booked from 2026-12-07 to 2026-12-09/);
  });

  it("business failures come back as isError results with a useful message", async () => {
    const unknown = (await clients["hr"]!.callTool({ name: "get_employee", arguments: { employee_id: "E9999" } })) as CallToolResult;
    expect(unknown.isError).toBe(true);
    expect(resultText(unknown)).toMatch(/Unknown employee id "E9999".*find_employee/);

    const tooMuch = (await clients["hr"]!.callTool({
      name: "request_leave",
      arguments: { employee_id: "E1003", leave_type: "personal", start_date: "2026-12-01", end_date: "2026-12-03" },
    })) as CallToolResult;
    expect(tooMuch.isError).toBe(true);
    expect(resultText(tooMuch)).toMatch(/Not enough personal leave: .* has \d day\(s\) left in 2026 and asked for 3/);

    const overBudget = (await clients["finance"]!.callTool({
      name: "submit_expense",
      arguments: { employee_id: "E1001", department: "Legal", category: "travel", amount: 4_000, description: "Conference trip" },
    })) as CallToolResult;
    expect(overBudget.isError).toBe(true);
    expect(resultText(overBudget)).toMatch(/Over budget: Legal has 1300 USD left of 60000 .* this expense is 4000/);

    const missingDoc = (await clients["knowledge"]!.callTool({ name: "get_document", arguments: { doc_id: "nope" } })) as CallToolResult;
    expect(missingDoc.isError).toBe(true);
    expect(resultText(missingDoc)).toMatch(/Unknown document id "nope"/);
  });

  it("invalid arguments are rejected with a message naming the field and what was expected", async () => {
    const wrongType = (await clients["hr"]!.callTool({ name: "get_leave_balance", arguments: { employee_id: 5 } })) as CallToolResult;
    expect(wrongType.isError).toBe(true);
    expect(resultText(wrongType)).toMatch(/employee_id/);
    expect(resultText(wrongType)).toMatch(/expected string/);

    const badFormat = (await clients["finance"]!.callTool({
      name: "submit_expense",
      arguments: { employee_id: "bob", department: "Sales", category: "snacks", amount: -3, description: "x" },
    })) as CallToolResult;
    expect(badFormat.isError).toBe(true);
    for (const field of ["employee_id", "category", "amount"]) expect(resultText(badFormat)).toContain(field);
    expect(resultText(badFormat)).toContain("expected an employee id like E1001");
    expect(resultText(badFormat)).toContain("amount must be more than 0");
  });

  it("an unknown tool is a clear invalid-params error naming the tools there are, not a crash", async () => {
    await expect(clients["hr"]!.callTool({ name: "fire_everyone", arguments: {} })).rejects.toMatchObject({
      code: -32602,
      message: expect.stringMatching(/^Tool fire_everyone not found: hr offers ask, find_employee, /),
    });
    // The session still works afterwards.
    const ok = (await clients["hr"]!.callTool({ name: "get_leave_policy", arguments: { leave_type: "sick" } })) as CallToolResult;
    expect(ok.isError).toBeFalsy();
  });

  it("knowledge: search ranks the relevant policy first and answers cite their sources", async () => {
    const r = (await clients["knowledge"]!.callTool({
      name: "search_documents",
      arguments: { query: "hotel price per night", limit: 3 },
    })) as CallToolResult;
    expect((r.structuredContent as { results: { docId: string }[] }).results[0]!.docId).toBe("travel-policy");
    const a = (await clients["knowledge"]!.callTool({
      name: "ask",
      arguments: { question: "How long is parental leave?" },
    })) as CallToolResult;
    expect(a.structuredContent).toMatchObject({ agent: "knowledge", sources: expect.arrayContaining(["docs/parental-leave.md"]) });
    expect(resultText(a)).toContain("16 weeks");
  });
});

describe("bad HTTP input to the MCP endpoint", () => {
  it("answers broken JSON with a JSON-RPC parse error and keeps serving", async () => {
    const res = await fetch(agents["hr"]!.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32700 }, id: null });
    expect((await fetch(new URL("/healthz", agents["hr"]!.url))).status).toBe(200);
  });

  it("rejects an unknown session id with 404 and a body too large with 413", async () => {
    const headers = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-session-id": "no-such-session",
    };
    const res = await fetch(agents["hr"]!.url, {
      method: "POST",
      headers,
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(res.status).toBe(404);
    const big = await fetch(agents["hr"]!.url, { method: "POST", headers, body: JSON.stringify({ pad: "x".repeat(5 * 1024 * 1024) }) });
    expect(big.status).toBe(413);
  });
});

it("refuses a foreign Host or Origin on the MCP endpoint (DNS-rebinding protection), naming what to allow", async () => {
  const init = JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "x", version: "1" } },
  });
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  const { request } = await import("node:http");
  const post = (extra: Record<string, string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(agents["hr"]!.url);
      const req = request(
        { host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { ...headers, ...extra } },
        (res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end(init);
    });
  const evilHost = await post({ host: "evil.example:80" });
  expect(evilHost.status).toBe(403);
  expect(evilHost.body).toContain('Host \\"evil.example:80\\" is not an allowed host (DNS-rebinding protection)');
  const evilOrigin = await post({ origin: "http://evil.example" });
  expect(evilOrigin.status).toBe(403);
  expect((await post({ host: `localhost:${new URL(agents["hr"]!.url).port}` })).status).toBe(200);
});
