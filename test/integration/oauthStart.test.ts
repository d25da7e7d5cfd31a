// The gateway and its authorization server as peers: one that cannot be reached yet is waited
// for (OAuth requests get 503 meanwhile, static tokens work), one whose metadata names another
// issuer is a configuration error that stops the gateway with a message saying what to set.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { freePort } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";
import { startAuthServer } from "../helpers/oidc.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const MESH_TOKEN = "oauth-start-mesh-token-0123456789abcdef";

let consul: TestConsul;
const stops: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  consul = await startTestConsul();
});
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  await consul?.stop();
});

const LIST = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "tools/list",
  params: { _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} } },
});
const post = (url: string, authorization?: string) =>
  fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": "tools/list",
      ...(authorization ? { authorization } : {}),
    },
    body: LIST,
  });

describe("the gateway's authorization server as a peer", () => {
  it("is waited for when it cannot be reached yet: 503 with Retry-After for OAuth, static tokens served, then OAuth once it is up", async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const gateway: TestAgent = await spawnAgent(GATEWAY, consul.address, {
      readyMessage: "gateway ready",
      env: { MESH_TOKEN, MESH_OAUTH_ISSUER: issuer },
    });
    stops.push(() => gateway.process.stop(2_000));
    const waiting = await post(gateway.url);
    expect(waiting.status).toBe(503);
    expect(waiting.headers.get("retry-after")).toBe("1");
    await waiting.body?.cancel();
    const staticOk = await post(gateway.url, `Bearer ${MESH_TOKEN}`);
    expect(staticOk.status).toBe(200);
    await staticOk.body?.cancel();
    const as = await startAuthServer({ host: "127.0.0.1", port, accounts: {}, clients: [] });
    stops.push(() => as.close());
    await eventually(async () => (await post(gateway.url)).status === 401, { timeoutMs: 15_000, what: "the gateway to take OAuth tokens" });
    const challenge = (await post(gateway.url)).headers.get("www-authenticate");
    expect(challenge).toMatch(/resource_metadata="http:\/\/.*\/\.well-known\/oauth-protected-resource"/);
  }, 60_000);

  it("stops with a configuration error naming the setting when the issuer's metadata names another issuer", async () => {
    const as = await startAuthServer({ host: "127.0.0.1", accounts: {}, clients: [] });
    stops.push(() => as.close());
    const wrong = `${as.issuer}/`; // a trailing slash: not the issuer, exactly
    await expect(
      spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready", env: { MESH_TOKEN, MESH_OAUTH_ISSUER: wrong } }),
    ).rejects.toThrow(/names issuer .*not MESH_OAUTH_ISSUER=.*set MESH_OAUTH_ISSUER to its exact issuer/s);
  }, 60_000);
});
