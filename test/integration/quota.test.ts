// Quotas at the gateway (token buckets per caller and tool, in the policy in Consul KV): the
// caller over its limit is refused with when to come back, others are not, the counter says so;
// and toolmesh's own caller (MeshClient) and the CLI wait a refusal out when it fits their time.
import { fileURLToPath } from "node:url";
import type { CallToolResult } from "@modelcontextprotocol/client";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { callerTokens } from "../../src/client/tokens.ts";
import { POLICY_KV_KEY, type ToolPolicy } from "../../src/gateway/policy.ts";
import { RATE_LIMITED_ERROR_CODE } from "../../src/protocol/codes.ts";
import { resultText } from "../../src/protocol/results.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";
import { startAuthServer, type TestClient } from "../helpers/oidc.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
const MESH_TOKEN = "quota-test-mesh-token-0123456789abcdef";
/** The probe's retry-after: long enough that a deadline shorter than it still leaves time for discovery on a busy machine. */
const RETRY_MS = 5_000;
const heavy: TestClient = { clientId: "heavy", clientSecret: "heavy-secret-0123456789", scope: "mesh" };
const light: TestClient = { clientId: "light", clientSecret: "light-secret-0123456789", scope: "mesh" };

const POLICY: ToolPolicy = {
  version: 1,
  rules: [{ scopes: ["mesh"], allow: ["*"], deny: [], access: "any" }],
  quotas: [{ scopes: ["mesh"], tools: ["hr.get_leave_policy"], limit: 2, interval: "1h", per: "tool" }],
};

let consul: TestConsul;
let as: Awaited<ReturnType<typeof startAuthServer>>;
const agents: TestAgent[] = [];
let gateway: TestAgent;
let origin: string;

beforeAll(async () => {
  consul = await startTestConsul();
  as = await startAuthServer({ host: "127.0.0.1", accounts: {}, clients: [heavy, light] });
  await consul.client.kvSet(POLICY_KV_KEY, JSON.stringify(POLICY));
  agents.push(
    ...(await Promise.all([
      spawnAgent("hr", consul.address, { env: { MESH_TOKEN } }),
      spawnAgent(PROBE, consul.address, { env: { MESH_TOKEN, PROBE_RATE_LIMIT_MS: String(RETRY_MS) } }),
    ])),
  );
  await eventually(async () => (await consul.client.healthService("probe", { passing: true })).value.length === 1, {
    timeoutMs: 5_000,
    what: "agents passing",
  });
  gateway = await spawnAgent(GATEWAY, consul.address, {
    readyMessage: "gateway ready",
    env: { MESH_TOKEN, MESH_OAUTH_ISSUER: as.issuer },
  });
  origin = new URL(gateway.url).origin;
}, 60_000);
afterAll(async () => {
  await gateway?.process.stop(2_000);
  await Promise.all(agents.map((a) => a.process.stop(2_000)));
  await as?.close();
  await consul?.stop();
});

/** The gateway's refusals counter, by caller and tool. */
async function refusals(): Promise<Record<string, number>> {
  const res = await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${MESH_TOKEN}` } });
  const family = parsePrometheusTextFormat(await res.text()).find((f) => f.name === "toolmesh_quota_refusals_total");
  return Object.fromEntries((family?.metrics ?? []).map((m) => [`${m.labels?.["caller"]} ${m.labels?.["tool"]}`, Number(m.value)]));
}

describe("quotas at the gateway", () => {
  it("the caller over its limit gets a retryable refusal with retry-after; another caller and another tool are unaffected; the counter shows it", async () => {
    const resource = `${origin}/`;
    const [heavyToken, lightToken] = await Promise.all([
      as.clientCredentials(heavy, { resource, scope: "mesh" }),
      as.clientCredentials(light, { resource, scope: "mesh" }),
    ]);
    const h = await connectHttp(gateway.url, { token: heavyToken, name: "heavy" });
    const l = await connectHttp(gateway.url, { token: lightToken, name: "light" });
    const policy = (c: typeof h) =>
      c.callTool({ name: "hr__get_leave_policy", arguments: { leave_type: "sick" } }) as Promise<CallToolResult>;
    try {
      for (let i = 0; i < 2; i++) expect((await policy(h)).isError).toBeFalsy();
      const refused = await policy(h).then(
        () => undefined,
        (e: unknown) => e as { code: number; message: string; data: { retryAfterMs: number; retryable: boolean } },
      );
      expect(refused).toMatchObject({
        code: RATE_LIMITED_ERROR_CODE,
        data: { retryable: true, limit: 2, interval: "1h", tool: "hr.get_leave_policy" },
      });
      // Two of two an hour used: the next token is half an hour away.
      expect(refused!.data.retryAfterMs).toBeGreaterThan(25 * 60_000);
      expect(refused!.data.retryAfterMs).toBeLessThanOrEqual(30 * 60_000);
      expect(refused!.message).toMatch(
        /Rate limited: this caller may call hr\.get_leave_policy 2 time\(s\) per 1h; nothing ran\. Retry after \d+ s/,
      );
      // The same refusal over plain HTTP carries Retry-After (seconds).
      const raw = await fetch(gateway.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-protocol-version": "2026-07-28",
          "mcp-method": "tools/call",
          "mcp-name": "hr__get_leave_policy",
          authorization: `Bearer ${heavyToken}`,
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 9,
          method: "tools/call",
          params: {
            name: "hr__get_leave_policy",
            arguments: { leave_type: "sick" },
            _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} },
          },
        }),
      });
      const body = (await raw.json()) as { error?: { code: number } };
      expect(body.error?.code, JSON.stringify(body)).toBe(RATE_LIMITED_ERROR_CODE);
      expect(Number(raw.headers.get("retry-after"))).toBeGreaterThan(25 * 60);
      // Its other tools, and the other caller, are not limited.
      const balance = (await h.callTool({ name: "hr__get_leave_balance", arguments: { employee_id: "E1001" } })) as CallToolResult;
      expect(balance.isError, resultText(balance)).toBeFalsy();
      for (let i = 0; i < 2; i++) expect((await policy(l)).isError).toBeFalsy();
      expect(await refusals()).toEqual({ "oauth:heavy hr.get_leave_policy": 2 });
    } finally {
      await Promise.all([h.close(), l.close()]);
    }
  }, 60_000);
});

describe("toolmesh's caller and the CLI honour a refusal's retry-after", () => {
  it("MeshClient waits it out within its deadline, and gives RATE_LIMITED (retryable, retryAfterMs) when it does not fit", async () => {
    // The probe's own credential, derived from the mesh token the test holds.
    const caller = new MeshClient({ consul: consul.client, callerName: "quota-test", token: callerTokens({ MESH_TOKEN }) });
    try {
      const r = await caller.callTool("probe", "limited", { key: "waits", refusals: 1 }, { timeoutMs: 30_000 });
      expect(r.structuredContent).toEqual({ key: "waits", calls: 2 });
      await expect(
        caller.callTool("probe", "limited", { key: "short", refusals: 1 }, { timeoutMs: RETRY_MS - 1_000 }),
      ).rejects.toMatchObject({
        code: "RATE_LIMITED",
        retryable: true,
        details: { retryAfterMs: RETRY_MS },
      });
    } finally {
      await caller.close();
    }
  }, 60_000);

  it("mesh call waits it out; past its --timeout it exits 3 saying when to retry", async () => {
    const env = { CONSUL_HTTP_ADDR: consul.address, MESH_TOKEN };
    const ok = await mesh(["call", "probe.limited", JSON.stringify({ key: "cli", refusals: 1 }), "--json"], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/"calls": 2/);
    const late = await mesh(
      ["call", "probe.limited", JSON.stringify({ key: "cli-late", refusals: 1 }), "--timeout", String(RETRY_MS - 1_000)],
      env,
    );
    expect(late.code, late.stderr).toBe(3);
    expect(late.stderr).toMatch(/Rate limited: retry after 5000 ms\./);
  }, 60_000);
});
