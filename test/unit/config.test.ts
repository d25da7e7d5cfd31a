import { describe, expect, it } from "vitest";
import { resolveAgentConfig } from "../../src/agent/config.ts";
import { parseConsulAddress } from "../../src/consul/address.ts";
import { isMeshError } from "../../src/protocol/errors.ts";

describe("resolveAgentConfig", () => {
  it("has safe defaults: loopback, a free port, Consul's default address, registration on", () => {
    const c = resolveAgentConfig({}, {});
    expect(c).toMatchObject({
      transport: "http",
      host: "127.0.0.1",
      port: 0,
      mcpPath: "/mcp",
      consulAddr: "http://127.0.0.1:8500",
      register: true,
      checkInterval: "1s",
      deregisterAfter: "1m",
      maxConcurrentCalls: 64,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("reads Consul's own variables and lets flags win over the environment", () => {
    const env = { CONSUL_HTTP_ADDR: "10.0.0.5:8500", CONSUL_HTTP_TOKEN: "s3cret", MESH_PORT: "7101", MESH_REGISTER: "false" };
    expect(resolveAgentConfig({}, env)).toMatchObject({ consulAddr: "10.0.0.5:8500", consulToken: "s3cret", port: 7101, register: false });
    expect(resolveAgentConfig({ port: "7200", consulAddr: "127.0.0.1:9500" }, env)).toMatchObject({
      port: 7200,
      consulAddr: "127.0.0.1:9500",
    });
  });

  it("names the setting, its variable, what was expected and what was got", () => {
    let err: unknown;
    try {
      resolveAgentConfig({ port: "99999" }, { MESH_CHECK_INTERVAL: "often" });
    } catch (e) {
      err = e;
    }
    expect(isMeshError(err) && err.code).toBe("CONFIG_INVALID");
    const msg = (err as Error).message;
    expect(msg).toMatch(/port \/ MESH_PORT: .*65535.* \(got "99999"\)/);
    expect(msg).toMatch(/checkInterval \/ MESH_CHECK_INTERVAL: expected a duration such as 500ms, 1s, 2m \(got "often"\)/);
    expect(() => resolveAgentConfig({}, { MESH_MAX_CONCURRENT_CALLS: "0" })).toThrow(
      /maxConcurrentCalls \/ MESH_MAX_CONCURRENT_CALLS: .*>=1.* \(got "0"\)/,
    );
  });

  it("rejects a Consul address that is not one", () => {
    expect(() => resolveAgentConfig({ consulAddr: "unix:///tmp/consul.sock" }, {})).toThrow(/expected http or https/);
  });
});

describe("parseConsulAddress", () => {
  it.each([
    ["127.0.0.1:8500", "http://127.0.0.1:8500", false],
    ["localhost", "http://localhost:8500", false],
    ["http://consul:8500/", "http://consul:8500", false],
    ["https://consul.example.com", "https://consul.example.com:443", true],
    ["[::1]:8500", "http://[::1]:8500", false],
  ])("%s → %s", (raw, url, secure) => {
    const a = parseConsulAddress(raw);
    expect(a.url).toBe(url);
    expect(a.secure).toBe(secure);
  });

  it("refuses a path, with a message that says what to give", () => {
    expect(() => parseConsulAddress("http://consul:8500/v1")).toThrow(/has a path; give only scheme, host and port/);
  });
});
