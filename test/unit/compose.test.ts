// docker-compose.yml is a deployment people copy: it must be closed by default, keep its
// data, and run only open-source images. (Checked by hand with `docker-compose config`
// too; no Docker engine runs here.)
import { readFileSync } from "node:fs";
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
    const members = services.filter(([name]) => name !== "consul");
    expect(members.map(([n]) => n).sort()).toEqual(["finance", "gateway", "hr-1", "hr-2", "knowledge", "orchestrator"]);
    for (const [name, service] of members) {
      expect(service.environment?.["MESH_TOKEN"], name).toMatch(/^\$\{MESH_TOKEN:\?/);
      expect(service.restart, name).toBe("unless-stopped");
    }
  });
});
