import { readFileSync } from "node:fs";
import { Command } from "commander";
import { parsePolicy, PolicyEngine, POLICY_KV_KEY, type PolicyDecision } from "../../../src/gateway/policy.ts";
import { UsageError } from "../../common/errors.ts";
import { addMeshOptions, print, withMesh, type MeshFlags } from "../mesh.ts";

const EXAMPLE = `{
  "version": 1,
  "rules": [
    { "scopes": ["*"], "allow": ["knowledge"], "access": "read", "description": "everyone reads the handbook" },
    { "scopes": ["hr:read"], "allow": ["hr"], "access": "read" },
    { "scopes": ["hr:book"], "allow": ["hr.request_leave"] },
    { "scopes": ["hr:admin", "role:static-token"], "allow": ["*"] },
    { "scopes": ["*"], "deny": ["finance.run_payroll"] }
  ]
}`;

function readDocument(file: string): string {
  try {
    return file === "-" ? readFileSync(0, "utf8") : readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`Cannot read the policy from ${file === "-" ? "stdin" : file}: ${(e as Error).message}.`);
  }
}

/** `mesh policy show|set|clear|test`: the gateway's tool policy in Consul KV, which every gateway replica watches. */
export function policyCommand(): Command {
  const cmd = new Command("policy")
    .description("who may call which tool through the gateway: show, set, clear or test the policy in Consul KV")
    .addHelpText(
      "after",
      `
A rule applies to a caller holding any of its scopes (OAuth scopes, role:<name> for a token's
roles claim, role:static-token for MESH_GATEWAY_TOKEN clients, * for everyone). It allows and
denies agent, agent.tool or * patterns; access "read" allows only tools annotated read-only.
A deny wins. Without a policy every caller may call every tool; with one, only what a rule allows.
The key is ${POLICY_KV_KEY}; gateways reload it within a blocking query's round trip.

Example:
${EXAMPLE}`,
    );
  cmd.addCommand(showCommand());
  cmd.addCommand(setCommand());
  cmd.addCommand(clearCommand());
  cmd.addCommand(testCommand());
  return cmd;
}

/** `mesh policy show`: the policy in force. */
function showCommand(): Command {
  return addMeshOptions(new Command("show").description("print the policy in force (none: everything is allowed)")).action(
    (flags: MeshFlags) =>
      withMesh(
        flags,
        async ({ consul }) => {
          const entry = await consul.kvGet(POLICY_KV_KEY);
          const policy = entry ? parsePolicy(entry.value) : undefined;
          print(flags, { key: POLICY_KV_KEY, policy: policy ?? null }, () =>
            policy ? JSON.stringify(policy, null, 2) : `No policy at ${POLICY_KV_KEY}: every caller may call every tool.`,
          );
        },
        { catalog: "none" },
      ),
  );
}

/** `mesh policy set <file>`: check a document and store it. */
function setCommand(): Command {
  return addMeshOptions(
    new Command("set")
      .description("check a policy document and store it (gateways pick it up at once)")
      .argument("<file>", 'the JSON document, or "-" for stdin'),
  ).action((file: string, flags: MeshFlags) =>
    withMesh(
      flags,
      async ({ consul }) => {
        const policy = parsePolicy(readDocument(file), file);
        await consul.kvSet(POLICY_KV_KEY, JSON.stringify(policy));
        print(
          flags,
          { key: POLICY_KV_KEY, rules: policy.rules.length },
          () => `Policy stored at ${POLICY_KV_KEY}: ${policy.rules.length} rule(s).`,
        );
      },
      { catalog: "none" },
    ),
  );
}

/** `mesh policy clear`: remove the policy. */
function clearCommand(): Command {
  return addMeshOptions(new Command("clear").description("remove the policy (every caller may call every tool again)")).action(
    (flags: MeshFlags) =>
      withMesh(
        flags,
        async ({ consul }) => {
          await consul.kvDelete(POLICY_KV_KEY);
          print(
            flags,
            { key: POLICY_KV_KEY, policy: null },
            () => `Policy removed from ${POLICY_KV_KEY}: every caller may call every tool.`,
          );
        },
        { catalog: "none" },
      ),
  );
}

type TestFlags = MeshFlags & { scopes: string; file?: string };

/** A tool of the mesh, as the policy sees it. */
type KnownTool = { agent: string; tool: string; readOnly: boolean };

/** `mesh policy test --scopes ... [tools...]`: what a caller with these scopes may call. */
function testCommand(): Command {
  return addMeshOptions(
    new Command("test")
      .description("explain what a caller with these scopes may call: every tool of the mesh, or the ones named")
      .requiredOption("--scopes <list>", 'the caller\'s scopes, space- or comma-separated (e.g. "mesh hr:read"; "" for none)')
      .option("--file <file>", "test this document instead of the stored policy")
      .argument("[tools...]", "agent.tool names (default: every tool of every healthy agent)"),
  ).action((tools: string[], flags: TestFlags) =>
    withMesh(
      flags,
      async ({ consul, mesh }) => {
        const text = flags.file ? readDocument(flags.file) : (await consul.kvGet(POLICY_KV_KEY))?.value;
        const engine = new PolicyEngine(text === undefined ? undefined : parsePolicy(text, flags.file ?? POLICY_KV_KEY));
        const scopes = flags.scopes.split(/[\s,]+/).filter(Boolean);
        const known = mesh.catalog
          .agents()
          .flatMap((a) => a.tools.map((t) => ({ agent: a.name, tool: t.name, readOnly: t.annotations?.readOnlyHint === true })));
        const asked = tools.length ? tools.map((name) => namedTool(name, known)) : known;
        const results = asked.map((t) => ({ tool: `${t.agent}.${t.tool}`, readOnly: t.readOnly, ...explain(engine.decide(scopes, t)) }));
        print(flags, { policy: engine.active, scopes, results }, () =>
          [
            engine.active ? `Caller with ${scopes.join(" ") || "no scopes"}:` : "No policy: every caller may call every tool.",
            ...results.map(
              (r) => `  ${r.allowed ? "allow" : "deny "} ${r.tool}${r.readOnly ? " (read-only)" : ""}${r.allowed ? "" : `: ${r.reason}`}`,
            ),
          ].join("\n"),
        );
      },
      { catalog: "all" },
    ),
  );
}

/** The tool an agent.tool name given to `mesh policy test` names, or a usage error. */
function namedTool(name: string, known: readonly KnownTool[]): KnownTool {
  const cut = name.indexOf(".");
  if (cut <= 0) throw new UsageError(`"${name}" is not agent.tool (e.g. hr.request_leave).`);
  const [agent, tool] = [name.slice(0, cut), name.slice(cut + 1)];
  const found = known.find((k) => k.agent === agent && k.tool === tool);
  if (!found) throw new UsageError(`No tool ${name} in the mesh now (see "mesh tools").`);
  return found;
}

function explain(d: PolicyDecision): { allowed: boolean; reason?: string; requiredScopes?: string[]; rule?: number } {
  return d.allowed
    ? { allowed: true, ...(d.rule !== undefined ? { rule: d.rule } : {}) }
    : { allowed: false, reason: d.reason, requiredScopes: d.requiredScopes };
}
