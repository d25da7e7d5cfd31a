// Membership is proven, not claimed: a server registered straight in Consul with a toolmesh
// agent's meta is sent a credential for its own name only, and nothing it receives opens any
// other member. With and without Consul ACLs (under ACLs: an operator allowed to register ext-*
// services, the policy docs/security.md documents, registers it).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { CallToolResult, Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentCredential } from "../../src/protocol/credentials.ts";
import { MeshClient } from "../../src/client/meshClient.ts";
import { resultText } from "../../src/protocol/results.ts";
import { startAclConsul, POLICIES } from "../helpers/acl.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";
import { registerForged, startForgedMember, type ForgedMember } from "../helpers/forged.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const MESH_TOKEN = "identity-test-mesh-token-0123456789abcdef";
/** What the metrics scraper holds: it finds every instance tagged mcp in Consul, forged ones too. */
const METRICS_TOKEN = "identity-test-metrics-only-token-0123456789";

const initialize = (url: string, authorization: string | undefined) =>
  fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...(authorization ? { authorization } : {}),
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } },
    }),
  }).then(async (res) => {
    await res.body?.cancel();
    return res.status;
  });

describe.each([
  { acl: false, title: "without Consul ACLs" },
  { acl: true, title: "under Consul ACLs, registered with the token of an operator allowed ext-* services" },
])("a forged member named ext-evil, $title", ({ acl }) => {
  let consul: TestConsul;
  /** Consul tokens per role (under ACLs; none otherwise). */
  const tokens: Record<string, string | undefined> = {};
  const agents: Record<string, TestAgent> = {};
  let forged: ForgedMember;
  let gateway: TestAgent | undefined;
  let client: Client | undefined;
  /** The environment of the mesh CLI: the mesh token and a read-only Consul token. */
  let cli: NodeJS.ProcessEnv;

  beforeAll(async () => {
    if (acl) {
      const c = await startAclConsul();
      consul = c;
      for (const name of ["hr", "finance"]) tokens[name] = await c.token(name, POLICIES.agent(name));
      tokens["reader"] = await c.token("reader", POLICIES.reader);
      tokens["gateway"] = await c.token("gateway", POLICIES.gateway);
      tokens["registrar"] = await c.token("registrar", POLICIES.registrar);
    } else {
      consul = await startTestConsul();
    }
    const consulEnv = (role: string) => (tokens[role] ? { CONSUL_HTTP_TOKEN: tokens[role] } : {});
    cli = { CONSUL_HTTP_ADDR: consul.address, MESH_TOKEN, ...consulEnv("reader") };
    const [hr, finance] = await Promise.all(
      ["hr", "finance"].map((name) =>
        spawnAgent(name, consul.address, { env: { MESH_TOKEN, MESH_METRICS_TOKEN: METRICS_TOKEN, ...consulEnv(name) } }),
      ),
    );
    Object.assign(agents, { hr, finance });
    forged = await startForgedMember();
    const registered = await registerForged(consul.address, forged, "ext-evil", tokens["registrar"]);
    expect(registered.status).toBe(200);
    await eventually(async () => (await consul.client.healthService("ext-evil", { passing: true })).value.length === 1, {
      timeoutMs: 10_000,
      what: "ext-evil passing its health check",
    });
  });
  afterAll(async () => {
    await client?.close();
    await gateway?.process.stop(2_000);
    await Promise.all(Object.values(agents).map((a) => a.process.stop(2_000)));
    await forged?.close();
    await consul?.stop();
  });

  const received = (phase: string) => forged.seen.filter((s) => s.phase === phase && s.authorization !== undefined);

  it("is trusted as a member and sent a credential by mesh tools and mesh call", async () => {
    forged.phase = "cli";
    const tools = await mesh(["tools"], cli);
    expect(tools.code, tools.stderr).toBe(0);
    expect(tools.stdout).toContain("hr.get_employee(");
    await mesh(["call", "ext-evil.steal"], cli);
    expect(received("cli").length).toBeGreaterThan(0);
  });

  it("is sent a credential by the gateway", async () => {
    forged.phase = "gateway";
    gateway = await spawnAgent(GATEWAY, consul.address, {
      readyMessage: "gateway ready",
      env: { MESH_TOKEN, MESH_METRICS_TOKEN: METRICS_TOKEN, ...(tokens["gateway"] ? { CONSUL_HTTP_TOKEN: tokens["gateway"] } : {}) },
    });
    client = await connectHttp(gateway.url, { token: MESH_TOKEN });
    const steal = await eventually(async () => (await client!.listTools()).tools.find((t) => t.name.includes("steal"))?.name, {
      timeoutMs: 10_000,
      what: "the gateway to list the forged member's tool",
    });
    await client.callTool({ name: steal.value, arguments: {} });
    expect(received("gateway").length).toBeGreaterThan(0);
  });

  it("no credential it received opens hr, finance or the gateway, and the mesh token itself never reached it", async () => {
    const captured = [...new Set(forged.seen.map((s) => s.authorization).filter((a) => a !== undefined))];
    expect(captured.length).toBeGreaterThan(0);
    for (const authorization of captured) {
      expect(await initialize(agents["hr"]!.url, authorization), `hr, ${authorization.slice(0, 12)}…`).toBe(401);
      expect(await initialize(agents["finance"]!.url, authorization), `finance, ${authorization.slice(0, 12)}…`).toBe(401);
      expect(await initialize(gateway!.url, authorization), `gateway, ${authorization.slice(0, 12)}…`).toBe(401);
    }
    expect(captured.join("\n")).not.toContain(MESH_TOKEN);
    // What it was sent is the credential of the name it registered, and nothing else.
    expect(captured).toEqual([`Bearer ${agentCredential(MESH_TOKEN, "ext-evil")}`]);
    // Credentials are secrets like the token: no log line of the agents or the gateway holds one.
    const logs = [...Object.values(agents), gateway!].map((a) => readFileSync(a.logFile, "utf8")).join("\n");
    expect([MESH_TOKEN, ...captured.map((a) => a.replace(/^Bearer /, ""))].filter((s) => logs.includes(s))).toEqual([]);
    if (acl) {
      // What stands between the operator and hr's own credential: Consul refuses the name hr.
      const asHr = await registerForged(consul.address, forged, "hr", tokens["registrar"]);
      expect(asHr.status).toBe(403);
      expect((await consul.client.healthService("hr")).value.map((e) => e.id)).toEqual([agents["hr"]!.instanceId]);
    }
  });

  it("hr still accepts every real caller: the CLI, finance calling it, the gateway, and the mesh token itself", async () => {
    const direct = await mesh(["call", "hr.get_employee", "--arg", "employee_id=E1002"], cli);
    expect(direct.code, direct.stderr).toBe(0);
    expect(direct.stdout).toContain("E1002");
    // compute_net_pay asks hr for the employee: finance → hr with finance's credentials.
    const onward = await mesh(["call", "finance.compute_net_pay", "--arg", "employee_id=E1002"], cli);
    expect(onward.code, onward.stderr).toBe(0);
    const viaGateway = (await client!.callTool({ name: "hr__get_employee", arguments: { employee_id: "E1002" } })) as CallToolResult;
    expect(viaGateway.isError, resultText(viaGateway)).toBeFalsy();
    // Operators and the metrics scraper hold the mesh token: it still opens every agent.
    expect(await initialize(agents["hr"]!.url, `Bearer ${MESH_TOKEN}`)).toBe(200);
    expect(
      (await fetch(agents["hr"]!.url.replace(/\/mcp$/, "/metrics"), { headers: { authorization: `Bearer ${MESH_TOKEN}` } })).status,
    ).toBe(200);
  });

  it("a scraper's metrics-only token (MESH_METRICS_TOKEN) reads /metrics at hr and the gateway, and opens no MCP endpoint", async () => {
    const metrics = (url: string, token: string) =>
      fetch(url.replace(/\/mcp$/, "/metrics"), { headers: { authorization: `Bearer ${token}` } }).then(async (res) => {
        await res.body?.cancel();
        return res.status;
      });
    for (const url of [agents["hr"]!.url, agents["finance"]!.url, gateway!.url]) {
      expect(await metrics(url, METRICS_TOKEN), url).toBe(200);
      expect(await initialize(url, `Bearer ${METRICS_TOKEN}`), url).toBe(401);
    }
    // What the forged member got opens no /metrics either.
    const captured = forged.seen.find((s) => s.authorization)!.authorization!.replace(/^Bearer /, "");
    expect(await metrics(agents["hr"]!.url, captured)).toBe(401);
  });
});

describe("the limit, without Consul ACLs: a forged instance registered as hr itself", () => {
  let consul: TestConsul;
  const agents: Record<string, TestAgent> = {};
  let forged: ForgedMember;
  let caller: MeshClient;

  beforeAll(async () => {
    consul = await startTestConsul();
    const [hr, finance] = await Promise.all(["hr", "finance"].map((name) => spawnAgent(name, consul.address, { env: { MESH_TOKEN } })));
    Object.assign(agents, { hr, finance });
    forged = await startForgedMember();
    expect((await registerForged(consul.address, forged, "hr")).status).toBe(200);
    // This caller talks to finance only (with the mesh token): whatever the forged hr gets comes from finance.
    caller = new MeshClient({
      consul: consul.client,
      callerName: "test",
      token: (agent) => (agent === "finance" ? MESH_TOKEN : undefined),
    });
  });
  afterAll(async () => {
    await caller?.close();
    await Promise.all(Object.values(agents).map((a) => a.process.stop(2_000)));
    await forged?.close();
    await consul?.stop();
  });

  it("is sent hr's credential by an agent calling hr (finance), never the mesh token", async () => {
    await eventually(async () => (await consul.client.healthService("hr", { passing: true })).value.length === 2, {
      timeoutMs: 10_000,
      what: "the real and the forged hr passing",
    });
    await eventually(
      async () => {
        await caller.callTool("finance", "compute_net_pay", { employee_id: "E1002" }).catch(() => undefined);
        return forged.seen.some((s) => s.method === "tools/call");
      },
      { timeoutMs: 15_000, what: "finance to call the forged hr" },
    );
    const captured = [...new Set(forged.seen.map((s) => s.authorization))];
    // What Consul ACLs are for: without them, registering as hr is receiving hr's credential.
    expect(captured).toEqual([`Bearer ${agentCredential(MESH_TOKEN, "hr")}`]);
    expect(await initialize(agents["finance"]!.url, captured[0])).toBe(401);
  });

  it("a service registered as HR (Consul matches names without case) is not an hr instance", async () => {
    const upper = await startForgedMember();
    try {
      expect((await registerForged(consul.address, upper, "HR")).status).toBe(200);
      // Consul's own answer for "hr" lists it beside the real hr and the forged one...
      await eventually(async () => (await consul.client.healthService("hr", { passing: true })).value.length === 3, {
        timeoutMs: 10_000,
        what: "Consul to list HR under hr",
      });
      // ...discovery does not.
      const listed = async () => ((await caller.catalog.instances("hr")) as { id: string; service?: string }[]).map((i) => i.id);
      await eventually(async () => (await listed()).length === 2, { timeoutMs: 10_000, what: "hr's two instances in the catalog" });
      expect((await listed()).some((id) => id.includes(String(upper.port)))).toBe(false);
    } finally {
      await upper.close();
    }
  });
});
