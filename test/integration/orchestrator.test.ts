import { Client, StreamableHTTPClientTransport, type CallToolResult } from "@modelcontextprotocol/client";
import { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as V1Transport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { pino, type Logger } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { rootContext } from "../../src/context/meshContext.ts";
import { ConsulClient } from "../../src/consul/client.ts";
import { Orchestrator } from "../../orchestrator/agent/orchestrator.ts";
import { SESSION_PREFIX, SessionRefused, SessionStore } from "../../orchestrator/agent/session/sessionStore.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { randomLoopback, startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";
import { startScriptedLlm } from "../fixtures/scriptedLlm.ts";

const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
let consul: TestConsul;
let c: string[];
const agents: TestAgent[] = [];

beforeAll(async () => {
  consul = await startTestConsul();
  c = ["--consul", consul.address];
  agents.push(
    ...(await Promise.all([
      spawnAgent("hr", consul.address),
      spawnAgent("finance", consul.address),
      spawnAgent("knowledge", consul.address),
      spawnAgent(PROBE, consul.address),
    ])),
  );
  await eventually(
    async () =>
      (
        await Promise.all(
          ["hr", "finance", "knowledge", "probe"].map(async (n) => (await consul.client.healthService(n, { passing: true })).value.length),
        )
      ).every((n) => n === 1),
    {
      timeoutMs: 4_000,
      what: "all agents passing",
    },
  );
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.process.stop(2_000)));
  await consul.stop();
});

describe("mesh ask", () => {
  it("answers with the specialist's tool and names it; --explain shows each step's agent, tool, arguments, instance and time", async () => {
    const r = await mesh(["ask", "What's the take-home pay of Bob Okafor?", "--explain", ...c]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Bob Okafor \(E1002\), monthly: .*net 11813\.18 USD\./);
    expect(r.stdout).toMatch(/— finance\.compute_net_pay\n\nsession [0-9a-f-]{36} · trace [0-9a-f]{32}/);
    expect(r.stdout).toMatch(
      /plan \(built-in planner\):\n {2}s1 finance\.compute_net_pay \{"employee_id":"E1002"\} → ok @ finance-\S+ [\d.]+ ms/,
    );
  });

  it("plans across specialists: the take-home pay of Bob Okafor's manager (hr, then finance) and a newest direct report's vacation days", async () => {
    const pay = await mesh(["ask", "What is the take-home pay of Bob Okafor's manager?", "--json", ...c]);
    expect(pay.code, pay.stderr).toBe(0);
    const p = JSON.parse(pay.stdout) as {
      kind: string;
      answer: string;
      used: string[];
      explanation: { steps: { tool: string; instance: string; status: string }[] };
    };
    expect(p.answer).toMatch(/^Bob Okafor's manager: Alice Chen \(E1001\)\.\nAlice Chen \(E1001\), monthly: .*net 15667\.94 USD/);
    expect(p.used).toEqual(["hr.get_employee", "finance.compute_net_pay"]);
    expect(p.explanation.steps.map((s) => [s.tool, s.status, s.instance.split("-")[0]])).toEqual([
      ["get_employee", "ok", "hr"],
      ["compute_net_pay", "ok", "finance"],
    ]);
    const days = await mesh(["ask", "How many vacation days does Alice Chen's newest direct report have left?", ...c]);
    expect(days.stdout).toMatch(
      /^Alice Chen's newest direct report: Farid Haddad \(E1006\)\.\nFarid Haddad \(E1006\), 2026:\nvacation: 24 of 25 days left/,
    );
  });

  it("books only after confirmation: refused without --yes (exit 4, nothing booked), done with --yes or a 'yes' in the session", async () => {
    const booking = "Book 2 days of vacation for Bob Okafor starting 2026-12-21";
    const balance = async () =>
      ((await mesh(["call", "hr.get_leave_balance", '{"employee_id":"E1002"}', "--json", ...c])).stdout.match(/"remaining": (\d+)/) ??
        [])[1];
    const before = await balance();
    const refused = await mesh(["ask", booking, ...c]);
    expect(refused.code).toBe(4);
    expect(refused.stdout).toMatch(
      /This would change something: hr\.request_leave \{"employee_id":"E1002","leave_type":"vacation","start_date":"2026-12-21","end_date":"2026-12-22"\}/,
    );
    expect(refused.stdout).toMatch(/Nothing was changed/);
    expect(await balance()).toBe(before);
    const done = await mesh(["ask", booking, "--yes", ...c]);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/^Booked 2 working day\(s\) of vacation leave for Bob Okafor, 2026-12-21 to 2026-12-22/);
    expect(Number(await balance())).toBe(Number(before) - 2);

    // In a conversation: the plan waits in the session until the user says yes.
    const session = `book-${Date.now()}`;
    const ask = (m: string) =>
      mesh(["ask", m, "--session", session, "--json", ...c]).then((r) => JSON.parse(r.stdout) as { kind: string; answer?: string });
    expect((await ask("Put Rafael Costa down for a personal day on 2026-12-04")).kind).toBe("confirm");
    const yes = await ask("yes");
    expect(yes).toMatchObject({
      kind: "answer",
      answer: expect.stringMatching(/^Booked 1 working day\(s\) of personal leave for Rafael Costa, 2026-12-04 to 2026-12-04/),
    });
    // The pending plan is spent: another "yes" books nothing more.
    expect((await ask("yes")).kind).not.toBe("confirm");
  });

  it("a question never becomes a change, not even with --yes (issue 23): an amount in a budget question is not an expense", async () => {
    // Expenses booked against Legal so far (each has an id in the call's JSON).
    const expenses = async () =>
      ((await mesh(["call", "finance.list_expenses", '{"department":"Legal"}', "--json", ...c])).stdout.match(/"expenseId"/g) ?? []).length;
    const before = await expenses();
    const r = await mesh(["ask", "Does the Legal budget cover a 1,500 USD course?", "--yes", "--json", ...c]);
    expect(r.code, r.stderr).toBe(0);
    const a = JSON.parse(r.stdout) as { kind: string; used: string[]; answer: string };
    expect(a).toMatchObject({ kind: "answer", used: ["finance.get_budget"] });
    expect(a.answer).toContain("1300 remaining");
    expect(await expenses()).toBe(before);
  });

  it("follows up on who the conversation is about", async () => {
    const session = `follow-${Date.now()}`;
    const first = await mesh(["ask", "Who is Rosa Moreno's manager?", "--session", session, ...c]);
    expect(first.stdout).toMatch(/^Rosa Moreno's manager: Ines Silva \(E1009\)\./);
    const second = await mesh(["ask", "and her manager?", "--session", session, ...c]);
    expect(second.stdout).toMatch(/^Ines Silva's manager: Bob Okafor \(E1002\)\./);
  });

  it("reports ambiguity instead of guessing, and says how to choose", async () => {
    // Which policy, from which side: a person would ask back too.
    const r = await mesh(["ask", "What's the policy?", "--json", ...c]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { kind: string; message: string; candidates: { agent: string }[] };
    expect(out.kind).toBe("ambiguous");
    expect(out.message).toMatch(
      /This could be for (hr|knowledge) \(\d+%\) or (hr|knowledge) \(\d+%\)\. Say which agent should answer \(mesh ask --agent <name>\)\./,
    );
  });

  it("a session started by one orchestrator process is continued by another, with the history visible to the agent", async () => {
    const session = `s-${Date.now()}`;
    const first = await mesh(["ask", "My name is Dana and I work in Lisbon", "--agent", "probe", "--session", session, ...c]);
    expect(first.code, first.stderr).toBe(0);
    const second = await mesh(["ask", "Where do I work?", "--agent", "probe", "--session", session, "--json", ...c]);
    const out = JSON.parse(second.stdout) as { answer: string; sessionId: string };
    expect(out.sessionId).toBe(session);
    expect(out.answer).toMatch(
      new RegExp(
        `^I see 2 earlier turn\\(s\\) in session ${session}: user: My name is Dana and I work in Lisbon \\| agent: I see 0 earlier turn`,
      ),
    );
  });

  it("rejects bad input with usage errors", async () => {
    expect((await mesh(["ask", "hi", "--session", "../../etc", ...c])).stderr).toContain('--session "../../etc" is invalid');
    expect((await mesh(["ask", "  ", ...c])).code).toBe(2);
    const unknown = await mesh(["ask", "hi", "--agent", "payroll", ...c]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Unknown agent "payroll"');
  });
});

describe("sessions in Consul KV", () => {
  it("keep only the last turns and expire when idle", async () => {
    const store = new SessionStore(consul.client, { idleTtlMs: 300 });
    for (let i = 0; i < 15; i++) {
      await store.record("bounded", "test", [
        { role: "user", text: `q${i}`, at: new Date().toISOString() },
        { role: "agent", text: `a${i}`, at: new Date().toISOString() },
      ]);
    }
    const s = await store.load("bounded", "test");
    expect(s.history).toHaveLength(20);
    expect(s.history[0]!.text).toBe("q5");
    await new Promise((r) => setTimeout(r, 400)); // the scenario itself: idle past its 300 ms TTL
    expect((await store.load("bounded", "test")).history).toEqual([]);
    expect(await store.sweep()).toBeGreaterThanOrEqual(1);
    expect(await consul.client.kvGet(`${SESSION_PREFIX}bounded`)).toBeUndefined();
  });

  it("concurrent writers to one session lose no turn (CAS)", async () => {
    const stores = [new SessionStore(consul.client), new SessionStore(new ConsulClient({ address: consul.address }))];
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        stores[i % 2]!.record("busy", "test", [{ role: "user", text: `m${i}`, at: new Date().toISOString() }]),
      ),
    );
    expect((await stores[0]!.load("busy", "test")).history.map((t) => t.text).sort()).toEqual([
      "m0",
      "m1",
      "m2",
      "m3",
      "m4",
      "m5",
      "m6",
      "m7",
    ]);
  });

  it("belong to whoever started them: another owner can neither read nor write one; one recorded before owners is refused to all until it expires", async () => {
    const store = new SessionStore(consul.client);
    const turn = (text: string) => ({ role: "user" as const, text, at: new Date().toISOString() });
    const id = `owned-${Date.now()}`;
    await store.record(id, "token:alice", [turn("my salary question")], { pending: "Book 1 day for Alice" });
    expect((await store.load(id, "token:alice")).history.map((t) => t.text)).toEqual(["my salary question"]);
    const refused = /^Session "[\w-]+" is not yours: this session belongs to another caller; start a new one \(omit session_id\)\.$/;
    await expect(store.load(id, "token:bob")).rejects.toThrow(refused);
    await expect(store.load(id, "token:bob")).rejects.toBeInstanceOf(SessionRefused);
    await expect(store.record(id, "token:bob", [turn("yes")])).rejects.toThrow(refused);
    // The owner's session is as it was: nothing of the refused caller was written.
    const kept = await store.load(id, "token:alice");
    expect(kept).toMatchObject({ owner: "token:alice", facts: { pending: "Book 1 day for Alice" } });
    expect(kept.history.map((t) => t.text)).toEqual(["my salary question"]);

    // Recorded before sessions had owners: nobody can show it is theirs, so nobody continues it...
    const legacy = `legacy-${Date.now()}`;
    const now = new Date().toISOString();
    await consul.client.kvSet(
      `${SESSION_PREFIX}${legacy}`,
      JSON.stringify({ id: legacy, history: [turn("old")], facts: { pending: "Book leave" }, createdAt: now, updatedAt: now }),
    );
    for (const who of ["token:alice", "token:bob", "anonymous"]) {
      await expect(store.load(legacy, who)).rejects.toThrow(
        /started before sessions recorded who started them.*start a new one \(omit session_id\)/,
      );
      await expect(store.record(legacy, who, [turn("yes")])).rejects.toBeInstanceOf(SessionRefused);
    }
    // ...until it expires like any idle session (here: after 1 ms): then the id starts afresh, for whoever asks first.
    const impatient = new SessionStore(consul.client, { idleTtlMs: 1 });
    const { value: fresh } = await eventually(() => impatient.load(legacy, "token:bob"), {
      timeoutMs: 5_000,
      what: "the legacy session to expire",
    });
    expect(fresh).toMatchObject({ owner: "token:bob", history: [], facts: {} });
    expect((await impatient.record(legacy, "token:bob", [turn("new")])).owner).toBe("token:bob");
    expect((await store.load(legacy, "token:bob")).history.map((t) => t.text)).toEqual(["new"]);
    await expect(store.load(legacy, "token:alice")).rejects.toThrow(refused);
  });

  it("with Consul KV unreachable, the orchestrator still answers from its last-known catalog, without history", async () => {
    const client = new MeshClient({ consul: consul.client, callerName: "orchestrator", catalogMode: "all" });
    await client.start();
    // Sessions on a Consul that is not there; discovery on the live one.
    const orchestrator = new Orchestrator({
      mesh: client,
      sessions: new SessionStore(new ConsulClient({ address: `http://${randomLoopback()}:8500` })),
    });
    const r = await orchestrator.ask("How many vacation days does Bob Okafor have left?");
    await client.close();
    expect(r).toMatchObject({ kind: "answer", agent: "hr", sessionSaved: false });
  });
});

describe("the LLM planner (an OpenAI-compatible endpoint, scripted)", () => {
  const Q = "What is the take-home pay of Bob Okafor's manager?";
  let client: MeshClient;
  beforeAll(async () => {
    client = new MeshClient({ consul: consul.client, callerName: "orchestrator", catalogMode: "all" });
    await client.start();
    await eventually(
      async () => (await client.catalog.instances("finance")).length === 1 && (await client.catalog.instances("hr")).length === 1,
      {
        timeoutMs: 5_000,
        what: "hr and finance in the catalog",
      },
    );
  });
  afterAll(() => client.close());

  /** A logger whose lines the test reads. */
  function capture(): { logger: Logger; lines: Record<string, unknown>[] } {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString("utf8")) as Record<string, unknown>);
        done();
      },
    });
    return { logger: pino({ level: "info" }, stream), lines };
  }

  it("offers the live catalog's tools as functions, runs the model's calls through the mesh, and cites the agents that answered", async () => {
    const llm = await startScriptedLlm((req, i) => {
      const names = (req.tools ?? []).map((t) => t.function.name);
      const last = req.messages.at(-1)!;
      if (i === 0) {
        for (const n of ["hr__get_employee", "finance__compute_net_pay", "knowledge__search_documents", "hr__ask"]) {
          if (!names.includes(n)) throw new Error(`function ${n} not offered: ${names.join(", ")}`);
        }
        if (names.some((n) => n.startsWith("orchestrator__"))) throw new Error("the orchestrator offered itself");
        const getEmployee = req.tools!.find((t) => t.function.name === "hr__get_employee")!.function;
        if (!JSON.stringify(getEmployee.parameters).includes('"employee_id"')) throw new Error("get_employee's schema is missing");
        if (last.role !== "user" || last.content !== Q) throw new Error(`last message: ${JSON.stringify(last)}`);
        return { calls: [{ name: "hr__get_employee", args: { employee_id: "E1002" } }] };
      }
      if (i === 1) {
        if (last.role !== "tool" || !String(last.content).includes("Alice Chen")) throw new Error(`tool result: ${JSON.stringify(last)}`);
        return { calls: [{ name: "finance__compute_net_pay", args: { employee_id: "E1001" } }] };
      }
      if (!String(last.content).includes("15667.94")) throw new Error(`tool result: ${JSON.stringify(last)}`);
      return { content: "Bob Okafor's manager is Alice Chen; she takes home 15,667.94 USD a month." };
    });
    try {
      const orchestrator = new Orchestrator({
        mesh: client,
        sessions: new SessionStore(consul.client),
        llm: { baseURL: llm.baseURL, apiKey: "test", model: "scripted" },
      });
      const r = await orchestrator.ask(Q);
      expect(r).toMatchObject({
        kind: "answer",
        agent: "finance",
        used: ["hr.get_employee", "finance.compute_net_pay"],
        explanation: { planner: "llm" },
      });
      if (r.kind !== "answer") return;
      expect(r.answer).toBe(
        "Bob Okafor's manager is Alice Chen; she takes home 15,667.94 USD a month.\n\n— hr.get_employee, finance.compute_net_pay",
      );
      expect(r.explanation!.steps.map((s) => [s.agent, s.tool, s.status, s.instance!.split("-")[0]])).toEqual([
        ["hr", "get_employee", "ok", "hr"],
        ["finance", "compute_net_pay", "ok", "finance"],
      ]);
      expect(llm.requests.map((q) => q.model)).toEqual(["scripted", "scripted", "scripted"]);
    } finally {
      await llm.close();
    }
  });

  it("a call that changes something waits for the user's yes, then runs exactly as shown, without asking the model again", async () => {
    const llm = await startScriptedLlm(() => ({
      calls: [
        {
          name: "hr__request_leave",
          args: { employee_id: "E1030", leave_type: "vacation", start_date: "2026-12-14", end_date: "2026-12-15" },
        },
      ],
    }));
    try {
      const orchestrator = new Orchestrator({
        mesh: client,
        sessions: new SessionStore(consul.client),
        llm: { baseURL: llm.baseURL, apiKey: "test", model: "scripted" },
      });
      const session = `llm-book-${Date.now()}`;
      const balance = async () =>
        (
          (await client.callTool("hr", "get_leave_balance", { employee_id: "E1030" })).structuredContent as {
            balances: { vacation: { remaining: number } };
          }
        ).balances.vacation.remaining;
      const before = await balance();
      const asked = await orchestrator.ask("Book me Dec 14-15 off, I'm Dmitri Sokolov", { sessionId: session });
      expect(asked).toMatchObject({ kind: "confirm", effects: [{ agent: "hr", tool: "request_leave" }] });
      expect(await balance()).toBe(before);
      const yes = await orchestrator.ask("yes", { sessionId: session });
      expect(yes).toMatchObject({ kind: "answer", used: ["hr.request_leave"] });
      if (yes.kind === "answer")
        expect(yes.answer).toMatch(/^Booked 2 working day\(s\) of vacation leave for Dmitri Sokolov, 2026-12-14 to 2026-12-15/);
      expect(await balance()).toBe(before - 2);
      expect(llm.requests).toHaveLength(1);
    } finally {
      await llm.close();
    }
  });

  it("for a question, the model is not offered the tools that change state, and confirm: true does not let one run (issue 23)", async () => {
    const llm = await startScriptedLlm((req, i) => {
      const names = (req.tools ?? []).map((t) => t.function.name);
      if (i === 0) {
        for (const n of ["finance__submit_expense", "hr__request_leave", "finance__run_payroll"])
          if (names.includes(n)) throw new Error(`${n} offered for a question`);
        if (!names.includes("finance__get_budget")) throw new Error(`get_budget not offered: ${names.join(", ")}`);
        // A model that tries anyway gets "no such tool".
        return {
          calls: [
            {
              name: "finance__submit_expense",
              args: { employee_id: "E1008", department: "Legal", category: "training", amount: 1500, description: "course" },
            },
          ],
        };
      }
      if (i === 1) {
        if (!String(req.messages.at(-1)!.content).includes('there is no tool "finance__submit_expense"'))
          throw new Error(`tool result: ${JSON.stringify(req.messages.at(-1))}`);
        return { calls: [{ name: "finance__get_budget", args: { department: "Legal" } }] };
      }
      return { content: "No: Legal has 1300 USD left, less than the 1,500 USD the course costs." };
    });
    try {
      const orchestrator = new Orchestrator({
        mesh: client,
        sessions: new SessionStore(consul.client),
        llm: { baseURL: llm.baseURL, apiKey: "test", model: "scripted" },
      });
      const r = await orchestrator.ask("Does the Legal budget cover a 1,500 USD course?", { confirm: true });
      expect(r).toMatchObject({ kind: "answer", used: ["finance.get_budget"] });
      if (r.kind === "answer") expect(r.explanation!.steps.map((s) => s.tool)).toEqual(["get_budget"]);
    } finally {
      await llm.close();
    }
  });

  it("mesh ask --llm-model/--llm-base-url plans with the model (--explain says so); a bad URL is a usage error", async () => {
    const llm = await startScriptedLlm((_req, i) =>
      i === 0
        ? { calls: [{ name: "hr__get_employee", args: { employee_id: "E1048" } }] }
        : { content: "Wanda Jensen reports to Noah Schmidt." },
    );
    try {
      const r = await mesh([
        "ask",
        "Who is Wanda Jensen's manager?",
        "--llm-model",
        "scripted",
        "--llm-base-url",
        llm.baseURL,
        "--explain",
        ...c,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Wanda Jensen reports to Noah Schmidt\.\n\n— hr\.get_employee\n/);
      expect(r.stdout).toMatch(/plan \(llm planner\):\n {2}l1\.1 hr\.get_employee \{"employee_id":"E1048"\} → ok @ hr-/);
    } finally {
      await llm.close();
    }
    const bad = await mesh(["ask", "Who is Wanda Jensen's manager?", "--llm-model", "m", "--llm-base-url", "ftp://x", ...c]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/The LLM base URL "ftp:\/\/x" is not an http\(s\) URL/);
  });

  it.each([
    ["answers 500", async () => startScriptedLlm(() => ({ status: 500 }))],
    [
      "is not listening",
      async () => {
        const gone = await startScriptedLlm(() => ({ content: "" }));
        await gone.close();
        return gone;
      },
    ],
  ])("when the endpoint %s, the built-in planner answers, with a log line saying so", async (_label, start) => {
    const llm = await start();
    const { logger, lines } = capture();
    try {
      const orchestrator = new Orchestrator({
        mesh: client,
        sessions: new SessionStore(consul.client),
        logger,
        llm: { baseURL: llm.baseURL, apiKey: "test", model: "scripted", timeoutMs: 5_000 },
      });
      const r = await orchestrator.ask(Q);
      expect(r).toMatchObject({
        kind: "answer",
        used: ["hr.get_employee", "finance.compute_net_pay"],
        explanation: { planner: "built-in" },
      });
      expect(lines.find((l) => l["msg"] === "the LLM planner failed; answering with the built-in planner")).toMatchObject({
        level: 40,
        model: "scripted",
      });
    } finally {
      await llm.close().catch(() => {});
    }
  });
});

describe("the orchestrator as a running agent", () => {
  it("over MCP, a client that can answer elicitations is asked to confirm in the same call (2026-07-28 input-required, 2025-11-25 elicitation/create)", async () => {
    const orchestrator = await spawnAgent("orchestrator", consul.address);
    agents.push(orchestrator);
    await eventually(async () => (await consul.client.healthService("orchestrator", { passing: true })).value.length === 1, {
      timeoutMs: 5_000,
      what: "orchestrator passing",
    });
    const asked: string[] = [];
    const modern = (confirm: boolean) => {
      const c = new Client(
        { name: "eliciting", version: "1" },
        { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: { pin: "2026-07-28" } } },
      );
      c.setRequestHandler("elicitation/create", (req) => {
        asked.push(String((req.params as { message?: string }).message));
        return confirm ? { action: "accept", content: { confirm: true } } : { action: "decline" };
      });
      return c;
    };
    const legacy = new V1Client({ name: "eliciting-v1", version: "1" }, { capabilities: { elicitation: {} } });
    legacy.setRequestHandler(ElicitRequestSchema, (req) => {
      asked.push(req.params.message);
      return { action: "accept", content: { confirm: true } };
    });
    const yes = modern(true);
    const no = modern(false);
    try {
      await yes.connect(new StreamableHTTPClientTransport(new URL(orchestrator.url)));
      await no.connect(new StreamableHTTPClientTransport(new URL(orchestrator.url)));
      await legacy.connect(new V1Transport(new URL(orchestrator.url)));
      const declined = (await no.callTool({
        name: "ask",
        arguments: { question: "Book 1 day of personal leave for Sanjay Gupta starting 2026-12-10" },
      })) as CallToolResult;
      expect(declined.structuredContent).toMatchObject({ kind: "declined", message: "Not confirmed: nothing was changed." });
      const booked = (await yes.callTool({
        name: "ask",
        arguments: { question: "Book 1 day of personal leave for Sanjay Gupta starting 2026-12-10" },
      })) as CallToolResult;
      expect(booked.structuredContent).toMatchObject({ kind: "answer", used: ["hr.request_leave"] });
      const v1 = (await legacy.callTool({
        name: "ask",
        arguments: { question: "Book 1 day of vacation for Sanjay Gupta starting 2026-12-11" },
      })) as CallToolResult;
      expect(v1.structuredContent).toMatchObject({ kind: "answer", used: ["hr.request_leave"] });
      expect((v1.structuredContent as { answer: string }).answer).toMatch(
        /^Booked 1 working day\(s\) of vacation leave for Sanjay Gupta, 2026-12-11/,
      );
      expect((booked.structuredContent as { answer: string }).answer).toMatch(
        /^Booked 1 working day\(s\) of personal leave for Sanjay Gupta, 2026-12-10/,
      );
      // Each call was confirmed in its own round trip; the declined one booked nothing (the personal day was still free for the next).
      expect(asked).toHaveLength(3);
      for (const m of asked) expect(m).toMatch(/^This would change something: hr\.request_leave \{"employee_id":"E1019",.*Go ahead\?$/);
    } finally {
      await Promise.all([yes.close(), no.close(), legacy.close()]);
      await orchestrator.process.stop(2_000);
      agents.splice(agents.indexOf(orchestrator), 1);
    }
  });

  it("over MCP, a plan that books something comes back as kind 'confirm' with its effects, and runs with confirm: true", async () => {
    const orchestrator = await spawnAgent("orchestrator", consul.address);
    agents.push(orchestrator);
    await eventually(async () => (await consul.client.healthService("orchestrator", { passing: true })).value.length === 1, {
      timeoutMs: 5_000,
      what: "orchestrator passing",
    });
    const client = await connectHttp(orchestrator.url);
    try {
      const question = "Book 1 day of sick leave for Wei Zhang starting 2026-12-07";
      const asked = (await client.callTool({ name: "ask", arguments: { question } })) as CallToolResult;
      expect(asked.structuredContent).toMatchObject({
        kind: "confirm",
        effects: [
          {
            agent: "hr",
            tool: "request_leave",
            arguments: '{"employee_id":"E1023","leave_type":"sick","start_date":"2026-12-07","end_date":"2026-12-07"}',
          },
        ],
      });
      const done = (await client.callTool({ name: "ask", arguments: { question, confirm: true } })) as CallToolResult;
      expect(done.structuredContent).toMatchObject({ kind: "answer", used: ["hr.request_leave"] });
      expect((done.structuredContent as { answer: string }).answer).toMatch(/^Booked 1 working day\(s\) of sick leave for Wei Zhang/);
      // confirm: true on a question changes nothing (issue 23): "open" in "open tickets" is not an action, nor is an amount an expense.
      const asked2 = (await client.callTool({
        name: "ask",
        arguments: { question: "Would a 1,500 USD course fit in what is left of the Legal budget?", confirm: true },
      })) as CallToolResult;
      expect(asked2.structuredContent).toMatchObject({ kind: "answer", used: ["finance.get_budget"] });
    } finally {
      await client.close();
      // The next tests start their own orchestrator and expect one instance.
      await orchestrator.process.stop(2_000);
      agents.splice(agents.indexOf(orchestrator), 1);
    }
  });

  it("called by another caller, it continues that caller's trace, hop count and chain (a loop through it meets the hop limit)", async () => {
    const orchestrator = await spawnAgent("orchestrator", consul.address);
    agents.push(orchestrator);
    const client = new MeshClient({ consul: consul.client, callerName: "test" });
    try {
      await eventually(async () => (await client.catalog.instances("orchestrator")).length === 1, {
        timeoutMs: 5_000,
        what: "orchestrator",
      });
      const context = { ...rootContext({ caller: "gateway", timeoutMs: 10_000 }), hop: 2, callerChain: ["mesh-cli", "gateway"] };
      const r = await client.callTool("orchestrator", "ask", { question: "What did I say before?", agent: "probe" }, { context });
      expect(r.structuredContent).toMatchObject({ kind: "answer", agent: "probe", trace_id: context.traceId });
      const probe = agents.find((a) => a.instanceId.startsWith("probe-"))!;
      const seen = await eventually(
        () => probe.logs().find((l) => l["msg"] === "tool call" && l["tool"] === "ask" && l["traceId"] === context.traceId),
        { timeoutMs: 2_000, what: "the probe's log line for the call" },
      );
      // hop 2 at the orchestrator, 3 at the probe; the orchestrator the last caller.
      expect(seen.value).toMatchObject({ hop: 3, caller: "orchestrator" });

      const atLimit = { ...rootContext({ caller: "gateway", hopLimit: 3 }), hop: 3, callerChain: ["a", "b", "c"] };
      await expect(
        client.callTool("orchestrator", "ask", { question: "anything", agent: "probe" }, { context: atLimit }),
      ).rejects.toMatchObject({ code: "HOP_LIMIT" });
    } finally {
      await client.close();
    }
  });

  it("answers over MCP like any agent, and keeps answering from its last-known catalog when Consul stops", async () => {
    const orchestrator = await spawnAgent("orchestrator", consul.address);
    agents.push(orchestrator);
    const client = await connectHttp(orchestrator.url);
    const ask = async (question: string) =>
      (await client.callTool({ name: "ask", arguments: { question, session_id: "running-1" } })) as CallToolResult;
    const first = await eventually(
      async () => {
        const r = await ask("How many vacation days does Bob Okafor have left?");
        return (r.structuredContent as { kind?: string } | undefined)?.kind === "answer" ? r : undefined;
      },
      { timeoutMs: 5_000, what: "an answer from the orchestrator" },
    );
    expect(first.value.structuredContent).toMatchObject({ kind: "answer", agent: "hr", session_saved: true, session_id: "running-1" });

    await consul.agent.stop();
    // Discovery from the last-known catalog; the answer itself needs no KV (the org chart).
    const during = await ask("List the direct reports of Alice Chen");
    expect(during.structuredContent).toMatchObject({ kind: "answer", agent: "hr", session_saved: false });
    expect((during.structuredContent as { answer: string }).answer).toMatch(
      /^Alice Chen's direct reports \(7\): Bob Okafor \(E1002\), Carmen Alvarez \(E1003\)/,
    );
    await client.close();
  });
});
