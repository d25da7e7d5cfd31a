// docker-compose.yml is a deployment people copy: it must be closed by default, keep its
// data, run Consul as a cluster is run (three servers, and a client agent that every process
// talks to), and run only open-source images. `docker-compose config` checks it too where
// docker-compose is installed (Debian's package); no Docker engine runs here.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";

interface Service {
  image?: string;
  command?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] };
  ports?: string[];
  volumes?: string[];
  restart?: string;
  environment?: Record<string, string>;
}
const compose = parse(readFileSync(new URL("../../docker-compose.yml", import.meta.url), "utf8"), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = Object.entries(compose.services);
/** The observability services (no mesh token of their own to demand). */
const OBSERVABILITY = ["otel-collector", "jaeger", "prometheus"];
const SERVERS = ["consul-server-1", "consul-server-2", "consul-server-3"];
const CONSUL = [...SERVERS, "consul-client"];
const members = () => services.filter(([name]) => !CONSUL.includes(name) && !OBSERVABILITY.includes(name));

describe("docker-compose.yml", () => {
  it("pins Consul to its last MPL-2.0 release (a floating 1.16 tag reaches the BSL 1.16.5+)", () => {
    for (const name of CONSUL) expect(compose.services[name]!.image, name).toBe("hashicorp/consul:1.16.4");
    expect(services.filter(([, s]) => s.image?.startsWith("hashicorp/consul")).map(([n]) => n)).toEqual(CONSUL);
  });

  it("runs three Consul servers that expect each other, each with its data on its own volume and a restart policy, not an in-memory dev agent", () => {
    const volumes = new Set<string>();
    for (const name of SERVERS) {
      const server = compose.services[name]!;
      expect(server.command).toEqual(
        expect.arrayContaining(["agent", "-server", `-bootstrap-expect=${SERVERS.length}`, "-data-dir=/consul/data"]),
      );
      expect(server.command).not.toContain("-dev");
      // Each server can find every other one, whichever starts first.
      expect(server.command!.filter((a) => a.startsWith("-retry-join=")).sort()).toEqual(SERVERS.map((s) => `-retry-join=${s}`));
      const [volume] = server.volumes!.map((v) => v.split(":")[0]!);
      expect(server.volumes, name).toEqual([`${volume}:/consul/data`]);
      expect(compose.volumes, name).toHaveProperty(volume!);
      volumes.add(volume!);
      expect(server.restart).toBe("unless-stopped");
      // Healthy only when raft has a leader; and nobody reaches a server's API from outside.
      expect(server.healthcheck!.test).toEqual(["CMD", "consul", "operator", "raft", "list-peers"]);
      expect(server.ports ?? []).toEqual([]);
    }
    expect(volumes.size).toBe(SERVERS.length);
  });

  it("runs a Consul client agent that joins the servers, keeps its state on a volume, and is what every member registers with and reads through", () => {
    const client = compose.services["consul-client"]!;
    expect(client.command).toEqual(expect.arrayContaining(["agent", "-data-dir=/consul/data", "-client=0.0.0.0"]));
    expect(client.command).not.toContain("-server");
    expect(client.command).not.toContain("-dev");
    expect(client.command!.filter((a) => a.startsWith("-retry-join=")).sort()).toEqual(SERVERS.map((s) => `-retry-join=${s}`));
    expect(client.volumes).toEqual(["consul-client-data:/consul/data"]);
    expect(compose.volumes).toHaveProperty("consul-client-data");
    expect(client.restart).toBe("unless-stopped");
    for (const [name, service] of members()) {
      expect(service.environment?.["CONSUL_HTTP_ADDR"], name).toBe("http://consul-client:8500");
      expect(service.depends_on, name).toEqual({ "consul-client": { condition: "service_healthy" } });
    }
    // No toolmesh process, and not the scraper, talks to a server directly.
    const text = readFileSync(new URL("../../docker-compose.yml", import.meta.url), "utf8");
    expect(text).not.toMatch(/consul-server-\d:8500/);
  });

  it("publishes no port on every interface by default: Consul on loopback, the rest on MESH_PUBLISH_HOST (default loopback)", () => {
    for (const [name, service] of services) {
      for (const mapping of service.ports ?? []) {
        expect(mapping, `${name}: ${mapping}`).toMatch(/^(127\.0\.0\.1|\$\{MESH_PUBLISH_HOST:-127\.0\.0\.1\}):\d+:\d+$/);
      }
    }
    expect(compose.services["consul-client"]!.ports).toEqual(["127.0.0.1:8500:8500"]);
  });

  it("starts no agent or gateway without MESH_TOKEN", () => {
    expect(
      members()
        .map(([n]) => n)
        .sort(),
    ).toEqual(["finance", "gateway", "hr-1", "hr-2", "knowledge", "orchestrator"]);
    for (const [name, service] of members()) {
      expect(service.environment?.["MESH_TOKEN"], name).toMatch(/^\$\{MESH_TOKEN:\?/);
      expect(service.restart, name).toBe("unless-stopped");
    }
  });

  it("gives the scraper MESH_METRICS_TOKEN (which opens /metrics only) when set, else MESH_TOKEN, and every member accepts it", () => {
    expect(compose.services["otel-collector"]!.environment).toEqual({
      MESH_METRICS_TOKEN: expect.stringMatching(/^\$\{MESH_METRICS_TOKEN:-\$\{MESH_TOKEN:\?[^}]*\}\}$/),
    });
    for (const [name, service] of members()) expect(service.environment?.["MESH_METRICS_TOKEN"], name).toBe("${MESH_METRICS_TOKEN:-}");
    const collector = readFileSync(new URL("../../deploy/otel-collector.yaml", import.meta.url), "utf8");
    expect(collector).not.toContain("${env:MESH_TOKEN}");
    expect(collector.match(/credentials: \$\{env:MESH_METRICS_TOKEN\}/g)).toHaveLength(2);
  });

  it("sends every member's traces to a pinned OpenTelemetry Collector, which feeds Jaeger and Prometheus (open-source images, pinned)", () => {
    expect(compose.services["otel-collector"]!.image).toMatch(/^otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/);
    expect(compose.services["jaeger"]!.image).toMatch(/^jaegertracing\/jaeger:\d+\.\d+\.\d+$/);
    expect(compose.services["prometheus"]!.image).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
    for (const [name, service] of members()) {
      expect(service.environment?.["OTEL_EXPORTER_OTLP_ENDPOINT"], name).toBe("http://otel-collector:4318");
    }
    const collector = parse(readFileSync(new URL("../../deploy/otel-collector.yaml", import.meta.url), "utf8")) as {
      service: { pipelines: Record<string, { receivers: string[]; exporters: string[] }> };
      receivers: { prometheus: { config: { scrape_configs: { job_name: string; consul_sd_configs?: unknown[] }[] } } };
      exporters: Record<string, { endpoint: string }>;
    };
    expect(collector.service.pipelines["traces"]).toMatchObject({ receivers: ["otlp"], exporters: ["otlp/jaeger"] });
    expect(collector.exporters["otlp/jaeger"]!.endpoint).toBe("jaeger:4317");
    expect(collector.service.pipelines["metrics"]!.exporters).toEqual(["prometheus"]);
    // Agents found through Consul; the gateway by name.
    const jobs = collector.receivers.prometheus.config.scrape_configs;
    expect(jobs.find((j) => j.job_name === "toolmesh-agents")!.consul_sd_configs).toEqual([
      { server: "consul-client:8500", tags: ["mcp"] },
    ]);
    expect(jobs.map((j) => j.job_name)).toContain("toolmesh-gateway");
    for (const name of ["otel-collector", "prometheus"])
      for (const v of compose.services[name]!.volumes ?? [])
        expect(existsSync(new URL(`../../${v.split(":")[0]}`, import.meta.url)), v).toBe(true);
  });

  it("is accepted by docker-compose config, which refuses it without MESH_TOKEN (where docker-compose is installed; else says so)", () => {
    const file = fileURLToPath(new URL("../../docker-compose.yml", import.meta.url));
    const config = (env: NodeJS.ProcessEnv) =>
      spawnSync("docker-compose", ["-f", file, "config", "-q"], { encoding: "utf8", env: { PATH: process.env["PATH"], ...env } });
    const probe = config({ MESH_TOKEN: "t" });
    if (probe.error && (probe.error as NodeJS.ErrnoException).code === "ENOENT") {
      console.warn("docker-compose is not installed (apt-get install docker-compose): only the file's shape is checked");
      // The shape, read strictly: anchors resolve, merge keys apply, no duplicate keys.
      const text = readFileSync(file, "utf8");
      expect(() => parse(text, { merge: true, uniqueKeys: true, strict: true })).not.toThrow();
      return;
    }
    expect(probe.status, probe.stderr).toBe(0);
    const refused = config({});
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/set MESH_TOKEN/);
  });
});
