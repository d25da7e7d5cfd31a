// Per-tool permissions at the gateway: a policy in Consul KV, hot-reloaded, decides what each
// caller sees in tools/list (the whole-mesh view, the per-agent view and the dynamic view's
// search) and what it may call; a refusal names the missing permission. Real agents, two real
// gateways (one dynamic), a real authorization server (oidc-provider) and Consul.
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CallToolResult, Client, Tool } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentCredential } from "../../src/protocol/credentials.ts";
import { PolicyEngine, POLICY_KV_KEY, type ToolPolicy } from "../../src/gateway/policy.ts";
import { FORBIDDEN_ERROR_CODE } from "../../src/protocol/codes.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";
import { startAuthServer, type TestClient } from "../helpers/oidc.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const MESH_TOKEN = "policy-test-mesh-token-0123456789abcdef";
const reader: TestClient = { clientId: "reader", clientSecret: "reader-secret-0123456789", scope: "mesh hr:read" };
const booker: TestClient = { clientId: "booker", clientSecret: "booker-secret-0123456789", scope: "mesh hr:read hr:book" };

const POLICY: ToolPolicy = {
  version: 1,
  rules: [
    { scopes: ["hr:read"], allow: ["hr"], deny: [], access: "read" },
    { scopes: ["hr:book"], allow: ["hr.request_leave"], deny: [], access: "any" },
    { scopes: ["*"], allow: ["knowledge"], deny: [], access: "read", description: "everyone reads the handbook" },
    { scopes: ["*"], allow: [], deny: ["hr.list_direct_reports"], access: "any", description: "org chart is HR-only" },
  ],
};
/** The next version: readers lose the knowledge agent, bookers keep everything. */
const POLICY_2: ToolPolicy = { version: 1, rules: [POLICY.rules[0]!, POLICY.rules[1]!, { ...POLICY.rules[2]!, scopes: ["hr:book"] }] };

let consul: TestConsul;
let as: Awaited<ReturnType<typeof startAuthServer>>;
const agents: Record<string, TestAgent> = {};
let gateway: TestAgent;
let dynamic: TestAgent;
/** Every tool of the agents, as they list them themselves (with annotations). */
const catalog: { agent: string; tool: Tool }[] = [];
const tokens: Record<string, string> = {};
const cli = () => ({ CONSUL_HTTP_ADDR: consul.address, MESH_TOKEN });

beforeAll(async () => {
  consul = await startTestConsul();
  as = await startAuthServer({ host: "127.0.0.1", accounts: {}, clients: [reader, booker] });
  await consul.client.kvSet(POLICY_KV_KEY, JSON.stringify(POLICY));
  const started = await Promise.all(["hr", "knowledge"].map((a) => spawnAgent(a, consul.address, { env: { MESH_TOKEN } })));
  for (const a of started) agents[a.instanceId.split("-")[0]!] = a;
  for (const name of ["hr", "knowledge"]) {
    const c = await connectHttp(agents[name]!.url, { token: agentCredential(MESH_TOKEN, name) });
    catalog.push(...(await c.listTools()).tools.map((tool) => ({ agent: name, tool })));
    await c.close();
  }
  await eventually(async () => (await consul.client.healthService("knowledge", { passing: true })).value.length === 1, {
    timeoutMs: 5_000,
    what: "agents passing",
  });
  const env = { MESH_TOKEN, MESH_OAUTH_ISSUER: as.issuer, MESH_OAUTH_REQUIRED_SCOPES: "mesh" };
  [gateway, dynamic] = await Promise.all([
    spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready", env }),
    spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready", env, args: ["--dynamic"] }),
  ]);
  for (const [name, client] of [
    ["reader", reader],
    ["booker", booker],
  ] as const) {
    // One token per gateway: each is its own resource (its URL).
    tokens[`${name}@gateway`] = await as.clientCredentials(client, { resource: `${new URL(gateway.url).origin}/`, scope: client.scope });
    tokens[`${name}@dynamic`] = await as.clientCredentials(client, { resource: `${new URL(dynamic.url).origin}/`, scope: client.scope });
  }
  await eventually(async () => (await fetch(`${new URL(gateway.url).origin}/agents/hr/mcp`, { method: "POST" })).status !== 404, {
    timeoutMs: 10_000,
    what: "the gateway's hr view",
  });
}, 90_000);
afterAll(async () => {
  await Promise.all([gateway, dynamic].map((g) => g?.process.stop(2_000)));
  await Promise.all(Object.values(agents).map((a) => a.process.stop(2_000)));
  await as?.close();
  await consul?.stop();
});

const SCOPES = { reader: reader.scope.split(" "), booker: booker.scope.split(" ") };
type Who = keyof typeof SCOPES;

/** What each caller sees through every view: the whole mesh, /agents/<name>/mcp, and the dynamic view's search. */
async function views(who: Who): Promise<{ mesh: string[]; hr: string[]; knowledge: string[]; search: string[] }> {
  const open = (url: string, g: "gateway" | "dynamic") => connectHttp(url, { token: tokens[`${who}@${g}`]!, name: who });
  const origin = new URL(gateway.url).origin;
  const list = async (c: Client) => (await c.listTools()).tools.map((t) => t.name).sort();
  const [m, h, k, d] = await Promise.all([
    open(gateway.url, "gateway"),
    open(`${origin}/agents/hr/mcp`, "gateway"),
    open(`${origin}/agents/knowledge/mcp`, "gateway"),
    open(dynamic.url, "dynamic"),
  ]);
  try {
    const found = (await d.callTool({
      name: "search_tools",
      arguments: { query: "employee leave document policy handbook manager reports", limit: 50 },
    })) as CallToolResult;
    const search = ((found.structuredContent as { results: { name: string }[] }).results ?? []).map((r) => r.name).sort();
    return { mesh: await list(m), hr: await list(h), knowledge: await list(k), search };
  } finally {
    await Promise.all([m, h, k, d].map((c) => c.close()));
  }
}

/** What the policy allows a caller, by gateway name, computed from the agents' own lists. */
function allowed(policy: ToolPolicy, who: Who): Set<string> {
  const engine = new PolicyEngine(policy);
  return new Set(
    catalog
      .filter(
        ({ agent, tool }) =>
          engine.decide(SCOPES[who], { agent, tool: tool.name, readOnly: tool.annotations?.readOnlyHint === true }).allowed,
      )
      .map(({ agent, tool }) => `${agent}__${tool.name}`),
  );
}

/** The listing shows exactly what the policy allows, in every view: never a denied tool, and nothing allowed hidden. */
async function expectListingsMatch(policy: ToolPolicy, who: Who): Promise<void> {
  const want = allowed(policy, who);
  const seen = await views(who);
  expect(seen.mesh, `${who} /mcp`).toEqual([...want].sort());
  expect(seen.hr, `${who} /agents/hr/mcp`).toEqual(
    [...want]
      .filter((n) => n.startsWith("hr__"))
      .map((n) => n.slice(4))
      .sort(),
  );
  expect(seen.knowledge, `${who} /agents/knowledge/mcp`).toEqual(
    [...want]
      .filter((n) => n.startsWith("knowledge__"))
      .map((n) => n.slice("knowledge__".length))
      .sort(),
  );
  // Search ranks by words: everything it finds is allowed.
  for (const name of seen.search) expect(want.has(name), `${who} search found ${name}`).toBe(true);
}

describe("the tool policy through every gateway view", () => {
  it("two callers with different scopes see different tools, each exactly what the policy allows", async () => {
    await expectListingsMatch(POLICY, "reader");
    await expectListingsMatch(POLICY, "booker");
    const r = await views("reader");
    const b = await views("booker");
    expect(r.mesh).not.toContain("hr__request_leave");
    expect(b.mesh).toContain("hr__request_leave");
    expect(b.search).toContain("hr__request_leave");
    expect(r.search).not.toContain("hr__request_leave");
    // Denied to everyone by rule 3, though hr:read opens hr.
    for (const v of [r, b]) expect([...v.mesh, ...v.hr, ...v.search]).not.toContain("hr__list_direct_reports");
  }, 60_000);

  it("a forbidden call is refused naming the missing permission, the scopes that grant it and the trace", async () => {
    const c = await connectHttp(gateway.url, { token: tokens["reader@gateway"]! });
    try {
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
      const refused = await c
        .callTool({
          name: "hr__request_leave",
          arguments: { employee_id: "E1001", leave_type: "personal", start_date: "2026-11-02", end_date: "2026-11-02" },
          _meta: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
        })
        .then(
          () => undefined,
          (e: unknown) => e as { code: number; message: string; data: unknown },
        );
      expect(refused?.message).toContain(
        `Forbidden: hr.request_leave (state-changing) needs one of the scopes hr:book; the caller's scopes allow only read-only tools of it; the caller holds mesh hr:read. Trace ${traceId}.`,
      );
      expect(refused).toMatchObject({
        code: FORBIDDEN_ERROR_CODE,
        data: {
          error: "insufficient_scope",
          permission: "hr.request_leave",
          access: "write",
          requiredScopes: ["hr:book"],
          scope: "hr:book",
          grantedScopes: ["mesh", "hr:read"],
          traceId,
        },
      });
      expect(gateway.logs().some((l) => l["msg"] === "call refused by the tool policy" && l["traceId"] === traceId)).toBe(true);
      // A tool a deny rule closes says which rule.
      await expect(c.callTool({ name: "hr__list_direct_reports", arguments: { employee_id: "E1002" } })).rejects.toMatchObject({
        code: FORBIDDEN_ERROR_CODE,
        data: { permission: "hr.list_direct_reports", deniedByRule: 3 },
      });
    } finally {
      await c.close();
    }
    // Through the dynamic view's call_tool as well.
    const d = await connectHttp(dynamic.url, { token: tokens["reader@dynamic"]! });
    await expect(d.callTool({ name: "call_tool", arguments: { name: "hr__request_leave", arguments: {} } })).rejects.toMatchObject({
      code: FORBIDDEN_ERROR_CODE,
      data: { permission: "hr.request_leave" },
    });
    await d.close();
  }, 60_000);

  it("mesh policy set / show / test, and a new policy reaches every gateway without a restart", async () => {
    const file = join(tmpdir(), `policy-${process.pid}.json`);
    writeFileSync(file, JSON.stringify(POLICY_2));
    const set = await mesh(["policy", "set", file, "--json"], cli());
    expect(set.code, set.stderr).toBe(0);
    expect(JSON.parse(set.stdout)).toEqual({ key: POLICY_KV_KEY, rules: 3 });
    const shown = await mesh(["policy", "show", "--json"], cli());
    expect(JSON.parse(shown.stdout).policy).toEqual(POLICY_2);
    const tested = await mesh(
      ["policy", "test", "--scopes", "mesh hr:read", "hr.request_leave", "knowledge.list_documents", "--json"],
      cli(),
    );
    expect(tested.code, tested.stderr).toBe(0);
    expect(JSON.parse(tested.stdout).results).toEqual([
      expect.objectContaining({ tool: "hr.request_leave", allowed: false, requiredScopes: ["hr:book"] }),
      expect.objectContaining({ tool: "knowledge.list_documents", allowed: false, requiredScopes: ["hr:book"] }),
    ]);
    const text = await mesh(["policy", "test", "--scopes", "mesh hr:book", "hr.request_leave"], cli());
    expect(text.stdout).toMatch(/allow hr\.request_leave/);
    // Hot reload: the readers' listings follow the new policy on both gateways.
    await eventually(async () => !(await views("reader")).mesh.some((n) => n.startsWith("knowledge__")), {
      timeoutMs: 10_000,
      what: "the new policy at the gateway",
    });
    await expectListingsMatch(POLICY_2, "reader");
    await expectListingsMatch(POLICY_2, "booker");
    // A bad document is refused before anything is stored.
    writeFileSync(file, JSON.stringify({ version: 1, rules: [{ scopes: [], allow: ["hr"] }] }));
    const bad = await mesh(["policy", "set", file], cli());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/The tool policy at .* is not valid: rules\.0\.scopes: /);
    expect(JSON.parse((await mesh(["policy", "show", "--json"], cli())).stdout).policy).toEqual(POLICY_2);
    const help = await mesh(["policy", "--help"], cli());
    expect(help.stdout).toMatch(/role:static-token/);
  }, 90_000);
});
