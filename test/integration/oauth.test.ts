// The gateway as an OAuth 2.1 resource server, against a real authorization server nobody here
// wrote (oidc-provider, started in the test on a random 127.x loopback address), with real agent
// processes, a real gateway and Consul: metadata, challenges, client credentials, authorization
// code with PKCE through the v2 SDK client's own OAuth flow, the refusals, and the user's
// identity carried to agents signed (no token passthrough; a forged identity is refused).
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Client, StreamableHTTPClientTransport, UnauthorizedError, type CallToolResult } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentCredential } from "../../src/protocol/credentials.ts";
import { identityKey, signIdentity } from "../../src/http/identity.ts";
import { IDENTITY_META } from "../../src/protocol/keys.ts";
import { PRINCIPAL_META } from "../../src/protocol/keys.ts";
import { POLICY_KV_KEY } from "../../src/gateway/policy.ts";
import { IDENTITY_ERROR_CODE } from "../../src/protocol/codes.ts";
import { resultText } from "../../src/protocol/results.ts";
import { HeadlessOAuthProvider } from "../fixtures/headlessOAuth.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";
import { authorizeInBrowser, startAuthServer, type TestAuthServer, type TestClient } from "../helpers/oidc.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const MESH_TOKEN = "oauth-test-mesh-token-0123456789abcdef";
const STATIC_CLIENT = "oauth-test-static-client-token-42";

const reader: TestClient = { clientId: "reader", clientSecret: "reader-secret-0123456789", scope: "mesh hr:read" };
const noMesh: TestClient = { clientId: "no-mesh", clientSecret: "no-mesh-secret-0123456789", scope: "hr:read" };
const brief: TestClient = { clientId: "brief", clientSecret: "brief-secret-0123456789", scope: "mesh hr:read", ttl: 1 };
const opaque: TestClient = { clientId: "opaque", clientSecret: "opaque-secret-0123456789", scope: "mesh hr:read", opaque: true };
const GATEWAY_AS_CLIENT = { clientId: "toolmesh-gateway", clientSecret: "gateway-introspection-secret-0123" };

let consul: TestConsul;
let as: Awaited<ReturnType<typeof startAuthServer>>;
let otherAs: TestAuthServer;
const agents: Record<string, TestAgent> = {};
let gateway: TestAgent;
/** The gateway's origin and resource identifier (its URL, the default MESH_OAUTH_RESOURCE). */
let origin: string;
let resource: string;

beforeAll(async () => {
  consul = await startTestConsul();
  // On 127.0.0.1 (a random port): the SDK client sends credentials over plain http only to
  // 127.0.0.1 / localhost / ::1, never to another loopback address.
  as = await startAuthServer({
    host: "127.0.0.1",
    accounts: { alice: { employeeId: "E1001" }, bob: { employeeId: "E1002" } },
    clients: [reader, noMesh, brief, opaque],
    resourceServers: [GATEWAY_AS_CLIENT],
  });
  // Another authorization server with the same signing key: its tokens verify, but it is not the gateway's issuer.
  otherAs = await startAuthServer({ accounts: {}, clients: [reader], key: as.key });
  // Reading and asking for every caller with the mesh scope; booking leave takes hr:book.
  await consul.client.kvSet(
    POLICY_KV_KEY,
    JSON.stringify({
      version: 1,
      rules: [
        { scopes: ["mesh", "role:static-token"], allow: ["hr"], access: "read" },
        { scopes: ["mesh", "role:static-token"], allow: ["orchestrator"] },
        { scopes: ["hr:book"], allow: ["hr.request_leave"] },
      ],
    }),
  );
  const started = await Promise.all(["hr", "orchestrator"].map((a) => spawnAgent(a, consul.address, { env: { MESH_TOKEN } })));
  for (const a of started) agents[a.instanceId.split("-")[0]!] = a;
  await eventually(async () => (await consul.client.healthService("orchestrator", { passing: true })).value.length === 1, {
    timeoutMs: 5_000,
    what: "agents passing",
  });
  gateway = await spawnAgent(GATEWAY, consul.address, {
    readyMessage: "gateway ready",
    env: {
      MESH_TOKEN,
      MESH_GATEWAY_TOKEN: STATIC_CLIENT,
      MESH_OAUTH_ISSUER: as.issuer,
      MESH_OAUTH_REQUIRED_SCOPES: "mesh",
      MESH_OAUTH_STEP_UP: "1",
      MESH_OAUTH_SCOPES_SUPPORTED: "mesh hr:read hr:book hr:admin orchestrator:ask",
      MESH_OAUTH_INTROSPECTION_URL: `${as.issuer}/token/introspection`,
      MESH_OAUTH_CLIENT_ID: GATEWAY_AS_CLIENT.clientId,
      MESH_OAUTH_CLIENT_SECRET: GATEWAY_AS_CLIENT.clientSecret,
    },
  });
  origin = new URL(gateway.url).origin;
  resource = `${origin}/`;
  await eventually(async () => (await fetch(`${origin}/agents/orchestrator/mcp`, { method: "POST" })).status !== 404, {
    timeoutMs: 10_000,
    what: "the gateway's orchestrator view",
  });
}, 60_000);
afterAll(async () => {
  await gateway?.process.stop(2_000);
  await Promise.all(Object.values(agents).map((a) => a.process.stop(2_000)));
  await Promise.all([as?.close(), otherAs?.close()]);
  await consul?.stop();
});

const ENVELOPE = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} };
const LIST = { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: ENVELOPE } };
/** One 2026-07-28 request to the gateway, as any HTTP client would send it. */
function post(path: string, authorization?: string, body: unknown = LIST): Promise<Response> {
  return fetch(`${origin}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": (body as { method: string }).method,
      ...(authorization ? { authorization } : {}),
    },
    body: JSON.stringify(body),
  });
}

async function refusal(res: Response): Promise<{ status: number; challenge: string; message: string }> {
  const body = (await res.json()) as { error?: { message: string } };
  return { status: res.status, challenge: res.headers.get("www-authenticate") ?? "", message: body.error?.message ?? "" };
}

describe("protected-resource metadata and challenges (RFC 9728, RFC 6750)", () => {
  it("serves the metadata at the well-known path and its /mcp-suffixed form, naming this resource and its issuer", async () => {
    for (const path of ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]) {
      const res = await fetch(`${origin}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
      expect(await res.json()).toMatchObject({
        resource,
        authorization_servers: [as.issuer],
        bearer_methods_supported: ["header"],
        scopes_supported: ["mesh", "hr:read", "hr:book", "hr:admin", "orchestrator:ask"],
      });
    }
  });

  it("a request without a token gets 401 with WWW-Authenticate pointing at the metadata, on every view", async () => {
    for (const path of ["/mcp", "/agents/hr/mcp"]) {
      const r = await refusal(await post(path));
      expect(r.status, path).toBe(401);
      // No scope named: the client asks for the scopes_supported of the metadata.
      expect(r.challenge).toBe(`Bearer realm="toolmesh", resource_metadata="${origin}/.well-known/oauth-protected-resource"`);
      expect(r.message).toMatch(/requires an OAuth access token for .* from http:\/\/127\./);
    }
  });
});

describe("client credentials", () => {
  it("a token for this resource with the required scope lists and calls tools; the static client token still works", async () => {
    const token = await as.clientCredentials(reader, { resource, scope: "mesh hr:read" });
    const c = await connectHttp(gateway.url, { token, name: "reader" });
    try {
      expect((await c.listTools()).tools.map((t) => t.name)).toContain("hr__get_leave_policy");
      const r = (await c.callTool({ name: "hr__get_leave_policy", arguments: { leave_type: "sick" } })) as CallToolResult;
      expect(r.isError, resultText(r)).toBeFalsy();
    } finally {
      await c.close();
    }
    const s = await connectHttp(gateway.url, { token: STATIC_CLIENT, name: "static" });
    expect((await s.listTools()).tools.length).toBeGreaterThan(0);
    await s.close();
  });

  it("an opaque token is checked by introspection (RFC 7662) with the gateway's own client credentials", async () => {
    const token = await as.clientCredentials(opaque, { resource, scope: "mesh hr:read" });
    expect(token.split(".")).toHaveLength(1);
    const res = await post("/mcp", `Bearer ${token}`);
    expect(res.status, await res.clone().text()).toBe(200);
    await res.body?.cancel();
  });

  it("refuses a token for another resource (audience), naming both", async () => {
    const token = await as.clientCredentials(reader, { resource: "http://127.0.0.1:9/elsewhere", scope: "mesh hr:read" });
    const r = await refusal(await post("/mcp", `Bearer ${token}`));
    expect(r.status).toBe(401);
    expect(r.challenge).toMatch(/^Bearer error="invalid_token", .*resource_metadata="/);
    expect(r.message).toBe(`Unauthorized: the token is for "http://127.0.0.1:9/elsewhere", not for this resource (${resource}).`);
  });

  it("refuses a token from another issuer, even one signed with a key the gateway trusts", async () => {
    const token = await otherAs.clientCredentials(reader, { resource, scope: "mesh hr:read" });
    const r = await refusal(await post("/mcp", `Bearer ${token}`));
    expect(r.status).toBe(401);
    expect(r.message).toBe(`Unauthorized: the token was issued by ${otherAs.issuer}, not by ${as.issuer}.`);
  });

  it("refuses a token without the required scope with 403 insufficient_scope naming it", async () => {
    const token = await as.clientCredentials(noMesh, { resource, scope: "hr:read" });
    const r = await refusal(await post("/mcp", `Bearer ${token}`));
    expect(r.status).toBe(403);
    expect(r.challenge).toMatch(/^Bearer error="insufficient_scope", .*scope="mesh", resource_metadata="/);
    expect(r.message).toMatch(/lacks the scope this endpoint requires \(mesh\)/);
  });

  it("refuses an expired token (401 invalid_token), and a token that is no token at all", async () => {
    const token = await as.clientCredentials(brief, { resource, scope: "mesh hr:read" });
    // Valid for one second: accepted until it expires, then refused (a bounded wait for the clock).
    await eventually(async () => (await refusal(await post("/mcp", `Bearer ${token}`))).status === 401, {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: "the one-second token to expire",
    });
    const r = await refusal(await post("/mcp", `Bearer ${token}`));
    expect(r.challenge).toMatch(/error="invalid_token"/);
    expect(r.message).toMatch(/^Unauthorized: (Token has expired|the access token has expired)\.$/);
    const junk = await refusal(await post("/mcp", "Bearer not-a-token-at-all"));
    expect(junk.status).toBe(401);
    expect(junk.message).toBe("Unauthorized: the token is not active (introspection).");
  });
});

/** A user's client: the SDK's own OAuth flow (discovery, registration, PKCE, resource, iss), the user's side played by the test. */
async function userClient(url: string, user: string, consent?: string[]): Promise<Client> {
  as.loginAs = user;
  if (consent) as.consent = consent;
  else delete as.consent;
  const provider = new HeadlessOAuthProvider(`oauth-test-${user}`, undefined, authorizeInBrowser);
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const first = new Client({ name: `user-${user}`, version: "1" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
  await expect(first.connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);
  const back = provider.authorizationResult()!;
  expect(back.iss).toBe(as.issuer); // RFC 9207: the authorization response names its issuer
  await transport.finishAuth(back.code, back.iss);
  expect(provider.tokens()?.access_token).toBeTruthy();
  const client = new Client({ name: `user-${user}`, version: "1" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
  return client;
}

describe("authorization code with PKCE, the v2 SDK client's own flow, and the user's identity at the agents", () => {
  it("alice books leave for herself, is refused for someone else; with hr:admin bob books for anyone", async () => {
    const alice = await userClient(gateway.url, "alice", ["mesh", "hr:read", "hr:book"]);
    try {
      const own = (await alice.callTool({
        name: "hr__request_leave",
        arguments: { employee_id: "E1001", leave_type: "personal", start_date: "2026-11-02", end_date: "2026-11-02" },
      })) as CallToolResult;
      expect(own.isError, resultText(own)).toBeFalsy();
      expect(resultText(own)).toMatch(/^Booked 1 working day\(s\) of personal leave for Alice Chen/);
      const other = (await alice.callTool({
        name: "hr__request_leave",
        arguments: { employee_id: "E1004", leave_type: "personal", start_date: "2026-11-03", end_date: "2026-11-03" },
      })) as CallToolResult;
      expect(other.isError).toBe(true);
      expect(resultText(other)).toBe(
        "You (E1001) may book leave only for yourself, not for E1004; booking for others needs the hr:admin scope.",
      );
    } finally {
      await alice.close();
    }
    const bob = await userClient(gateway.url, "bob", ["mesh", "hr:read", "hr:book", "hr:admin"]);
    try {
      const forOther = (await bob.callTool({
        name: "hr__request_leave",
        arguments: { employee_id: "E1004", leave_type: "personal", start_date: "2026-11-04", end_date: "2026-11-04" },
      })) as CallToolResult;
      expect(forOther.isError, resultText(forOther)).toBeFalsy();
      expect(resultText(forOther)).toMatch(/for David Kim/);
    } finally {
      await bob.close();
    }
  }, 60_000);

  it("a call the policy refuses for a missing scope is a 403 step-up challenge: the SDK client re-authorizes for it, then the call goes through", async () => {
    as.loginAs = "alice";
    as.consent = ["mesh", "hr:read"]; // at first alice grants no booking
    const provider = new HeadlessOAuthProvider("oauth-test-step-up", undefined, authorizeInBrowser);
    const transport = () => new StreamableHTTPClientTransport(new URL(gateway.url), { authProvider: provider });
    const pin = { versionNegotiation: { mode: { pin: "2026-07-28" as const } } };
    const first = new Client({ name: "step-up", version: "1" }, pin);
    const t1 = transport();
    await expect(first.connect(t1)).rejects.toBeInstanceOf(UnauthorizedError);
    const granted = provider.authorizationResult()!;
    await t1.finishAuth(granted.code, granted.iss);
    expect(provider.tokens()?.scope?.split(" ")).not.toContain("hr:book");
    const client = new Client({ name: "step-up", version: "1" }, pin);
    const t2 = transport();
    await client.connect(t2);
    const book = () =>
      client.callTool({
        name: "hr__request_leave",
        arguments: { employee_id: "E1001", leave_type: "personal", start_date: "2026-11-09", end_date: "2026-11-09" },
      }) as Promise<CallToolResult>;
    // Refused with 403 insufficient_scope scope="mesh hr:read hr:book": the client asks the user again, who now agrees.
    delete as.consent;
    await expect(book()).rejects.toBeInstanceOf(UnauthorizedError);
    const upgraded = provider.authorizationResult()!;
    await t2.finishAuth(upgraded.code, upgraded.iss);
    expect(provider.tokens()?.scope?.split(" ")).toContain("hr:book");
    const booked = await book();
    expect(booked.isError, resultText(booked)).toBeFalsy();
    expect(resultText(booked)).toMatch(/^Booked 1 working day\(s\) of personal leave for Alice Chen, 2026-11-09/);
    await client.close();
  }, 60_000);

  it("the identity goes on with the orchestrator's own calls: asked through it, hr still books only for the caller", async () => {
    const url = `${origin}/agents/orchestrator/mcp`;
    const alice = await userClient(url, "alice", ["mesh", "orchestrator:ask"]);
    const ask = (question: string, session_id?: string) =>
      alice.callTool({ name: "ask", arguments: { question, ...(session_id ? { session_id } : {}) } }) as Promise<CallToolResult>;
    try {
      const other = await ask("Book 1 day of vacation for Keiko Sato starting 2026-12-14");
      const session = (other.structuredContent as { session_id: string }).session_id;
      const refused = await ask("yes", session);
      expect(resultText(refused)).toMatch(/may book leave only for yourself, not for E\d{4}; booking for others needs the hr:admin scope/);
      const own = await ask("Book 1 day of vacation for Alice Chen starting 2026-12-15");
      const booked = await ask("yes", (own.structuredContent as { session_id: string }).session_id);
      expect(resultText(booked)).toMatch(/^Booked 1 working day\(s\) of vacation leave for Alice Chen, 2026-12-15/);
    } finally {
      await alice.close();
    }
  }, 60_000);

  it("a conversation belongs to its subject: alice continues it with a new token; another caller, or a forged or unsigned identity, cannot", async () => {
    const url = `${origin}/agents/orchestrator/mcp`;
    const session = `oauth-own-${randomUUID()}`;
    const ask = (c: Client, question: string) =>
      c.callTool({ name: "ask", arguments: { question, session_id: session } }) as Promise<CallToolResult>;
    const first = await userClient(url, "alice", ["mesh", "orchestrator:ask"]);
    expect(resultText(await ask(first, "Who is Rosa Moreno's manager?"))).toMatch(/^Rosa Moreno's manager: Ines Silva/);
    await first.close();
    // A new login (a new access token): the same subject, the same conversation.
    const again = await userClient(url, "alice", ["mesh", "orchestrator:ask"]);
    expect(resultText(await ask(again, "and her manager?"))).toMatch(/^Ines Silva's manager: Bob Okafor/);
    await again.close();
    // A machine client of the gateway is another caller.
    const machine = await connectHttp(url, { token: await as.clientCredentials(reader, { resource, scope: "mesh" }) });
    const stolen = await ask(machine, "and her manager?");
    expect(stolen.isError).toBe(true);
    expect(resultText(stolen)).toMatch(/this session belongs to another caller/);
    await machine.close();

    // Straight at the orchestrator with its own kind's credential (a mesh member, not the gateway):
    const direct = await connectHttp(agents["orchestrator"]!.url, { token: agentCredential(MESH_TOKEN, "orchestrator") });
    const alice = { principal: "oauth:alice", kind: "oauth" as const, subject: "alice", scopes: ["mesh"], claims: {} };
    const call = (meta: Record<string, unknown>) =>
      direct.callTool({
        name: "ask",
        arguments: { question: "and her manager?", session_id: session },
        _meta: meta,
      }) as Promise<CallToolResult>;
    // an unsigned name is ignored: the caller is itself, not alice;
    const unsigned = await call({ [PRINCIPAL_META]: "oauth:alice" });
    expect(resultText(unsigned)).toMatch(/this session belongs to another caller/);
    // an identity signed with a key that is not the mesh's is refused, nothing run;
    const forged = signIdentity(identityKey("not-the-mesh-token-0123456789", "orchestrator"), {
      agent: "orchestrator",
      signer: "gateway",
      identity: alice,
    });
    await expect(call({ [IDENTITY_META]: forged })).rejects.toMatchObject({
      code: IDENTITY_ERROR_CODE,
      message: expect.stringMatching(/the signature of io\.toolmesh\/identity is not the mesh's for orchestrator/),
    });
    // one the mesh made for hr does not open the orchestrator;
    const forHr = signIdentity(identityKey(MESH_TOKEN, "hr"), { agent: "hr", signer: "gateway", identity: alice });
    await expect(call({ [IDENTITY_META]: forHr })).rejects.toMatchObject({ code: IDENTITY_ERROR_CODE });
    // a tampered one (alice's claims swapped in under another's signature) neither.
    const mallory = signIdentity(identityKey(MESH_TOKEN, "orchestrator"), {
      agent: "orchestrator",
      signer: "gateway",
      identity: { ...alice, principal: "oauth:mallory", subject: "mallory" },
    });
    const [head, , sig] = [mallory.slice(0, 5), mallory.slice(5, mallory.lastIndexOf(".")), mallory.slice(mallory.lastIndexOf(".") + 1)];
    const tampered = `${head}${Buffer.from(JSON.stringify({ aud: "orchestrator", iss: "gateway", exp: Date.now() + 60_000, id: alice })).toString("base64url")}.${sig}`;
    await expect(call({ [IDENTITY_META]: tampered })).rejects.toMatchObject({ code: IDENTITY_ERROR_CODE });
    await direct.close();
  }, 90_000);
});
