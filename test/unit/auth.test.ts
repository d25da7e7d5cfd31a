// Credentials per agent kind (src/http/auth.ts): what a caller sends, what an agent accepts.
import { describe, expect, it } from "vitest";
import { agentTokens, TokenVerifier } from "../../src/http/auth.ts";
import { callerTokens } from "../../src/client/tokens.ts";
import { AGENT_CREDENTIAL_PREFIX, agentCredential } from "../../src/protocol/credentials.ts";

const MESH = "unit-test-mesh-token-0123456789";
const NEXT = "unit-test-mesh-token-NEXT-98765";
const bearer = (t: string | undefined) => (t === undefined ? undefined : `Bearer ${t}`);

describe("agentCredential", () => {
  it("is recognisable, stable, different per kind and per mesh token, and does not contain the mesh token", () => {
    const hr = agentCredential(MESH, "hr");
    expect(hr.startsWith(AGENT_CREDENTIAL_PREFIX)).toBe(true);
    expect(hr).toMatch(/^tmk1\.[A-Za-z0-9_-]{43}$/);
    expect(agentCredential(MESH, "hr")).toBe(hr);
    expect(agentCredential(MESH, "ext-hr")).not.toBe(hr);
    expect(agentCredential(MESH, "HR")).not.toBe(hr);
    expect(agentCredential(NEXT, "hr")).not.toBe(hr);
    expect(hr).not.toContain(MESH);
  });
});

describe("callerTokens", () => {
  it("sends a toolmesh agent its own kind's credential, never the mesh token; a foreign server nothing", () => {
    const tokenFor = callerTokens({ MESH_TOKEN: MESH });
    expect(tokenFor("hr", true)).toBe(agentCredential(MESH, "hr"));
    expect(tokenFor("ext-evil", true)).toBe(agentCredential(MESH, "ext-evil"));
    expect(tokenFor("everything", false)).toBeUndefined();
  });

  it("MESH_TOKEN_<AGENT> overrides for that agent only, toolmesh or not", () => {
    const tokenFor = callerTokens({
      MESH_TOKEN: MESH,
      MESH_TOKEN_HR: "hr-own-token-0123456789",
      MESH_TOKEN_EVERYTHING: "x-own-token-0123456789",
    });
    expect(tokenFor("hr", true)).toBe("hr-own-token-0123456789");
    expect(tokenFor("everything", false)).toBe("x-own-token-0123456789");
    expect(tokenFor("finance", true)).toBe(agentCredential(MESH, "finance"));
  });

  it("during a rotation derives from the first (new) token; without any mesh token sends nothing", () => {
    expect(callerTokens({ MESH_TOKEN: `${NEXT},${MESH}` })("hr", true)).toBe(agentCredential(NEXT, "hr"));
    expect(callerTokens({})("hr", true)).toBeUndefined();
  });
});

describe("what an agent accepts (agentTokens)", () => {
  const hr = new TokenVerifier(agentTokens("hr", [NEXT, MESH]));

  it("its own kind's credential from each mesh token, and the mesh tokens themselves", () => {
    for (const t of [agentCredential(NEXT, "hr"), agentCredential(MESH, "hr"), NEXT, MESH]) expect(hr.check(bearer(t))).toBe("ok");
  });

  it("not another kind's credential: what a server registered as ext-evil or finance receives does not open hr", () => {
    for (const kind of ["ext-evil", "finance", "HR", "hr "]) expect(hr.check(bearer(agentCredential(MESH, kind)))).toBe("invalid");
    expect(hr.check(bearer(callerTokens({ MESH_TOKEN: MESH })("ext-evil", true)))).toBe("invalid");
  });
});
