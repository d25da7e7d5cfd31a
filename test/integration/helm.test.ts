// The Helm chart (deploy/helm/toolmesh), checked offline the way a cluster would take it:
// `helm lint --strict`, `helm template` validated by kubeconform -strict against Kubernetes'
// own schemas (made from k8s.io/kubernetes' OpenAPI document, scripts/k8s-schemas.sh), and
// what users rely on: the replicas asked for, probes on the paths and ports the processes
// really serve (a rendered container is started for real against a real Consul), secrets that
// exist and hold the tokens, and only environment variables the code reads.
// helm and kubeconform are built from the Go module proxy by scripts/helm.sh and
// scripts/kubeconform.sh into the cache (npm's pretest and .ci/run do it first).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { AGENT_ENV } from "../../src/agent/config.ts";
import { FAILOVER_DCS_ENV } from "../../src/discovery/failover.ts";
import { randomLoopback, startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHART = join(ROOT, "deploy/helm/toolmesh");
const NAMESPACE = "mesh";

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
  };
}
interface Container {
  name: string;
  image: string;
  args: string[];
  ports: { name: string; containerPort: number }[];
  env: EnvVar[];
  startupProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec?: {
    replicas?: number;
    template?: { spec: { containers: Container[] } };
    type?: string;
    ports?: { port: number; targetPort: string }[];
  };
  data?: Record<string, string>;
}

let helm: string;
let kubeconform: string;
let schemas: string;
const work = mkdtempSync(join(tmpdir(), "toolmesh-helm-"));

/** Prints the path a provisioning script ends its output with (it builds the tool if missing). */
async function provision(script: string): Promise<string> {
  const { stdout } = await run("bash", [join(ROOT, "scripts", script)], { maxBuffer: 1 << 20 });
  return stdout.trim().split("\n").pop()!;
}

/** A values file of its own for each set of values. */
function valuesFile(yaml: string): string {
  const file = join(work, `values-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

async function template(values?: string): Promise<{ text: string; docs: Manifest[] }> {
  const { stdout } = await run(helm, ["template", "rel", CHART, "--namespace", NAMESPACE, ...(values ? ["-f", valuesFile(values)] : [])], {
    maxBuffer: 16 << 20,
  });
  const docs = parseAllDocuments(stdout)
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => d !== null);
  return { text: stdout, docs };
}

async function kubeconformRun(manifests: string): Promise<{ ok: boolean; output: string }> {
  const file = join(work, `rendered-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, manifests);
  const args = ["-strict", "-summary", "-schema-location", `${schemas}/{{ .ResourceKind }}{{ .KindSuffix }}.json`, file];
  try {
    const { stdout, stderr } = await run(kubeconform, args);
    return { ok: true, output: stdout + stderr };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, output: `${err.stdout ?? ""}${err.stderr ?? ""}` };
  }
}

const deployments = (docs: Manifest[]) => new Map(docs.filter((d) => d.kind === "Deployment").map((d) => [d.metadata.name, d]));
const container = (d: Manifest) => d.spec!.template!.spec.containers[0]!;
const envOf = (c: Container) => new Map(c.env.map((e) => [e.name, e]));

/** Every toolmesh setting the chart sets on defaults; this one turns every option. */
const CUSTOM = `
agents:
  hr: { replicas: 3 }
  knowledge: { enabled: false }
orchestrator:
  replicas: 1
  openai: { model: gpt-test, baseURL: "http://llm.example:8080/v1", apiKeySecret: { name: openai, key: api-key } }
gateway:
  replicas: 4
  allowedHosts: [mesh.example.com]
  service: { type: LoadBalancer, port: 443 }
tokens:
  meshToken: mesh-token-0123456789
  gatewayToken: gateway-token-0123456789
  metricsToken: metrics-token-0123456789
consul:
  tokenSecret: { name: consul-acl, key: token }
otlpEndpoint: http://otel-collector.observability:4318
failoverDatacenters: [dc2, dc3]
extraEnv:
  - { name: MESH_MAX_CONCURRENT_CALLS, value: "128" }
`;

beforeAll(async () => {
  [helm, kubeconform, schemas] = await Promise.all([provision("helm.sh"), provision("kubeconform.sh"), provision("k8s-schemas.sh")]);
}, 3_600_000); // a first build on 2 cores takes minutes; pretest normally did it already

describe("the Helm chart", () => {
  it("passes helm lint --strict with the default values and with every option set", async () => {
    for (const values of [undefined, CUSTOM]) {
      const { stdout } = await run(helm, ["lint", "--strict", CHART, ...(values ? ["-f", valuesFile(values)] : [])]);
      expect(stdout).toContain("1 chart(s) linted, 0 chart(s) failed");
    }
  });

  it("renders manifests that Kubernetes' own schemas accept (kubeconform -strict), and the check bites on a misspelt field", async () => {
    for (const values of [undefined, CUSTOM]) {
      const { text, docs } = await template(values);
      const result = await kubeconformRun(text);
      expect(result.ok, result.output).toBe(true);
      expect(result.output).toMatch(
        new RegExp(`${docs.length} resources found .* Valid: ${docs.length}, Invalid: 0, Errors: 0, Skipped: 0`),
      );
    }
    const { text } = await template();
    const broken = await kubeconformRun(text.replace("readinessProbe:", "readinesProbe:"));
    expect(broken.ok).toBe(false);
    expect(broken.output).toMatch(/additional properties 'readinesProbe' not allowed/);
    const wrongType = await kubeconformRun(text.replace(/replicas: 2/, 'replicas: "two"'));
    expect(wrongType.ok).toBe(false);
  });

  it("runs hr, finance, knowledge, the orchestrator and the gateway as Deployments with the replicas asked for", async () => {
    const byDefault = deployments((await template()).docs);
    expect([...byDefault.keys()].sort()).toEqual(
      ["finance", "gateway", "hr", "knowledge", "orchestrator"].map((n) => `rel-toolmesh-${n}`).sort(),
    );
    for (const d of byDefault.values()) expect(d.spec!.replicas, d.metadata.name).toBe(2);
    for (const n of ["hr", "finance", "knowledge", "orchestrator"])
      expect(container(byDefault.get(`rel-toolmesh-${n}`)!).args).toEqual(["serve", n]);

    const custom = (await template(CUSTOM)).docs;
    const set = deployments(custom);
    expect(set.get("rel-toolmesh-hr")!.spec!.replicas).toBe(3);
    expect(set.get("rel-toolmesh-orchestrator")!.spec!.replicas).toBe(1);
    expect(set.get("rel-toolmesh-gateway")!.spec!.replicas).toBe(4);
    expect(set.has("rel-toolmesh-knowledge")).toBe(false);
    // A disruption budget for every kind with more than one replica, only those.
    expect(
      custom
        .filter((d) => d.kind === "PodDisruptionBudget")
        .map((d) => d.metadata.name)
        .sort(),
    ).toEqual(["rel-toolmesh-finance", "rel-toolmesh-gateway", "rel-toolmesh-hr"]);
    const service = custom.find((d) => d.kind === "Service")!;
    expect(service.spec).toMatchObject({ type: "LoadBalancer", ports: [{ port: 443, targetPort: "http" }] });
  });

  it("probes /healthz on the port each process listens on, and points every pod at its node's Consul agent", async () => {
    for (const values of [undefined, CUSTOM]) {
      for (const d of deployments((await template(values)).docs).values()) {
        const c = container(d);
        const env = envOf(c);
        const http = c.ports.find((p) => p.name === "http")!;
        // The process's own port: MESH_PORT for agents, --port for the gateway.
        const listens = c.args[0] === "gateway" ? Number(c.args[c.args.indexOf("--port") + 1]) : Number(env.get("MESH_PORT")!.value);
        expect(listens, d.metadata.name).toBe(http.containerPort);
        for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe])
          expect(probe.httpGet).toEqual({ path: "/healthz", port: "http" });
        expect(env.get("CONSUL_HTTP_ADDR")!.value).toBe("http://$(HOST_IP):8500");
        expect(env.get("HOST_IP")!.valueFrom!.fieldRef!.fieldPath).toBe("status.hostIP");
        // Kubernetes expands $(VAR) only from variables defined before it.
        for (const [i, e] of c.env.entries())
          for (const [, ref] of (e.value ?? "").matchAll(/\$\(([A-Z_]+)\)/g))
            expect(
              c.env.slice(0, i).some((p) => p.name === ref),
              `${d.metadata.name}: ${e.name} uses $(${ref}) before it is defined`,
            ).toBe(true);
      }
    }
    const address = await template(`consul: { mode: address, address: "http://consul-client.consul.svc:8500" }`);
    for (const d of deployments(address.docs).values())
      expect(envOf(container(d)).get("CONSUL_HTTP_ADDR")!.value).toBe("http://consul-client.consul.svc:8500");
    await expect(template(`consul: { mode: servers }`)).rejects.toThrow(/consul.mode must be "hostAgent" or "address"; got "servers"/);
    await expect(template(`consul: { mode: address }`)).rejects.toThrow(/consul.address is required when consul.mode is "address"/);
  });

  it("sets only environment variables the code reads", async () => {
    const source = (file: string) => [...readFileSync(join(ROOT, file), "utf8").matchAll(/env\[\s*"([A-Z0-9_]+)"\s*\]/g)].map((m) => m[1]!);
    const tracing = source("src/telemetry/tracing.ts");
    // Every process reads Consul's settings through consulSettings (its variables are named in string literals there).
    const consulVars = [...readFileSync(join(ROOT, "src/consul/settings.ts"), "utf8").matchAll(/"((?:CONSUL|MESH)_[A-Z0-9_]+)"/g)].map(
      (m) => m[1]!,
    );
    expect(consulVars).toContain("CONSUL_HTTP_ADDR");
    const downward = ["HOST_IP", "POD_IP"]; // the downward API's values, used as $(HOST_IP) and $(POD_IP)
    const agent = new Set([...Object.keys(AGENT_ENV), ...consulVars, ...tracing, ...downward, FAILOVER_DCS_ENV]);
    const orchestrator = new Set([...agent, ...source("orchestrator/agent/planner/llm.ts")]);
    // The gateway reads its settings in several files of orchestrator/gateway/.
    const gatewaySources = readdirSync(join(ROOT, "orchestrator/gateway")).flatMap((f) => source(`orchestrator/gateway/${f}`));
    const gateway = new Set([...gatewaySources, ...consulVars, ...tracing, ...downward, FAILOVER_DCS_ENV]);
    expect(tracing).toContain("OTEL_EXPORTER_OTLP_ENDPOINT");
    expect(gateway).toContain("MESH_GATEWAY_TOKEN");
    for (const values of [undefined, CUSTOM.replace(/extraEnv:[\s\S]*$/, "")]) {
      for (const d of deployments((await template(values)).docs).values()) {
        const c = container(d);
        const reads = c.args[0] === "gateway" ? gateway : c.args[1] === "orchestrator" ? orchestrator : agent;
        for (const e of c.env) expect(reads.has(e.name), `${d.metadata.name} sets ${e.name}, which its code never reads`).toBe(true);
      }
    }
  });

  it("keeps the tokens in a Secret that every reference finds: generated by default, the given ones, or an existing Secret", async () => {
    const refs = (docs: Manifest[]) =>
      [...deployments(docs).values()].flatMap((d) =>
        container(d).env.flatMap((e) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef] : [])),
      );
    const decode = (s: Manifest) =>
      Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));

    // Default: a random MESH_TOKEN, no optional token; every required reference resolves.
    const byDefault = (await template()).docs;
    const secret = byDefault.find((d) => d.kind === "Secret")!;
    expect(secret.metadata.name).toBe("rel-toolmesh-tokens");
    expect(decode(secret)["MESH_TOKEN"]).toMatch(/^[A-Za-z0-9]{48}$/);
    expect(Object.keys(secret.data!)).toEqual(["MESH_TOKEN"]);
    for (const ref of refs(byDefault)) {
      expect(ref.name).toBe("rel-toolmesh-tokens");
      if (!ref.optional) expect(Object.keys(secret.data!), ref.key).toContain(ref.key);
    }
    expect(decode((await template()).docs.find((d) => d.kind === "Secret")!)["MESH_TOKEN"]).not.toBe(decode(secret)["MESH_TOKEN"]);

    // Given tokens land in the Secret, the gateway reads MESH_GATEWAY_TOKEN, others their own Secrets.
    const custom = (await template(CUSTOM)).docs;
    const given = custom.find((d) => d.kind === "Secret")!;
    expect(decode(given)).toEqual({
      MESH_TOKEN: "mesh-token-0123456789",
      MESH_GATEWAY_TOKEN: "gateway-token-0123456789",
      MESH_METRICS_TOKEN: "metrics-token-0123456789",
    });
    for (const ref of refs(custom)) {
      if (ref.name === "rel-toolmesh-tokens") expect(Object.keys(given.data!)).toContain(ref.key);
      else expect([ref.name, ref.key]).toSatisfy(([n, k]) => (n === "consul-acl" && k === "token") || (n === "openai" && k === "api-key"));
    }
    const gw = envOf(container(deployments(custom).get("rel-toolmesh-gateway")!));
    expect(gw.get("MESH_GATEWAY_TOKEN")!.valueFrom!.secretKeyRef).toMatchObject({ name: "rel-toolmesh-tokens", key: "MESH_GATEWAY_TOKEN" });
    expect(gw.get("MESH_ALLOWED_HOSTS")!.value!.split(",")).toEqual([
      "rel-toolmesh-gateway",
      `rel-toolmesh-gateway.${NAMESPACE}`,
      `rel-toolmesh-gateway.${NAMESPACE}.svc`,
      `rel-toolmesh-gateway.${NAMESPACE}.svc.cluster.local`,
      "mesh.example.com",
    ]);
    for (const d of deployments(custom).values()) {
      const env = envOf(container(d));
      expect(env.get("CONSUL_HTTP_TOKEN")!.valueFrom!.secretKeyRef).toEqual({ name: "consul-acl", key: "token" });
      expect(env.get(FAILOVER_DCS_ENV)!.value).toBe("dc2,dc3");
      expect(env.get("OTEL_EXPORTER_OTLP_ENDPOINT")!.value).toBe("http://otel-collector.observability:4318");
    }

    // An existing Secret: none rendered, every reference names it.
    const existing = (await template(`tokens: { existingSecret: mesh-tokens }`)).docs;
    expect(existing.some((d) => d.kind === "Secret")).toBe(false);
    for (const ref of refs(existing)) expect(ref.name).toBe("mesh-tokens");
  });
});

describe("a rendered container, run as its pod would run it", () => {
  let consul: TestConsul;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    consul = await startTestConsul(); // the "node's agent": http://<HOST_IP>:8500
  });
  afterAll(async () => {
    for (const c of children) c.kill("SIGKILL");
    await consul?.stop();
  });

  /**
   * Starts a Deployment's container as a process: the image's ENTRYPOINT plus the container's
   * args, and its env resolved as the kubelet would (downward API, Secret keys, $(VAR)).
   * The pod's one interface is a loopback address of its own: 0.0.0.0 binds there.
   */
  function startPod(d: Manifest, secrets: Map<string, Record<string, string>>): { podIp: string; child: ChildProcess } {
    const entrypoint = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(readFileSync(join(ROOT, "Dockerfile"), "utf8"))![1]!) as string[];
    expect(entrypoint[0]).toBe("node");
    const podIp = randomLoopback();
    const c = container(d);
    const env: Record<string, string> = {};
    for (const e of c.env) {
      const from = e.valueFrom;
      let value: string | undefined;
      if (from?.fieldRef) value = { "status.hostIP": consul.bind, "status.podIP": podIp }[from.fieldRef.fieldPath];
      else if (from?.secretKeyRef) value = secrets.get(from.secretKeyRef.name)?.[from.secretKeyRef.key];
      else value = (e.value ?? "").replace(/\$\(([A-Z_]+)\)/g, (_, n: string) => env[n] ?? `$(${n})`);
      if (value === undefined && !from?.secretKeyRef?.optional) throw new Error(`${d.metadata.name}: ${e.name} does not resolve`);
      if (value !== undefined) env[e.name] = value === "0.0.0.0" ? podIp : value;
    }
    const args = c.args.map((a) => (a === "0.0.0.0" ? podIp : a));
    const { PATH, HOME } = process.env;
    const child = spawn(process.execPath, [entrypoint[1]!, ...args], { cwd: ROOT, env: { PATH, HOME, ...env }, stdio: "ignore" });
    children.push(child);
    return { podIp, child };
  }

  it("hr answers its probes at the pod's address and registers there through the node's agent; the gateway answers on its Service names with the token from the Secret", async () => {
    const { docs } = await template(`tokens: { meshToken: tok-mesh-0123456789, gatewayToken: tok-gw-0123456789 }`);
    const secrets = new Map(
      docs
        .filter((d) => d.kind === "Secret")
        .map((s) => [
          s.metadata.name,
          Object.fromEntries(Object.entries(s.data!).map(([k, v]) => [k, Buffer.from(v, "base64").toString()])),
        ]),
    );
    const set = deployments(docs);

    const hr = set.get("rel-toolmesh-hr")!;
    const hrPod = startPod(hr, secrets);
    const probe = (pod: { podIp: string }, d: Manifest) =>
      `http://${pod.podIp}:${container(d).ports[0]!.containerPort}${container(d).readinessProbe.httpGet.path}`;
    await eventually(async () => (await fetch(probe(hrPod, hr))).status === 200, {
      timeoutMs: 30_000,
      what: "hr's readiness probe to pass",
    });
    const registered = await eventually(
      async () => (await consul.client.healthService("hr", { passing: true })).value.find((e) => e.address === hrPod.podIp),
      { timeoutMs: 10_000, what: "hr registered at its pod IP, passing" },
    );
    expect(registered.value.port).toBe(container(hr).ports[0]!.containerPort);

    const gateway = set.get("rel-toolmesh-gateway")!;
    const gwPod = startPod(gateway, secrets);
    await eventually(async () => (await fetch(probe(gwPod, gateway))).status === 200, {
      timeoutMs: 30_000,
      what: "the gateway's readiness probe to pass",
    });
    const port = container(gateway).ports[0]!.containerPort;
    // node:http, not fetch: fetch sends the URL's host whatever the Host header says.
    const list = (host: string, token: string) =>
      new Promise<{ status: number; text(): Promise<string> }>((resolve, reject) => {
        const body = JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "tools/list",
          params: {
            _meta: {
              "io.modelcontextprotocol/protocolVersion": "2026-07-28",
              "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" },
              "io.modelcontextprotocol/clientCapabilities": {},
            },
          },
        });
        const req = request(
          {
            host: gwPod.podIp,
            port,
            path: "/mcp",
            method: "POST",
            headers: {
              host,
              authorization: `Bearer ${token}`,
              "content-type": "application/json",
              accept: "application/json, text/event-stream",
              "mcp-protocol-version": "2026-07-28",
              "mcp-method": "tools/list",
            },
          },
          (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (d: string) => (text += d));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, text: () => Promise.resolve(text) }));
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    // Clients reach it by the Service's names with MESH_GATEWAY_TOKEN; hr's tools are there.
    const listed = await eventually(
      async () => {
        const res = await list(`rel-toolmesh-gateway.${NAMESPACE}.svc:${port}`, "tok-gw-0123456789");
        const text = await res.text();
        return res.status === 200 && text.includes("hr__get_employee") ? text : undefined;
      },
      { timeoutMs: 15_000, what: "the gateway to list hr's tools to a client on its Service name" },
    );
    expect(listed.value).toContain("hr__get_employee");
    expect((await list("evil.example.com", "tok-gw-0123456789")).status).toBe(403);
    expect((await list(`rel-toolmesh-gateway.${NAMESPACE}.svc`, "wrong")).status).toBe(401);
  });
});
