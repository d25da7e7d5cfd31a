// Bearer tokens on every MCP endpoint, with real agent processes, a real gateway and Consul.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CallToolResult, Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultText } from "../../src/protocol/results.ts";
import { MeshClient } from "../../src/client/meshClient.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));

// Distinct, recognisable secrets: the last test greps every log for them.
const T = {
  mesh: "mesh-token-0123456789abcdef",
  meshNext: "mesh-token-NEXT-fedcba987654",
  hr: "hr-only-token-9f8e7d6c5b4a",
  finance: "finance-only-token-1a2b3c4d",
  gatewayClients: "gateway-client-token-77aa88bb",
};

let consul: TestConsul;
const agents: Record<string, TestAgent> = {};

beforeAll(async () => {
  consul = await startTestConsul();
  const started = await Promise.all([
    // Per-agent tokens: hr and finance each accept only their own; finance calls hr with hr's.
    spawnAgent("hr", consul.address, { env: { MESH_TOKEN: T.hr } }),
    spawnAgent("finance", consul.address, { env: { MESH_TOKEN: T.finance, MESH_TOKEN_HR: T.hr } }),
    // Mid-rotation: knowledge accepts the next token and the current one.
    spawnAgent("knowledge", consul.address, { env: { MESH_TOKEN: `${T.meshNext},${T.mesh}` } }),
    spawnAgent("orchestrator", consul.address, {
      env: { MESH_TOKEN: T.mesh, MESH_TOKEN_HR: T.hr, MESH_TOKEN_FINANCE: T.finance },
    }),
  ]);
  for (const a of started) agents[a.instanceId.split("-")[0]!] = a;
  await eventually(async () => (await consul.client.catalogServices()).value["orchestrator"] !== undefined, {
    timeoutMs: 5_000,
    what: "agents registered",
  });
  // The gateway accepts its own client token and calls agents with its mesh credentials.
  agents["gateway"] = await spawnAgent(GATEWAY, consul.address, {
    readyMessage: "gateway ready",
    env: { MESH_GATEWAY_TOKEN: T.gatewayClients, MESH_TOKEN: T.mesh, MESH_TOKEN_HR: T.hr, MESH_TOKEN_FINANCE: T.finance },
  });
});
afterAll(async () => {
  await Promise.all(Object.values(agents).map((a) => a.process.stop(2_000)));
  await consul.stop();
});

const initialize = (url: string, authorization?: string) =>
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
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
    }),
  });

function client(url: string, token: string, era: "modern" | "legacy" = "modern"): Promise<Client> {
  return connectHttp(url, { name: "auth-test", token, era });
}

const endpoints = () => [
  { name: "hr", url: agents["hr"]!.url, token: T.hr, tool: "get_leave_policy", args: { leave_type: "sick" } },
  { name: "finance", url: agents["finance"]!.url, token: T.finance, tool: "compute_net_pay", args: { employee_id: "E1002" } },
  { name: "knowledge", url: agents["knowledge"]!.url, token: T.mesh, tool: "list_documents", args: {} },
  { name: "orchestrator", url: agents["orchestrator"]!.url, token: T.mesh, tool: "ask", args: { question: "What is the referral bonus?" } },
  {
    name: "gateway",
    url: agents["gateway"]!.url,
    token: T.gatewayClients,
    tool: "finance__compute_net_pay",
    args: { employee_id: "E1002" },
  },
  {
    name: "gateway passthrough",
    url: agents["gateway"]!.url.replace(/\/mcp$/, "/agents/hr/mcp"),
    token: T.gatewayClients,
    tool: "get_leave_policy",
    args: { leave_type: "sick" },
  },
];

describe("no token / wrong token / right token", () => {
  it.each(["hr", "finance", "knowledge", "orchestrator", "gateway", "gateway passthrough"])("%s: 401 / 401 / success", async (name) => {
    const e = endpoints().find((x) => x.name === name)!;
    const none = await initialize(e.url);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="toolmesh"');
    expect(await none.json()).toMatchObject({ error: { message: expect.stringMatching(/requires a bearer token/) } });

    const wrong = await initialize(e.url, "Bearer not-the-right-token-at-all");
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("www-authenticate")).toMatch(/^Bearer realm="toolmesh", error="invalid_token"/);
    expect(await wrong.text()).not.toContain("not-the-right-token-at-all");
    expect((await initialize(e.url, `Basic ${Buffer.from(`x:${e.token}`).toString("base64")}`)).status).toBe(401);

    // Both revisions: a 2026-07-28 client sends the token on every request, a 2025-11-25 one on its session's.
    for (const era of ["modern", "legacy"] as const) {
      const c = await client(e.url, e.token, era);
      const r = (await c.callTool({ name: e.tool, arguments: e.args })) as CallToolResult;
      expect(r.isError, resultText(r)).toBeFalsy();
      await c.close();
    }
  });

  it("a token for one agent does not open another (per-agent tokens)", async () => {
    expect((await initialize(agents["finance"]!.url, `Bearer ${T.hr}`)).status).toBe(401);
    expect((await initialize(agents["hr"]!.url, `Bearer ${T.finance}`)).status).toBe(401);
    expect((await initialize(agents["hr"]!.url, `Bearer ${T.mesh}`)).status).toBe(401);
    // A gateway client's token opens the gateway only, never an agent: no token passthrough.
    expect((await initialize(agents["hr"]!.url, `Bearer ${T.gatewayClients}`)).status).toBe(401);
  });

  it("rotation: during the window both the old and the new token are accepted", async () => {
    for (const token of [T.mesh, T.meshNext]) {
      const c = await client(agents["knowledge"]!.url, token);
      expect((await c.listTools()).tools.length).toBeGreaterThan(0);
      await c.close();
    }
  });

  it("a caller without the right token gets UNAUTHORIZED naming the variable to set, not a retry storm", async () => {
    const caller = new MeshClient({ consul: consul.client, callerName: "test", token: () => undefined });
    await expect(caller.callTool("hr", "get_leave_policy", { leave_type: "sick" })).rejects.toMatchObject({
      code: "UNAUTHORIZED",
      message: expect.stringMatching(/requires a bearer token and this caller sent none\. Set MESH_TOKEN_HR/),
    });
    await caller.close();
    const right = new MeshClient({ consul: consul.client, callerName: "test", token: (a) => (a === "hr" ? T.hr : undefined) });
    expect((await right.callTool("hr", "get_leave_policy", { leave_type: "sick" })).isError).toBeFalsy();
    await right.close();
  });

  it("the mesh CLI sends MESH_TOKEN_<AGENT> / MESH_TOKEN from its environment", async () => {
    const env = { CONSUL_HTTP_ADDR: consul.address };
    const refused = await mesh(["call", "hr.get_leave_policy", "--arg", "leave_type=sick"], env);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/UNAUTHORIZED|requires a bearer token/);
    const ok = await mesh(["call", "hr.get_leave_policy", "--arg", "leave_type=sick"], { ...env, MESH_TOKEN_HR: T.hr });
    expect(ok.code, ok.stderr).toBe(0);
    expect(`${refused.stdout}${refused.stderr}${ok.stdout}${ok.stderr}`).not.toContain(T.hr);
  });

  it("a 401 for a missing token names the setting that applies there: MESH_GATEWAY_TOKEN at the gateway, the agent's credential at an agent", async () => {
    const said = async (url: string) => JSON.stringify(await (await initialize(url)).json());
    expect(await said(agents["gateway"]!.url)).toMatch(/MESH_GATEWAY_TOKEN/);
    expect(await said(agents["hr"]!.url)).toMatch(/derived from MESH_TOKEN, or MESH_TOKEN_<AGENT>/);
    expect(await said(agents["hr"]!.url)).not.toMatch(/MESH_GATEWAY_TOKEN/);
  });

  it("an orchestrator given its token in a file (--mesh-token-file, no MESH_TOKEN) sends the credentials derived from it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "toolmesh-tokens-"));
    writeFileSync(join(dir, "tokens"), `# hr's token\n${T.hr}\n`);
    const orchestrator = await spawnAgent("orchestrator", consul.address, { args: ["--mesh-token-file", join(dir, "tokens")] });
    try {
      const c = await client(orchestrator.url, T.hr);
      const r = (await c.callTool({ name: "ask", arguments: { question: "What is the sick leave policy?" } })) as CallToolResult;
      await c.close();
      expect(r.isError).toBeFalsy();
      expect(resultText(r)).toMatch(/sick/i);
      expect(resultText(r)).not.toMatch(/unauthori[sz]ed|401/i);
    } finally {
      await orchestrator.process.stop(2_000);
    }
  });

  it("a token too short to be safe stops the agent at start with a clear error (exit 2), not naming the token", async () => {
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(process.execPath, [fileURLToPath(new URL("../../servers/hr/main.ts", import.meta.url)), "--no-register"], {
      env: { ...process.env, MESH_TOKEN: "short-secret" },
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/MESH_TOKEN: each token must be at least 16 visible ASCII characters/);
    expect(r.stderr).not.toContain("short-secret");
  });
});

it("no token appears in any log line of the agents or the gateway", () => {
  const secrets = Object.values(T);
  const leaks: string[] = [];
  for (const a of Object.values(agents)) {
    const text = readFileSync(a.logFile, "utf8");
    for (const s of secrets) if (text.includes(s)) leaks.push(`${a.instanceId}: ${s.slice(0, 6)}…`);
  }
  expect(leaks).toEqual([]);
  // The logs are not empty: there was something to leak into.
  expect(agents["gateway"]!.logs().length).toBeGreaterThan(1);
});
