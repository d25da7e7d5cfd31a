// Consul ACLs for tests: a dev agent with ACLs on and default deny, and least-privilege
// tokens made through Consul's own ACL API with the management token.
import { randomUUID } from "node:crypto";
import { startTestConsul, type TestConsul } from "./consul.ts";

/** The least-privilege policies of a toolmesh mesh, as docs/security.md#consul-acls documents them (HCL). */
export const POLICIES = {
  /** One agent: write its own service, read the others (to call them), its own KV (state, idempotency, tasks). */
  agent: (name: string) => `
service "${name}" { policy = "write" }
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
key_prefix "toolmesh/state/${name}/" { policy = "write" }
key_prefix "toolmesh/idempotency/${name}/" { policy = "write" }
key_prefix "toolmesh/tasks/${name}/" { policy = "write" }
`,
  /** The orchestrator: an agent that also writes the session store. */
  orchestrator: `
service "orchestrator" { policy = "write" }
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
key_prefix "toolmesh/sessions/" { policy = "write" }
key_prefix "toolmesh/state/orchestrator/" { policy = "write" }
key_prefix "toolmesh/idempotency/orchestrator/" { policy = "write" }
`,
  /** The gateway: discovery, its A2A tasks, and what its console shows (task records, how many sessions). */
  gateway: `
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
key_prefix "toolmesh/a2a-tasks/" { policy = "write" }
key_prefix "toolmesh/tasks/" { policy = "read" }
key_prefix "toolmesh/sessions/" { policy = "list" }
key_prefix "toolmesh/policy/" { policy = "read" }
`,
  /** The CLI's read commands: discovery only. */
  reader: `
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
`,
  /** An operator registering outside MCP servers with `mesh register`: services named ext-*. */
  registrar: `
service_prefix "ext-" { policy = "write" }
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
`,
};

export interface AclConsul extends TestConsul {
  readonly management: string;
  /** A token holding one new policy with these rules; returns its secret. */
  token(name: string, rules: string): Promise<string>;
}

/** A dev agent with ACLs enabled, default policy deny. */
export async function startAclConsul(): Promise<AclConsul> {
  const management = randomUUID();
  const hcl = `acl { enabled = true default_policy = "deny" enable_token_persistence = false tokens { initial_management = "${management}" agent = "${management}" } }`;
  const consul = await startTestConsul({ hcl, token: management });
  const api = async (method: string, path: string, body: unknown) => {
    const res = await fetch(`${consul.address}${path}`, {
      method,
      headers: { "X-Consul-Token": management, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  return Object.assign(consul, {
    management,
    async token(name: string, rules: string) {
      const policy = `${name}-${randomUUID().slice(0, 8)}`;
      await api("PUT", "/v1/acl/policy", { Name: policy, Rules: rules });
      const t = await api("PUT", "/v1/acl/token", { Description: name, Policies: [{ Name: policy }] });
      return t["SecretID"] as string;
    },
  });
}
