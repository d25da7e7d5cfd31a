// The Nomad job files (deploy/nomad/*.nomad.hcl), checked for shape: no Nomad binary can be had
// here (the Go module proxy refuses github.com/hashicorp/nomad, and releases from 1.7 on are not
// open source), so each file is parsed with HashiCorp's HCL parser (@cdktf/hcl2json, the HCL v2
// library compiled to WebAssembly) and its job checked for what Nomad and the mesh rely on.
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { AGENT_ENV, DEFAULT_DRAIN_TIMEOUT_MS } from "../../src/agent/config.ts";
import { parseDurationMs } from "../../src/consul/client.ts";
import { MCP_TAG } from "../../src/discovery/catalog.ts";
import { FAILOVER_DCS_ENV } from "../../src/discovery/failover.ts";
import { AGENTS } from "../../servers/index.ts";

// Loaded untyped: its declarations pull in the DOM library, whose fetch types would then apply
// to every test file.
const { parse } = createRequire(import.meta.url)("@cdktf/hcl2json") as { parse(file: string, text: string): Promise<unknown> };
const DIR = new URL("../../deploy/nomad/", import.meta.url);
type Block = Record<string, unknown>;
/** HCL blocks come out as arrays of bodies (one per block of that type and label). */
const one = (v: unknown): Block => {
  expect(Array.isArray(v) && v.length === 1, JSON.stringify(v)?.slice(0, 200)).toBe(true);
  return (v as Block[])[0]!;
};

async function job(file: string): Promise<{ name: string; job: Block; variables: Record<string, Block> }> {
  const parsed = (await parse(file, readFileSync(new URL(file, DIR), "utf8"))) as {
    job: Record<string, unknown>;
    variable: Record<string, unknown>;
  };
  const [name, body] = Object.entries(parsed.job)[0]!;
  return {
    name,
    job: one(body),
    variables: Object.fromEntries(Object.entries(parsed.variable).map(([k, v]) => [k, one(v)])),
  };
}

/** The default of a job's `var.x` reference. */
function value(ref: unknown, variables: Record<string, Block>): unknown {
  const m = typeof ref === "string" ? /^\$\{var\.([a-z_]+)\}$/.exec(ref) : null;
  return m ? variables[m[1]!]!["default"] : ref;
}

const kinds = [...Object.keys(AGENTS), "orchestrator"];

describe("Nomad job files", () => {
  it("has one per agent kind, the orchestrator and the gateway", () => {
    expect(readdirSync(DIR).sort()).toEqual([...kinds, "gateway"].map((k) => `${k}.nomad.hcl`).sort());
  });

  it("refuses what is not HCL (the parser is a real check)", async () => {
    await expect(parse("bad.hcl", 'job "x" { group "g" { count = } }')).rejects.toThrow(/bad\.hcl:1/);
  });

  for (const kind of [...kinds, "gateway"]) {
    it(`${kind}: a service job with replicas, a Consul service checked on /healthz, the code's own settings, tokens from a Nomad variable`, async () => {
      const { name, job: j, variables } = await job(`${kind}.nomad.hcl`);
      expect(name).toBe(`toolmesh-${kind}`);
      expect(j["type"]).toBe("service");
      expect(one(j["update"])).toMatchObject({ health_check: "checks", auto_revert: true });
      const group = one((j["group"] as Record<string, unknown>)[kind]);
      expect(value(group["count"], variables)).toBeGreaterThanOrEqual(2);
      expect(one(group["spread"])["attribute"]).toBe("${node.unique.id}");
      expect(one(group["network"])).toMatchObject({ mode: "host", port: { http: [{}] } });

      const service = one(group["service"]);
      expect(service).toMatchObject({ provider: "consul", port: "http", name: `toolmesh-${kind}` });
      // Nomad's registration never passes for a mesh member: another name, no mcp tag.
      expect(service["name"]).not.toBe(kind);
      expect(service["tags"]).not.toContain(MCP_TAG);
      const check = one(service["check"]);
      expect(check).toMatchObject({ type: "http", path: "/healthz" });
      expect(one(check["check_restart"])["limit"]).toBeGreaterThan(0);

      const task = one((group["task"] as Record<string, unknown>)[kind]);
      expect(task["driver"]).toBe("docker");
      const config = one(task["config"]);
      expect(config["network_mode"]).toBe("host");
      expect(value(config["image"], variables)).toBe("toolmesh:0.1.0");
      const env = one(task["env"]) as Record<string, string>;
      expect(value(env["CONSUL_HTTP_ADDR"], variables)).toBe("http://127.0.0.1:8500");
      if (kind === "gateway") {
        expect(config["args"]).toEqual(["gateway", "--host", "${NOMAD_IP_http}", "--port", "${NOMAD_PORT_http}"]);
      } else {
        expect(config["args"]).toEqual(["serve", kind]);
        // It listens and registers where Nomad put it: the client's address, the port Nomad picked.
        expect(env).toMatchObject({
          MESH_HOST: "${NOMAD_IP_http}",
          MESH_PORT: "${NOMAD_PORT_http}",
          MESH_ADVERTISE_HOST: "${NOMAD_IP_http}",
        });
        // Only settings the agent reads (plus the failover list and, for the orchestrator, its model's).
        const reads = new Set([
          ...Object.keys(AGENT_ENV),
          FAILOVER_DCS_ENV,
          ...(kind === "orchestrator" ? ["OPENAI_MODEL", "OPENAI_BASE_URL"] : []),
        ]);
        for (const k of Object.keys(env)) expect(reads.has(k), `${kind} sets ${k}, which the agent never reads`).toBe(true);
      }
      // Tokens: never in the file; from the namespace's variable, the task blocked until it exists.
      expect(JSON.stringify(env)).not.toMatch(/TOKEN/);
      const template = one(task["template"]);
      expect(template).toMatchObject({ env: true, destination: "${NOMAD_SECRETS_DIR}/mesh.env" });
      expect(template["data"]).toMatch(/\{\{ with nomadVar "nomad\/jobs" \}\}\s*MESH_TOKEN=\{\{ \.mesh_token \}\}/);
      // SIGTERM, and time to drain before Nomad kills it.
      expect(task["kill_signal"]).toBe("SIGTERM");
      expect(parseDurationMs(task["kill_timeout"] as string)).toBeGreaterThan(DEFAULT_DRAIN_TIMEOUT_MS);
    });
  }
});
