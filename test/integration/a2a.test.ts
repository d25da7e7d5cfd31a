// The gateway as an A2A 1.0 server (JSON-RPC + SSE), driven by software nobody here wrote: the
// official Python A2A SDK (a2a-sdk from PyPI, its virtualenv made once by scripts/pyenv.sh).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer } from "node:net";
import { Role, TaskState, type Task } from "@a2a-js/sdk";
import { ClientFactory } from "@a2a-js/sdk/client";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";
import { mesh } from "../helpers/cli.ts";
import { a2aCardProblems, type A2aAgentCardJson } from "../helpers/a2aCard.ts";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../", import.meta.url));
const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));

let consul: TestConsul;
let python = "";
const agents: TestAgent[] = [];
let gateway: TestAgent;

beforeAll(async () => {
  python = (await run("bash", ["scripts/pyenv.sh", "test/python/requirements-a2a.txt"], { cwd: root, timeout: 300_000 })).stdout.trim();
  consul = await startTestConsul();
  agents.push(...(await Promise.all(["hr", "finance", "orchestrator"].map((a) => spawnAgent(a, consul.address)))));
  await eventually(async () => (await consul.client.healthService("orchestrator", { passing: true })).value.length === 1, {
    timeoutMs: 5_000,
    what: "orchestrator passing",
  });
  gateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready" });
}, 600_000);
afterAll(async () => {
  await gateway?.process.stop(2_000);
  await Promise.all(agents.map((a) => a.process.stop(2_000)));
  await consul?.stop();
});

const a2a = (agent: string) => new URL(`/a2a/${agent}`, gateway.url).toString();

describe("A2A 1.0 at the gateway", () => {
  it("serves an Agent Card per agent kind: skills from its tools, the ask tool's example questions, its JSON-RPC endpoint", async () => {
    const res = await fetch(`${a2a("hr")}/.well-known/agent-card.json`);
    expect(res.status).toBe(200);
    const card = (await res.json()) as A2aAgentCardJson;
    expect(a2aCardProblems(card)).toEqual([]);
    expect(card.name).toBe("hr");
    expect(card.supportedInterfaces).toEqual([
      expect.objectContaining({ url: a2a("hr"), protocolBinding: "JSONRPC", protocolVersion: "1.0" }),
    ]);
    expect(card.skills.map((s) => s.id)).toEqual(expect.arrayContaining(["ask", "get_leave_balance", "request_leave"]));
    expect(card.skills[0]!.examples).toContain("Who does Ines Silva report to?");
    // An agent kind the mesh does not have, or one without an ask tool, has no card.
    expect((await fetch(`${a2a("nope")}/.well-known/agent-card.json`)).status).toBe(404);
  });

  it("the Python a2a-sdk client: card, send, get, cancel of a finished task refused, and streaming with status updates", async () => {
    const { stdout } = await run(python, ["test/python/a2a_client.py", a2a("hr")], { cwd: root, timeout: 120_000 });
    const out = JSON.parse(stdout) as {
      card: { name: string; streaming: boolean; skills: string[] };
      send: { state: string; answer: string };
      get: { id_matches: boolean; state: string };
      cancel_finished: string;
      stream: { states: string[]; answer: string };
    };
    expect(out.card).toMatchObject({ name: "hr", streaming: true });
    expect(out.send).toMatchObject({
      state: "TASK_STATE_COMPLETED",
      answer: "Bob Okafor (E1002) has 19 of 25 vacation days left in 2026.",
    });
    expect(out.get).toEqual({ id_matches: true, state: "TASK_STATE_COMPLETED" });
    expect(out.cancel_finished).toBe("TaskNotCancelableError");
    expect(out.stream.states).toEqual(["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]);
    expect(out.stream.answer).toMatch(/^Ines Silva reports to Bob Okafor \(E1002\)/);
  }, 180_000);

  it("the whole mesh as one A2A agent: the orchestrator plans across agents", async () => {
    const { stdout } = await run(python, ["test/python/a2a_client.py", a2a("orchestrator")], { cwd: root, timeout: 120_000 });
    const out = JSON.parse(stdout) as { card: { name: string }; send: { state: string; answer: string }; stream: { answer: string } };
    expect(out.card.name).toBe("orchestrator");
    expect(out.send.state).toBe("TASK_STATE_COMPLETED");
    expect(out.send.answer).toMatch(/vacation: 19 of 25 days left[\s\S]*— hr\.get_leave_balance/);
    expect(out.stream.answer).toMatch(/^Ines Silva's manager: Bob Okafor \(E1002\)/);
  }, 180_000);
});

describe("the Agent Card of a gateway that requires a token (MESH_GATEWAY_TOKEN)", () => {
  const TOKEN = "a2a-client-token-0123456789";
  let guarded: TestAgent;
  beforeAll(async () => {
    guarded = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready", env: { MESH_GATEWAY_TOKEN: TOKEN } });
  }, 60_000);
  afterAll(async () => {
    await guarded?.process.stop(2_000);
  });
  const url = () => new URL("/a2a/hr", guarded.url).toString();

  it("is a valid A2A 1.0 card: the bearer scheme and the requirement naming it in the 1.0 JSON form (a strict check); the JS SDK reads them", async () => {
    const card = (await (await fetch(`${url()}/.well-known/agent-card.json`)).json()) as A2aAgentCardJson;
    expect(a2aCardProblems(card)).toEqual([]);
    expect(card.securitySchemes).toEqual({
      bearer: {
        httpAuthSecurityScheme: { scheme: "Bearer", bearerFormat: "opaque", description: expect.stringMatching(/MESH_GATEWAY_TOKEN/) },
      },
    });
    // One requirement: the bearer scheme, no scopes (an empty list, which ProtoJSON may omit).
    expect(card.securityRequirements?.map((r) => Object.keys(r.schemes ?? {}))).toEqual([["bearer"]]);
    expect(card.securityRequirements?.[0]?.schemes?.["bearer"]?.list ?? []).toEqual([]);
    // The JSON-RPC endpoint is not public: without the token, refused.
    expect((await fetch(url(), { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(401);
    const js = await (await new ClientFactory().createFromUrl(`${url()}/.well-known/agent-card.json`, "")).getAgentCard();
    expect(js.securitySchemes["bearer"]?.scheme).toEqual({
      $case: "httpAuthSecurityScheme",
      value: expect.objectContaining({ scheme: "Bearer", bearerFormat: "opaque" }),
    });
  });

  it("the Python a2a-sdk: a strict parse of the card succeeds, its resolver keeps the bearer scheme, and its AuthInterceptor sends the token", async () => {
    const { stdout } = await run(python, ["test/python/a2a_card.py", url(), TOKEN], { cwd: root, timeout: 120_000 });
    expect(JSON.parse(stdout)).toEqual({
      strict: "ok",
      schemes: { bearer: { kind: "http_auth_security_scheme", scheme: "Bearer" } },
      requirements: [["bearer"]],
      send: "TASK_STATE_COMPLETED",
    });
  }, 180_000);
});

/** A free TCP port on loopback (for the Python server, which takes one). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

describe("confirmation over A2A", () => {
  it("a plan that books something is input-required; the client's 'yes' in the same task runs it (the JS A2A SDK as the client)", async () => {
    const client = await new ClientFactory().createFromUrl(`${a2a("orchestrator")}/.well-known/agent-card.json`, "");
    const say = (text: string, task?: { id: string; contextId: string }) =>
      client.sendMessage({
        tenant: "",
        message: {
          role: Role.ROLE_USER,
          messageId: randomUUID(),
          parts: [{ content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "text/plain" }],
          taskId: task?.id ?? "",
          contextId: task?.contextId ?? "",
          extensions: [],
          metadata: {},
          referenceTaskIds: [],
        },
        configuration: undefined,
        metadata: undefined,
      } as never) as Promise<Task>;
    const asked = await say("Book 1 day of vacation for Keiko Sato starting 2026-12-14");
    expect(asked.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    const question = asked.status?.message?.parts[0]?.content;
    expect(question?.$case === "text" ? question.value : "").toMatch(/^This would change something: hr\.request_leave/);
    const done = await say("yes", asked);
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const answer = done.artifacts?.at(-1)?.parts[0]?.content;
    expect(answer?.$case === "text" ? answer.value : "").toMatch(/^Booked 1 working day\(s\) of vacation leave for Keiko Sato, 2026-12-14/);
  }, 60_000);
});

describe("an A2A agent as a member of the mesh (mesh register --a2a)", () => {
  let server: ChildProcess;
  let bridge: ChildProcess;
  let bridgeLog = "";
  beforeAll(async () => {
    const port = await freePort();
    server = spawn(python, ["test/python/a2a_server.py", String(port)], { cwd: root, stdio: "ignore" });
    await eventually(async () => (await fetch(`http://127.0.0.1:${port}/.well-known/agent-card.json`).catch(() => undefined))?.ok, {
      timeoutMs: 30_000,
      what: "the Python A2A server",
    });
    bridge = spawn(
      process.execPath,
      ["orchestrator/cli/main.ts", "register", "--a2a", `http://127.0.0.1:${port}`, "--consul", consul.address],
      {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    bridge.stdout!.on("data", (d: Buffer) => (bridgeLog += d.toString()));
    bridge.stderr!.on("data", (d: Buffer) => (bridgeLog += d.toString()));
    await eventually(async () => (await consul.client.healthService("py-calculator", { passing: true })).value.length === 1, {
      timeoutMs: 15_000,
      what: "the bridge registered as py-calculator",
    });
  }, 120_000);
  afterAll(() => {
    bridge?.kill("SIGTERM");
    server?.kill("SIGTERM");
  });

  it("its skills are the bridge's tools, callable with mesh call: a task answer (polled) and a message answer", async () => {
    expect(bridgeLog).toMatch(/bridging A2A agent "Py Calculator" \(2 skills\) into the mesh as "py-calculator"/);
    const c = ["--consul", consul.address];
    const tools = await mesh(["tools", "py-calculator", ...c]);
    expect(tools.stdout).toMatch(/py-calculator\.add\(message\*: string/);
    expect(tools.stdout).toMatch(/Examples: "add 2 and 40"/);
    const sum = await mesh(["call", "py-calculator.add", '{"message":"add 2 and 40"}', "--json", ...c]);
    expect(sum.code, sum.stderr).toBe(0);
    expect(JSON.parse(sum.stdout).structuredContent).toMatchObject({ answer: "42", state: "TASK_STATE_COMPLETED" });
    const shout = await mesh(["call", "py-calculator.shout", '{"message":"hello mesh"}', "--json", ...c]);
    expect(JSON.parse(shout.stdout).structuredContent).toMatchObject({ answer: "HELLO MESH", state: "message" });
  }, 60_000);

  it("through the gateway like any agent, and as a mesh task for a client that takes one", async () => {
    const c = ["--consul", consul.address];
    await eventually(async () => (await mesh(["tools", "py-calculator", "--json", ...c])).code === 0, {
      timeoutMs: 5_000,
      what: "catalog",
    });
    const started = await mesh(["call", "py-calculator.add", '{"message":"1 + 2 + 3"}', "--task", "--json", ...c]);
    const { task } = JSON.parse(started.stdout) as { task: { taskId: string } };
    const waited = await mesh(["tasks", "wait", "py-calculator", task.taskId, "--json", ...c]);
    expect(JSON.parse(waited.stdout)).toMatchObject({ status: "completed", result: { structuredContent: { answer: "6" } } });
    const res = await fetch(gateway.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "py-calculator__shout",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: {
          name: "py-calculator__shout",
          arguments: { message: "through the gateway" },
          _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} },
        },
      }),
    });
    const text = await res.text();
    expect(text).toMatch(/THROUGH THE GATEWAY/);
  }, 60_000);
});

/** A plain HTTP server answering each request with `answer(method, path, body)` as JSON. */
async function jsonServer(answer: (method: string, path: string, body: string) => unknown): Promise<{ origin: string; close: () => void }> {
  const server: Server = createHttpServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () =>
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer(req.method ?? "", req.url ?? "", body))),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** Runs `mesh register --a2a <url>` (a bridge, in the foreground) and collects what it prints. */
function bridgeTo(url: string, name?: string): { process: ChildProcess; log: () => string } {
  let log = "";
  const child = spawn(
    process.execPath,
    ["orchestrator/cli/main.ts", "register", "--a2a", url, ...(name ? ["--name", name] : []), "--consul", consul.address],
    { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  return { process: child, log: () => log };
}

/** Waits until the bridge is a passing member of the mesh; fails with what it printed if it exits first. */
async function bridged(bridge: { process: ChildProcess; log: () => string }, service: string): Promise<void> {
  if (bridge.process.exitCode !== null) throw new Error(`mesh register --a2a exited (${bridge.process.exitCode}): ${bridge.log()}`);
  let onExit: ((code: number | null) => void) | undefined;
  const exited = new Promise<never>((_, reject) => {
    onExit = (code) => reject(new Error(`mesh register --a2a exited (${code}) before registering: ${bridge.log()}`));
    bridge.process.once("exit", onExit);
  });
  try {
    await Promise.race([
      exited,
      eventually(async () => (await consul.client.healthService(service, { passing: true })).value.length === 1, {
        timeoutMs: 15_000,
        what: `the bridge registered as ${service}`,
      }),
    ]);
  } finally {
    bridge.process.off("exit", onExit!);
  }
}

describe("a minimal A2A 1.0 agent as a member of the mesh: every optional field of its card absent", () => {
  const c = () => ["--consul", consul.address];

  it("the Python a2a-sdk's minimal agent (one skill: id, name, description, tags; JSON-RPC): bridged, and mesh call reaches its skill", async () => {
    const port = await freePort();
    const server = spawn(python, ["test/python/a2a_server.py", String(port), "--minimal"], { cwd: root, stdio: "ignore" });
    let bridge: ReturnType<typeof bridgeTo> | undefined;
    try {
      const cardUrl = `http://127.0.0.1:${port}/.well-known/agent-card.json`;
      await eventually(async () => (await fetch(cardUrl).catch(() => undefined))?.ok, { timeoutMs: 30_000, what: "the Python A2A server" });
      const card = (await (await fetch(cardUrl)).json()) as A2aAgentCardJson;
      expect(a2aCardProblems(card)).toEqual([]);
      expect(card.skills[0]).toEqual({ id: "echo", name: "Echo", description: "Echoes the message back.", tags: ["echo"] });
      bridge = bridgeTo(`http://127.0.0.1:${port}`, "a2aecho");
      await bridged(bridge, "a2aecho");
      expect(bridge.log()).toMatch(/bridging A2A agent "echo" \(1 skill\) into the mesh as "a2aecho"/);
      const tools = await mesh(["tools", "a2aecho", ...c()]);
      expect(tools.stdout).toMatch(/a2aecho\.echo\(message\*: string/);
      const echoed = await mesh(["call", "a2aecho.echo", '{"message":"hello minimal"}', "--json", ...c()]);
      expect(echoed.code, echoed.stderr).toBe(0);
      expect(JSON.parse(echoed.stdout).structuredContent).toMatchObject({ answer: "echo: hello minimal", state: "message" });
    } finally {
      bridge?.process.kill("SIGTERM");
      server.kill("SIGTERM");
    }
  }, 90_000);

  it("a card with only what A2A 1.0 requires, served by a plain HTTP server, answering with bare tasks: bridged, polled to the end", async () => {
    // Only the fields a2a.proto marks REQUIRED, and of each answer only what a Task requires.
    let origin = "";
    const card = () => ({
      name: "Bare Bones",
      description: "Answers with tasks that carry nothing optional.",
      supportedInterfaces: [{ url: `${origin}/rpc`, protocolBinding: "JSONRPC", protocolVersion: "1.0" }],
      version: "0.1.0",
      capabilities: {},
      defaultInputModes: ["text/plain"],
      defaultOutputModes: ["text/plain"],
      skills: [{ id: "reverse", name: "Reverse", description: "Reverses the message.", tags: ["text"] }],
    });
    const tasks = new Map<string, string>();
    const server = await jsonServer((method, path, body) => {
      if (method === "GET" && path === "/.well-known/agent-card.json") return card();
      const rpc = JSON.parse(body || "{}") as { id: number; method: string; params: Record<string, unknown> };
      if (rpc.method === "SendMessage") {
        const parts = (rpc.params["message"] as { parts: { text?: string }[] }).parts;
        const id = randomUUID();
        tasks.set(id, [...parts.map((p) => p.text ?? "").join("")].reverse().join(""));
        return { jsonrpc: "2.0", id: rpc.id, result: { task: { id, contextId: "ctx-1", status: { state: "TASK_STATE_WORKING" } } } };
      }
      if (rpc.method === "GetTask") {
        const id = rpc.params["id"] as string;
        const message = { role: "ROLE_AGENT", messageId: "m-1", parts: [{ text: tasks.get(id) }] };
        return { jsonrpc: "2.0", id: rpc.id, result: { id, contextId: "ctx-1", status: { state: "TASK_STATE_COMPLETED", message } } };
      }
      return { jsonrpc: "2.0", id: rpc.id ?? null, error: { code: -32601, message: `no method ${rpc.method}` } };
    });
    origin = server.origin;
    expect(a2aCardProblems(card())).toEqual([]);
    const bridge = bridgeTo(origin);
    try {
      await bridged(bridge, "bare-bones");
      expect(bridge.log()).toMatch(/bridging A2A agent "Bare Bones" \(1 skill\) into the mesh as "bare-bones"/);
      const reversed = await mesh(["call", "bare-bones.reverse", '{"message":"stressed"}', "--json", ...c()]);
      expect(reversed.code, reversed.stderr).toBe(0);
      expect(JSON.parse(reversed.stdout).structuredContent).toMatchObject({ answer: "desserts", state: "TASK_STATE_COMPLETED" });
    } finally {
      bridge.process.kill("SIGTERM");
      server.close();
    }
  }, 60_000);

  it("a card the bridge cannot use (a skill without an id, no skills) is refused with what is missing, as a usage error", async () => {
    const base = { name: "Broken", description: "x", version: "1", capabilities: {}, defaultInputModes: ["text/plain"] };
    let origin = "";
    const server = await jsonServer((_method, path) => ({
      ...base,
      supportedInterfaces: [{ url: `${origin}/rpc`, protocolBinding: "JSONRPC", protocolVersion: "1.0" }],
      ...(path === "/no-id.json" ? { skills: [{ name: "Nameless", description: "no id", tags: ["x"] }] } : {}),
    }));
    origin = server.origin;
    try {
      const noId = await mesh(["register", "--a2a", `${origin}/no-id.json`, ...c()]);
      expect(noId.code).toBe(2);
      expect(noId.stderr).toMatch(
        /The A2A agent card at http:\/\/127\.0\.0\.1:\d+\/no-id\.json cannot be bridged: card\.skills\[0\]\.id: expected the skill's id \(the bridge names its tool after it\)\. Expected an A2A 1\.0 agent card with at least one skill, each with an id; ask the agent's owner to publish one\./,
      );
      const noSkills = await mesh(["register", "--a2a", `${origin}/no-skills.json`, ...c()]);
      expect(noSkills.code).toBe(2);
      expect(noSkills.stderr).toMatch(/cannot be bridged: card\.skills: expected a list of skills\./);
    } finally {
      server.close();
    }
  }, 30_000);
});

describe("A2A tasks live in Consul KV: any gateway replica answers for them", () => {
  const SLOW = fileURLToPath(new URL("../fixtures/slowAgent.ts", import.meta.url));
  let slow: TestAgent;
  let second: TestAgent;
  const clientOf = (g: TestAgent) => new ClientFactory().createFromUrl(`${new URL("/a2a/slow", g.url)}/.well-known/agent-card.json`, "");
  const send = async (g: TestAgent, text: string) =>
    (await clientOf(g)).sendMessage({
      tenant: "",
      message: {
        role: Role.ROLE_USER,
        messageId: randomUUID(),
        parts: [{ content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "text/plain" }],
        taskId: "",
        contextId: "",
        extensions: [],
        metadata: {},
        referenceTaskIds: [],
      },
      configuration: { acceptedOutputModes: [], taskPushNotificationConfig: undefined, returnImmediately: true },
      metadata: undefined,
    } as never) as Promise<Task>;
  const text = (t: Task | undefined) => {
    const c = t?.status?.message?.parts[0]?.content;
    return c?.$case === "text" ? c.value : "";
  };

  beforeAll(async () => {
    slow = await spawnAgent(SLOW, consul.address);
    second = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready" });
    await eventually(
      async () =>
        (await fetch(`${new URL("/a2a/slow", gateway.url)}/.well-known/agent-card.json`)).ok &&
        (await fetch(`${new URL("/a2a/slow", second.url)}/.well-known/agent-card.json`)).ok,
      { timeoutMs: 10_000, what: "both gateways know the slow agent" },
    );
  }, 60_000);
  afterAll(async () => {
    await second?.process.stop(2_000);
    await slow?.process.stop(2_000);
  });

  it("started on one gateway: got, resubscribed to (status updates and the answer) and finished on the other", async () => {
    const started = await send(gateway, "sleep 2500");
    expect([TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING]).toContain(started.status?.state);
    const other = await clientOf(second);
    const seen = await other.getTask({ tenant: "", id: started.id, historyLength: undefined } as never);
    expect(seen.id).toBe(started.id);
    expect(seen.contextId).toBe(started.contextId);
    expect([TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING]).toContain(seen.status?.state);
    // Resubscribing where the task is not running follows its record to the end.
    const states: TaskState[] = [];
    let answer = "";
    for await (const event of other.resubscribeTask({ tenant: "", id: started.id } as never)) {
      const p = event.payload;
      if (p?.$case === "task") states.push(p.value.status!.state);
      if (p?.$case === "statusUpdate") states.push(p.value.status!.state);
      if (p?.$case === "artifactUpdate") {
        const c = p.value.artifact?.parts[0]?.content;
        answer = c?.$case === "text" ? c.value : "";
      }
    }
    expect(states.at(-1)).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(answer).toMatch(/^slept 2500 ms in \d+$/);
    const done = await other.getTask({ tenant: "", id: started.id, historyLength: undefined } as never);
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const artifact = done.artifacts.at(-1)?.parts[0]?.content;
    expect(artifact?.$case === "text" ? artifact.value : "").toBe(answer);
  }, 60_000);

  it("cancelled through the other gateway: the gateway running it stops the mesh call, and the task stays cancelled", async () => {
    const started = await send(gateway, "sleep 20000");
    const other = await clientOf(second);
    const cancelled = await other.cancelTask({ tenant: "", id: started.id, metadata: undefined } as never);
    expect(cancelled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    // The running gateway sees the cancel within a heartbeat and aborts the call to the agent.
    await eventually(
      async () =>
        slow.logs().some((l) => l["msg"] === "tool call cancelled by its caller" && l["tool"] === "ask" && Number(l["ms"]) < 10_000),
      { timeoutMs: 5_000, what: "the slow agent's call ended early, unanswered" },
    );
    const later = await (await clientOf(gateway)).getTask({ tenant: "", id: started.id, historyLength: undefined } as never);
    expect(later.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
  }, 30_000);

  it("SIGKILL of the gateway running it: the other gateway reports it failed, naming the gateway", async () => {
    const started = await send(second, "sleep 30000");
    second.process.signal("SIGKILL");
    const survivor = await clientOf(gateway);
    await eventually(
      async () =>
        (await survivor.getTask({ tenant: "", id: started.id, historyLength: undefined } as never)).status?.state ===
        TaskState.TASK_STATE_FAILED,
      { timeoutMs: 20_000, what: "the orphaned task failed" },
    );
    const failed = await survivor.getTask({ tenant: "", id: started.id, historyLength: undefined } as never);
    expect(text(failed)).toMatch(
      /^Gateway gateway@.+\/\d+ stopped while working on this task \(no sign of it since .+\); send the message again\.$/,
    );
  }, 40_000);
});
