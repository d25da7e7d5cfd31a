// Conversations belong to whoever started them: two clients of one gateway (two bearer tokens),
// over MCP and over A2A, with real agent processes, a real gateway and Consul.
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Role, TaskState, type Task } from "@a2a-js/sdk";
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory, type Client as A2aClient } from "@a2a-js/sdk/client";
import type { CallToolResult, Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultText } from "../../src/protocol/results.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const TOKEN_A = "client-a-token-0123456789";
const TOKEN_B = "client-b-token-9876543210";
/** Where hr keeps the leave it booked (one record per employee). */
const LEAVE = "toolmesh/state/hr/leave/";

let consul: TestConsul;
const agents: TestAgent[] = [];
let gateway: TestAgent;

beforeAll(async () => {
  consul = await startTestConsul();
  agents.push(...(await Promise.all(["hr", "finance", "orchestrator"].map((a) => spawnAgent(a, consul.address)))));
  await eventually(
    async () =>
      (
        await Promise.all(
          ["hr", "finance", "orchestrator"].map(async (n) => (await consul.client.healthService(n, { passing: true })).value),
        )
      ).every((v) => v.length === 1),
    { timeoutMs: 5_000, what: "hr, finance and the orchestrator passing" },
  );
  gateway = await spawnAgent(GATEWAY, consul.address, {
    readyMessage: "gateway ready",
    env: { MESH_GATEWAY_TOKEN: `${TOKEN_A},${TOKEN_B}` },
  });
}, 60_000);
afterAll(async () => {
  await gateway?.process.stop(2_000);
  await Promise.all(agents.map((a) => a.process.stop(2_000)));
  await consul?.stop();
});

/** Every leave request hr has booked for one employee (none: an empty list). */
async function booked(employeeId: string): Promise<{ startDate: string; leaveType: string }[]> {
  const entry = await consul.client.kvGet(`${LEAVE}${employeeId}`);
  return entry ? (JSON.parse(entry.value) as { requests: { startDate: string; leaveType: string }[] }).requests : [];
}

const REFUSED = /this session belongs to another caller; start a new one \(omit session_id\)/;

describe("orchestrator sessions through the gateway, two clients", () => {
  let a: Client;
  let b: Client;
  beforeAll(async () => {
    const url = new URL("/agents/orchestrator/mcp", gateway.url).toString();
    await eventually(async () => (await fetch(url, { method: "POST" })).status !== 404, {
      timeoutMs: 10_000,
      what: "the gateway's orchestrator view",
    });
    a = await connectHttp(url, { token: TOKEN_A, name: "client-a" });
    b = await connectHttp(url, { token: TOKEN_B, name: "client-b" });
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
  });
  const ask = (client: Client, question: string, session_id?: string) =>
    client.callTool({ name: "ask", arguments: { question, ...(session_id ? { session_id } : {}) } }) as Promise<CallToolResult>;

  it("B cannot confirm A's pending booking (nothing booked, nothing of it shown); A still can", async () => {
    const session = `own-book-${randomUUID()}`;
    const asked = await ask(a, "Book 1 day of vacation for Keiko Sato starting 2026-12-14", session);
    expect(asked.structuredContent).toMatchObject({
      kind: "confirm",
      session_id: session,
      effects: [{ agent: "hr", tool: "request_leave" }],
    });
    const employee = /"employee_id":"(E\d+)"/.exec(resultText(asked))![1]!;

    const stolen = await ask(b, "yes", session);
    expect(stolen.isError, resultText(stolen)).toBe(true);
    expect(resultText(stolen)).toMatch(REFUSED);
    expect(resultText(stolen)).not.toMatch(/Keiko|request_leave|2026-12-14|vacation/);
    // Nor through the mesh context's session instead of session_id.
    const viaContext = (await b.callTool({
      name: "ask",
      arguments: { question: "yes" },
      _meta: { "io.toolmesh/session": session },
    })) as CallToolResult;
    expect(viaContext.isError, resultText(viaContext)).toBe(true);
    expect(resultText(viaContext)).toMatch(REFUSED);
    expect(await booked(employee)).toEqual([]);

    const yes = await ask(a, "yes", session);
    expect(yes.isError, resultText(yes)).toBeFalsy();
    expect(resultText(yes)).toMatch(/^Booked 1 working day\(s\) of vacation leave for Keiko Sato, 2026-12-14/);
    expect(await booked(employee)).toEqual([expect.objectContaining({ startDate: "2026-12-14", leaveType: "vacation" })]);
  }, 60_000);

  it("B cannot continue A's conversation (its follow-up is not answered from A's focus); A continues it", async () => {
    const session = `own-follow-${randomUUID()}`;
    expect(resultText(await ask(a, "Who is Rosa Moreno's manager?", session))).toMatch(/^Rosa Moreno's manager: Ines Silva \(E1009\)\./);
    const other = await ask(b, "and her manager?", session);
    expect(other.isError, resultText(other)).toBe(true);
    expect(resultText(other)).toMatch(REFUSED);
    expect(resultText(other)).not.toMatch(/Ines|Rosa|Bob Okafor/);
    // A's conversation is untouched by B's attempt: the follow-up is about Ines Silva.
    expect(resultText(await ask(a, "and her manager?", session))).toMatch(/^Ines Silva's manager: Bob Okafor \(E1002\)\./);
    // B's own conversations work as before.
    const own = await ask(b, "Who is Rosa Moreno's manager?");
    expect(resultText(own)).toMatch(/^Rosa Moreno's manager: Ines Silva/);
    const ownSession = (own.structuredContent as { session_id: string }).session_id;
    expect(resultText(await ask(b, "and her manager?", ownSession))).toMatch(/^Ines Silva's manager: Bob Okafor/);
  }, 60_000);
});

describe("A2A contexts at the gateway, two clients", () => {
  const card = () => new URL("/a2a/orchestrator/.well-known/agent-card.json", gateway.url).toString();
  const endpoint = () => new URL("/a2a/orchestrator", gateway.url).toString();

  /** The JS A2A SDK's client, sending this bearer token. */
  async function a2aClient(token: string): Promise<A2aClient> {
    const fetchImpl: typeof fetch = (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set("authorization", `Bearer ${token}`);
      return fetch(input, { ...init, headers });
    };
    const options = ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl })],
    });
    return new ClientFactory(options).createFromUrl(card(), "");
  }
  const say = (client: A2aClient, text: string, contextId: string, taskId = "") =>
    client.sendMessage({
      tenant: "",
      message: {
        role: Role.ROLE_USER,
        messageId: randomUUID(),
        parts: [{ content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "text/plain" }],
        taskId,
        contextId,
        extensions: [],
        metadata: {},
        referenceTaskIds: [],
      },
      configuration: undefined,
      metadata: undefined,
    } as never) as Promise<Task>;
  const statusText = (t: Task) => {
    const c = t.status?.message?.parts[0]?.content;
    return c?.$case === "text" ? c.value : "";
  };

  it("contexts x/ctx/1 and x_ctx_1 are separate sessions, and B's context never lands in A's: only A's 'yes' in A's context books", async () => {
    await eventually(async () => (await fetch(card())).ok, { timeoutMs: 10_000, what: "the orchestrator's agent card" });
    const a = await a2aClient(TOKEN_A);
    const b = await a2aClient(TOKEN_B);
    const asked = await say(a, "Book 1 day of personal leave for Tomas Horvat starting 2026-12-15", "x/ctx/1");
    expect(asked.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    expect(statusText(asked)).toMatch(/^This would change something: hr\.request_leave/);
    const employee = /"employee_id":"(E\d+)"/.exec(statusText(asked))![1]!;

    // The same client in a context whose id differs only in its punctuation: another conversation.
    const lookalike = await say(a, "yes", "x_ctx_1");
    // Another client in the very same context id: its own conversation, not A's.
    const other = await say(b, "yes", "x/ctx/1");
    for (const t of [lookalike, other]) expect(JSON.stringify(t)).not.toMatch(/Tomas|Booked|request_leave/);
    // Nor in A's task itself: B does not see it.
    await expect(say(b, "yes", "x/ctx/1", asked.id)).rejects.toThrow(/not found/i);
    expect(await booked(employee)).toEqual([]);

    const done = await say(a, "yes", "x/ctx/1", asked.id);
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(statusText(done)).toMatch(/^Booked 1 working day\(s\) of personal leave for Tomas Horvat, 2026-12-15/);
    expect(await booked(employee)).toEqual([expect.objectContaining({ startDate: "2026-12-15", leaveType: "personal" })]);
  }, 60_000);

  it("metadata nested 3,000 deep (or a nested id) is refused with a JSON-RPC error, never a stack overflow; the gateway keeps serving", async () => {
    const deep = (n: number) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;
    const post = async (body: string) => {
      const res = await fetch(endpoint(), {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN_A}`, "a2a-version": "1.0" },
        body,
      });
      return { status: res.status, json: (await res.json()) as { id?: unknown; error?: { code: number; message: string } } };
    };
    const message = (metadata: string) =>
      `{"role":"ROLE_USER","messageId":"${randomUUID()}","parts":[{"text":"Who is Rosa Moreno's manager?"}],"metadata":${metadata}}`;
    // Past the body limit every HTTP endpoint has (64 levels), the request is refused from its text before it is parsed.
    for (const body of [
      `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":${message(deep(3_000))}}}`,
      `{"jsonrpc":"2.0","id":7,"method":"SendStreamingMessage","params":{"message":${message(deep(3_000))}}}`,
      `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":${message("{}")},"metadata":${deep(3_000)}}}`,
      `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":${message(deep(100_000))}}}`,
    ]) {
      const r = await post(body);
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject({ error: { code: -32600, message: expect.stringMatching(/nests .* deeper than 64 levels/) } });
      expect(r.json.error!.message).not.toMatch(/call stack/i);
    }
    // Within it but past A2A's own (40: the envelope and 32 levels of data), the A2A endpoint refuses it with the request's id.
    for (const body of [
      `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":${message(deep(50))}}}`,
      `{"jsonrpc":"2.0","id":7,"method":"SendStreamingMessage","params":{"message":${message("{}")},"metadata":${deep(50)}}}`,
    ]) {
      const r = await post(body);
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ id: 7, error: { code: -32602, message: expect.stringMatching(/nests deeper than 40 levels/) } });
    }
    // A nested id is no id: refused as an invalid request, answered with id null.
    const nestedId = await post(`{"jsonrpc":"2.0","id":${deep(50)},"method":"SendMessage","params":{}}`);
    expect(nestedId.status).toBe(200);
    expect(nestedId.json).toMatchObject({ id: null, error: { code: expect.any(Number), message: expect.any(String) } });
    expect(nestedId.json.error!.message).not.toMatch(/call stack/i);
    // Shallow metadata is fine, and the gateway answers as before.
    const fine = await post(`{"jsonrpc":"2.0","id":8,"method":"SendMessage","params":{"message":${message(deep(5))}}}`);
    expect(fine.json.error, JSON.stringify(fine.json)).toBeUndefined();
    expect(JSON.stringify(fine.json)).toMatch(/Rosa Moreno's manager: Ines Silva/);
  }, 60_000);
});
