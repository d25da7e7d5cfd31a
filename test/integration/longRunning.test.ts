// Long-running callers (the gateway, the orchestrator, an agent calling another) keep
// answering through everything an agent does to their pooled sessions over days: idle
// expiry, eviction by the session cap, a cancelled stream, a reset connection (a restart on
// the same port). Timers are shortened (MESH_SESSION_IDLE_MS, MESH_MAX_SESSIONS) so days
// happen in seconds. The soak script (npm run soak) checks the same over a longer run.
import type { CallToolResult, Client } from "@modelcontextprotocol/client";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually, untilInstances } from "../helpers/eventually.ts";

const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
/** Agents close a session after this long without a request. */
const IDLE_MS = 1_000;
/** Agents keep this many sessions; the next evicts the least recently used. */
const MAX_SESSIONS = 3;
const SHORT = { MESH_SESSION_IDLE_MS: String(IDLE_MS), MESH_MAX_SESSIONS: String(MAX_SESSIONS) };

let consul: TestConsul;
let hr: TestAgent;
let finance: TestAgent;
let orchestrator: TestAgent;
let probe: TestAgent;
let gateway: TestAgent;
let client: Client;
let mesh: MeshClient;

beforeAll(async () => {
  consul = await startTestConsul();
  [hr, probe] = await Promise.all([
    spawnAgent("hr", consul.address, { env: SHORT }),
    spawnAgent(PROBE, consul.address, { env: { ...SHORT, PROBE_NAME: "probe" } }),
  ]);
  [finance, orchestrator] = await Promise.all([spawnAgent("finance", consul.address), spawnAgent("orchestrator", consul.address)]);
  mesh = new MeshClient({ consul: consul.client, callerName: "test" });
  await untilInstances(mesh, "orchestrator", 1);
  await untilInstances(mesh, "finance", 1);
  // The gateway keeps its own clients' sessions as long as usual: what is shortened is what the
  // agents do to the gateway's sessions with them.
  gateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready" });
  client = await connectHttp(gateway.url);
}, 90_000);
afterAll(async () => {
  await client?.close();
  await mesh?.close();
  await Promise.all([gateway, finance, orchestrator, probe, hr].filter(Boolean).map((a) => a.process.stop(2_000)));
  await consul?.stop();
});

/** Every long-running caller answers a call that needs hr, and none of them has exited. */
async function everyCallerAnswers(when: string): Promise<void> {
  const viaGateway = (await client.callTool({ name: "hr__get_employee", arguments: { employee_id: "E1002" } })) as CallToolResult;
  expect(viaGateway.isError ?? false, `${when}: the gateway's call to hr: ${JSON.stringify(viaGateway.content)}`).toBe(false);
  const pay = await mesh.callTool("finance", "compute_net_pay", { employee_id: "E1002" });
  expect(pay.isError ?? false, `${when}: finance's call to hr`).toBe(false);
  expect(pay.structuredContent).toMatchObject({ employeeId: "E1002", source: { agent: "hr" } });
  const asked = await mesh.callTool("orchestrator", "ask", { question: "Who does Bob Okafor report to?", agent: "hr" });
  expect(asked.structuredContent, `${when}: the orchestrator asking hr: ${JSON.stringify(asked.structuredContent)}`).toMatchObject({
    kind: "answer",
    agent: "hr",
  });
  for (const [name, agent] of Object.entries({ gateway, finance, orchestrator })) {
    expect(agent.process.running, `${name} still running ${when}`).toBe(true);
  }
}

/** Opens `count` sessions on an agent with bare initialize POSTs, as any client on the network may. */
async function openSessions(url: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "flood", version: "1" } },
      }),
    });
    await res.text();
  }
}

describe("long-running callers survive what agents do to their sessions", () => {
  it("the gateway, the orchestrator and finance answer before anything happens", async () => {
    await everyCallerAnswers("at first");
  });

  it("survive eviction: a client opening many sessions on hr pushes theirs out of its session cap", async () => {
    await openSessions(hr.url, MAX_SESSIONS * 4);
    await eventually(() => hr.logs().some((l) => String(l["msg"]).includes("evicted")), { timeoutMs: 2_000, what: "hr evicting sessions" });
    // The evicted callers' notification streams end under them; give them time to notice.
    // A pause that is the scenario (calls after the loss, not racing it); it passes with any length.
    await new Promise((r) => setTimeout(r, 500));
    await everyCallerAnswers("after eviction");
  });

  it("survive idle expiry: hr closes their sessions after MESH_SESSION_IDLE_MS without a request", async () => {
    const before = hr.logs().filter((l) => l["msg"] === "closed idle session").length;
    await eventually(() => hr.logs().filter((l) => l["msg"] === "closed idle session").length >= before + 3, {
      timeoutMs: 10 * IDLE_MS,
      what: "hr closing idle sessions",
    });
    await new Promise((r) => setTimeout(r, 300)); // as above: the callers' calls come after the loss
    await everyCallerAnswers("after idle expiry");
  });

  it("survive stream cancellation: a client cancels calls through the gateway mid-flight, again and again", async () => {
    for (let i = 0; i < 5; i++) {
      const ctl = new AbortController();
      const call = client.callTool({ name: "probe__sleep", arguments: { ms: 5_000 } }, { signal: ctl.signal });
      setTimeout(() => ctl.abort("the user gave up"), 100);
      await expect(call).rejects.toThrow();
    }
    await eventually(() => probe.logs().filter((l) => l["msg"] === "sleep aborted").length >= 5, {
      timeoutMs: 3_000,
      what: "probe seeing the cancellations",
    });
    await everyCallerAnswers("after cancelled streams");
  });

  it("survive connection resets: hr is killed and comes back on the same port", async () => {
    const port = new URL(hr.url).port;
    for (let round = 0; round < 3; round++) {
      hr.process.kill();
      await hr.process.exited;
      const again = await spawnAgent("hr", consul.address, { env: SHORT, port: Number(port) });
      Object.assign(hr, again);
      await untilInstances(mesh, "hr", 1);
      await everyCallerAnswers(`after hr restart ${round + 1}`);
    }
  });
});
