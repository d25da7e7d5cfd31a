// The pure parts of the edge's authorization: signed identities, the tool policy, token buckets.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { identityKey, IdentityVerifier, IDENTITY_ASSERTION_TTL_MS, identityKeys, signIdentity } from "../../src/http/identity.ts";
import { IDENTITY_META } from "../../src/protocol/keys.ts";
import { agentCredential } from "../../src/protocol/credentials.ts";
import { parsePolicy, PolicyEngine, type ToolPolicy } from "../../src/gateway/policy.ts";
import { TokenBuckets } from "../../src/gateway/quota.ts";

const MESH = "unit-mesh-token-0123456789abcdef";
const alice = {
  principal: "oauth:alice",
  kind: "oauth" as const,
  subject: "alice",
  clientId: "app",
  scopes: ["mesh"],
  claims: { employee_id: "E1001" },
};

describe("signed identities", () => {
  const hr = new IdentityVerifier("hr", [MESH]);
  const sign = (o: Partial<{ token: string; agent: string; now: number }> = {}) =>
    signIdentity(identityKey(o.token ?? MESH, o.agent ?? "hr"), {
      agent: o.agent ?? "hr",
      signer: "gateway",
      identity: alice,
      ...(o.now ? { now: o.now } : {}),
    });

  it("an agent accepts the mesh's assertion for its kind, and nothing else", () => {
    expect(hr.check({ [IDENTITY_META]: sign() })).toEqual({ ok: true, identity: alice, signer: "gateway" });
    expect(hr.check({})).toBeUndefined();
    expect(hr.check({ [IDENTITY_META]: sign({ token: "another-token-0123456789abcdef" }) })).toMatchObject({
      ok: false,
      reason: /signature/,
    });
    // Made for finance with the key for finance: hr's keys do not verify it.
    expect(hr.check({ [IDENTITY_META]: sign({ agent: "finance" }) })).toMatchObject({ ok: false });
    expect(hr.check({ [IDENTITY_META]: sign({ now: Date.now() - IDENTITY_ASSERTION_TTL_MS - 1 }) })).toMatchObject({
      ok: false,
      reason: /expired/,
    });
    expect(hr.check({ [IDENTITY_META]: "oauth:alice" })).toMatchObject({ ok: false, reason: /not a tmi1\. assertion/ });
  });

  it("accepts assertions signed with any of its mesh tokens during a rotation", () => {
    const rotating = new IdentityVerifier("hr", ["next-mesh-token-0123456789abcd", MESH]);
    expect(rotating.check({ [IDENTITY_META]: sign() })?.ok).toBe(true);
  });

  it("no bit of an assertion can be changed without the check failing", () => {
    const good = sign();
    fc.assert(
      fc.property(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 25 }), (at, delta) => {
        const changed = good.slice(0, at) + String.fromCharCode(((good.charCodeAt(at) - 32 + delta) % 95) + 32) + good.slice(at + 1);
        fc.pre(changed !== good);
        expect(hr.check({ [IDENTITY_META]: changed })?.ok).not.toBe(true);
      }),
      { numRuns: 300, seed: 25 },
    );
  });

  it("a caller derives the key from MESH_TOKEN_<AGENT> when it is a token, never from a tmk1. credential", () => {
    expect(identityKeys({ MESH_TOKEN: MESH })("hr")).toEqual(identityKey(MESH, "hr"));
    expect(identityKeys({ MESH_TOKEN: MESH, MESH_TOKEN_HR: "hr-own-token-0123456789abc" })("hr")).toEqual(
      identityKey("hr-own-token-0123456789abc", "hr"),
    );
    expect(identityKeys({ MESH_TOKEN: MESH, MESH_TOKEN_HR: agentCredential(MESH, "hr") })("hr")).toEqual(identityKey(MESH, "hr"));
    expect(identityKeys({})("hr")).toBeUndefined();
  });
});

const POLICY: ToolPolicy = parsePolicy(
  JSON.stringify({
    version: 1,
    rules: [
      { scopes: ["hr:read"], allow: ["hr"], access: "read" },
      { scopes: ["hr:book"], allow: ["hr.request_leave"] },
      { scopes: ["*"], deny: ["hr.secret_*"] },
    ],
  }),
);

describe("the tool policy", () => {
  const engine = new PolicyEngine(POLICY);
  const read = { agent: "hr", tool: "get_employee", readOnly: true };
  const book = { agent: "hr", tool: "request_leave", readOnly: false };

  it("allows what a held rule opens (read-only tools only under access read), and a deny wins", () => {
    expect(engine.decide(["hr:read"], read).allowed).toBe(true);
    expect(engine.decide(["hr:read"], book)).toMatchObject({ allowed: false, permission: "hr.request_leave", requiredScopes: ["hr:book"] });
    expect(engine.decide(["hr:book"], book).allowed).toBe(true);
    expect(engine.decide(["hr:read"], { agent: "hr", tool: "secret_salaries", readOnly: true })).toMatchObject({
      allowed: false,
      deniedBy: 2,
    });
    expect(engine.decide([], read)).toMatchObject({ allowed: false, requiredScopes: ["hr:read"] });
    expect(new PolicyEngine(undefined).decide([], book).allowed).toBe(true);
  });

  it("refuses a document that is not a policy, saying where", () => {
    expect(() => parsePolicy("{")).toThrow(/is not JSON/);
    expect(() => parsePolicy(JSON.stringify({ version: 1, rules: [{ scopes: ["x"], allow: ["Hr Tools"] }] }))).toThrow(
      /rules\.0\.allow\.0: expected "agent"/,
    );
    expect(() => parsePolicy(JSON.stringify({ version: 2, rules: [] }))).toThrow(/version/);
  });

  it("finds the quota of a caller and tool: one bucket per tool, or one per caller", () => {
    const q = new PolicyEngine(
      parsePolicy(
        JSON.stringify({
          version: 1,
          rules: [],
          quotas: [
            { scopes: ["*"], tools: ["hr.request_leave"], limit: 2, interval: "1m" },
            { scopes: ["mesh"], tools: ["hr"], limit: 10, interval: "1s", per: "caller" },
          ],
        }),
      ),
    );
    const a = q.quotaFor(["mesh"], "hr", "request_leave")!;
    expect(a.quota.limit).toBe(2);
    expect(a.ratePerMs).toBeCloseTo(2 / 60_000);
    const b1 = q.quotaFor(["mesh"], "hr", "get_employee")!;
    const b2 = q.quotaFor(["mesh"], "hr", "find_employee")!;
    expect(b1.bucket("oauth:x")).toBe(b2.bucket("oauth:x"));
    expect(b1.bucket("oauth:x")).not.toBe(b1.bucket("oauth:y"));
    expect(q.quotaFor([], "hr", "get_employee")).toBeUndefined();
  });
});

describe("token buckets", () => {
  it("gives a burst of `limit`, then one call per 1/rate, and says how long until the next", () => {
    let now = 0;
    const buckets = new TokenBuckets({ now: () => now });
    const rate = 2 / 1_000; // 2 per second
    expect(buckets.take("k", 2, rate)).toEqual({ ok: true, left: 1 });
    expect(buckets.take("k", 2, rate)).toEqual({ ok: true, left: 0 });
    expect(buckets.take("k", 2, rate)).toEqual({ ok: false, retryAfterMs: 500 });
    now = 250;
    expect(buckets.take("k", 2, rate)).toEqual({ ok: false, retryAfterMs: 250 });
    expect(buckets.take("other", 2, rate).ok).toBe(true);
    now = 500;
    expect(buckets.take("k", 2, rate).ok).toBe(true);
    now = 60_000;
    expect(buckets.take("k", 2, rate)).toEqual({ ok: true, left: 1 }); // refilled to the limit, no more
  });
});
