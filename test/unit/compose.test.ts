// docker-compose.yml is a deployment people copy: it must be closed by default, keep its
// data, and run only open-source images. (Checked by hand with `docker-compose config`
// too; no Docker engine runs here.)
import { existsSync, readFileSync } from "node:fs";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";

interface Service {
  image?: string;
  command?: string[];
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

describe("docker-compose.yml", () => {
  it("pins Consul to its last MPL-2.0 release (a floating 1.16 tag reaches the BSL 1.16.5+)", () => {
    expect(compose.services["consul"]!.image).toBe("hashicorp/consul:1.16.4");
  });

  it("runs Consul as a server with its data on a volume and a restart policy, not an in-memory dev agent", () => {
    const consul = compose.services["consul"]!;
    expect(consul.command).toEqual(expect.arrayContaining(["agent", "-server", "-bootstrap-expect=1", "-data-dir=/consul/data"]));
    expect(consul.command).not.toContain("-dev");
    expect(consul.volumes).toContain("consul-data:/consul/data");
    expect(compose.volumes).toHaveProperty("consul-data");
    expect(consul.restart).toBe("unless-stopped");
  });

  it("publishes no port on every interface by default: Consul on loopback, the rest on MESH_PUBLISH_HOST (default loopback)", () => {
    for (const [name, service] of services) {
      for (const mapping of service.ports ?? []) {
        expect(mapping, `${name}: ${mapping}`).toMatch(/^(127\.0\.0\.1|\$\{MESH_PUBLISH_HOST:-127\.0\.0\.1\}):\d+:\d+$/);
      }
    }
    expect(compose.services["consul"]!.ports).toEqual(["127.0.0.1:8500:8500"]);
  });

  it("starts no agent or gateway without MESH_TOKEN", () => {
    const members = services.filter(([name]) => !["consul", ...OBSERVABILITY].includes(name));
    expect(members.map(([n]) => n).sort()).toEqual(["finance", "gateway", "hr-1", "hr-2", "knowledge", "orchestrator"]);
    for (const [name, service] of members) {
      expect(service.environment?.["MESH_TOKEN"], name).toMatch(/^\$\{MESH_TOKEN:\?/);
      expect(service.restart, name).toBe("unless-stopped");
    }
  });

  it("gives the scraper MESH_METRICS_TOKEN (which opens /metrics only) when set, else MESH_TOKEN, and every member accepts it", () => {
    expect(compose.services["otel-collector"]!.environment).toEqual({
      MESH_METRICS_TOKEN: expect.stringMatching(/^\$\{MESH_METRICS_TOKEN:-\$\{MESH_TOKEN:\?[^}]*\}\}$/),
    });
    for (const [name, service] of services.filter(([n]) => !["consul", ...OBSERVABILITY].includes(n)))
      expect(service.environment?.["MESH_METRICS_TOKEN"], name).toBe("${MESH_METRICS_TOKEN:-}");
    const collector = readFileSync(new URL("../../deploy/otel-collector.yaml", import.meta.url), "utf8");
    expect(collector).not.toContain("${env:MESH_TOKEN}");
    expect(collector.match(/credentials: \$\{env:MESH_METRICS_TOKEN\}/g)).toHaveLength(2);
  });

  it("sends every member's traces to a pinned OpenTelemetry Collector, which feeds Jaeger and Prometheus (open-source images, pinned)", () => {
    expect(compose.services["otel-collector"]!.image).toMatch(/^otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/);
    expect(compose.services["jaeger"]!.image).toMatch(/^jaegertracing\/jaeger:\d+\.\d+\.\d+$/);
    expect(compose.services["prometheus"]!.image).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
    for (const [name, service] of services.filter(([n]) => !["consul", ...OBSERVABILITY].includes(n))) {
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
    expect(jobs.find((j) => j.job_name === "toolmesh-agents")!.consul_sd_configs).toEqual([{ server: "consul:8500", tags: ["mcp"] }]);
    expect(jobs.map((j) => j.job_name)).toContain("toolmesh-gateway");
    for (const name of ["otel-collector", "prometheus"])
      for (const v of compose.services[name]!.volumes ?? [])
        expect(existsSync(new URL(`../../${v.split(":")[0]}`, import.meta.url)), v).toBe(true);
  });
});
