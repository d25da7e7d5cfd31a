// The Consul client used as a cluster is meant to be used, against a real Consul behind a
// proxy that misbehaves the way a cluster does during an election: answers lost after the
// write was applied, "No cluster leader", an address that does not answer. Plus TLS by
// Consul's own variables against a real HTTPS Consul.
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ConsulClient } from "../../src/consul/client.ts";
import { resolveConsulBinary, startDevConsul } from "../../src/consul/devAgent.ts";
import { consulSettings } from "../../src/consul/settings.ts";
import { isMeshError } from "../../src/protocol/errors.ts";
import { withFence, type Fence } from "../../src/state/fence.ts";
import { ConsulKvState } from "../../src/state/sharedState.ts";
import { randomLoopback, startTestConsul, type TestConsul } from "../helpers/consul.ts";

const run = promisify(execFile);
let consul: TestConsul;

/** What the proxy does with the next PUTs: forward and drop the answer, or answer 500 without forwarding. */
type Mischief = "drop-answer" | "no-leader" | "drop-answer-then-no-leader";

/** An HTTP proxy in front of Consul that misbehaves on the next PUTs it is told to, and counts what it forwarded. */
async function proxy(
  target: string,
): Promise<{ url: string; plan: Mischief[]; forwardedPuts: number; leaderlessReads: boolean; close(): Promise<void> }> {
  const state = { plan: [] as Mischief[], forwardedPuts: 0, leaderlessReads: false };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        const mischief = req.method === "PUT" ? state.plan.shift() : state.leaderlessReads ? "no-leader" : undefined;
        if (mischief === "no-leader") {
          res.writeHead(500, { "content-type": "text/plain" }).end("No cluster leader");
          return;
        }
        if (req.method === "PUT") state.forwardedPuts++;
        const up = await fetch(new URL(req.url!, target), {
          method: req.method!,
          headers: { "content-type": req.headers["content-type"] ?? "application/json" },
          ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
        });
        const body = Buffer.from(await up.arrayBuffer());
        if (mischief === "drop-answer" || mischief === "drop-answer-then-no-leader") {
          req.socket.destroy(); // Consul applied it; the caller never hears so
          if (mischief === "drop-answer-then-no-leader") state.leaderlessReads = true; // and reading it back finds no leader
          return;
        }
        const headers: Record<string, string> = {};
        up.headers.forEach((v, k) => (headers[k] = v));
        delete headers["content-length"];
        delete headers["content-encoding"];
        res.writeHead(up.status, headers).end(body);
      })();
    });
  });
  const host = randomLoopback();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as { port: number }).port;
  return Object.assign(state, {
    url: `http://${host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

beforeAll(async () => {
  consul = await startTestConsul();
});
afterAll(async () => {
  await consul.stop();
});

describe("writes through an election", () => {
  test("a check-and-set whose answer was lost is read back, not sent again: applied once, reported applied", async () => {
    const p = await proxy(consul.address);
    const c = new ConsulClient({ address: p.url, retryMs: 10_000 });
    try {
      const key = `toolmesh/test/cas-${Date.now()}`;
      p.plan.push("drop-answer");
      expect(await c.kvSet(key, "first", { cas: 0 })).toBe(true);
      expect(p.forwardedPuts).toBe(1); // sent once: the read-back found it applied
      const entry = await consul.client.kvGet(key);
      expect(entry?.value).toBe("first");
      // Its next check-and-set on the index it now holds works: nothing else wrote the key.
      expect(await c.kvSet(key, "second", { cas: entry!.modifyIndex })).toBe(true);
    } finally {
      c.destroy();
      await p.close();
    }
  });

  test("a transaction whose answer was lost is read back: applied once, with the new indexes", async () => {
    const p = await proxy(consul.address);
    const c = new ConsulClient({ address: p.url, retryMs: 10_000 });
    try {
      const claim = `toolmesh/test/claim-${Date.now()}`;
      const value = `toolmesh/test/value-${Date.now()}`;
      p.plan.push("drop-answer");
      const r = await c.kvTxn([
        { verb: "cas", key: claim, value: "claimed", index: 0 },
        { verb: "cas", key: value, value: "booked once", index: 0 },
      ]);
      expect(p.forwardedPuts).toBe(1);
      expect(r.ok).toBe(true);
      const claimEntry = await consul.client.kvGet(claim);
      expect(r.ok && r.results.find((x) => x.key === claim)?.modifyIndex).toBe(claimEntry!.modifyIndex);
      expect((await consul.client.kvGet(value))?.value).toBe("booked once");
    } finally {
      c.destroy();
      await p.close();
    }
  });

  test('"No cluster leader" is retried with backoff (nothing was applied) and the write lands once', async () => {
    const p = await proxy(consul.address);
    const c = new ConsulClient({ address: p.url, retryMs: 10_000 });
    try {
      const key = `toolmesh/test/leaderless-${Date.now()}`;
      p.plan.push("no-leader", "no-leader", "no-leader");
      expect(await c.kvSet(key, "v", { cas: 0 })).toBe(true);
      expect(p.forwardedPuts).toBe(1);
      expect(p.plan).toEqual([]);
    } finally {
      c.destroy();
      await p.close();
    }
  });

  test("with its retry budget spent, a leaderless write is a retryable CONSUL_REJECTED that says the cluster has no leader", async () => {
    const p = await proxy(consul.address);
    const c = new ConsulClient({ address: p.url, retryMs: 300 });
    try {
      p.plan.push(...Array<Mischief>(50).fill("no-leader"));
      const err = await c.kvSet(`toolmesh/test/x-${Date.now()}`, "v", { cas: 0 }).catch((e: unknown) => e);
      expect(isMeshError(err)).toBe(true);
      expect(err).toMatchObject({ code: "CONSUL_REJECTED", retryable: true });
      expect((err as Error).message).toMatch(/no leader/);
      expect(p.forwardedPuts).toBe(0);
    } finally {
      c.destroy();
      await p.close();
    }
  });

  test("a write whose outcome nobody can tell: CONSUL_WRITE_UNKNOWN, not sent again; retryable only when an idempotency claim fences it", async () => {
    const p = await proxy(consul.address);
    const c = new ConsulClient({ address: p.url, retryMs: 300 });
    const state = new ConsulKvState(c, `toolmesh/test/unknown-${Date.now()}`);
    try {
      // Its answer is lost, and every read-back finds no leader until the budget is spent.
      const lose = () => p.plan.push("drop-answer-then-no-leader");
      const claimKey = `toolmesh/test/claim-unknown-${Date.now()}`;
      const claimIndex = (await consul.client.kvTxn([{ verb: "cas", key: claimKey, value: "claim", index: 0 }])) as {
        ok: true;
        results: { key: string; modifyIndex: number }[];
      };
      const fence: Fence = {
        kind: "claim",
        label: "finance.submit_expense (idempotency key)",
        guard: () => ({ key: claimKey, index: claimIndex.results[0]!.modifyIndex, value: "claim, applied", sentAt: Date.now() }),
        committed: () => undefined,
        lost: () => {
          throw new Error("lost");
        },
        assertHeld: () => undefined,
        verify: async () => undefined,
        exclusive: (fn) => fn(),
        applied: false,
        open: true,
      };
      const before = p.forwardedPuts;
      lose();
      const keyed = await withFence(fence, () => state.update<number>("booked", (n) => (n ?? 0) + 1)).catch((e: unknown) => e);
      expect(keyed).toMatchObject({ code: "CONSUL_WRITE_UNKNOWN", retryable: true });
      expect(p.forwardedPuts - before).toBe(1); // never sent again blind
      p.leaderlessReads = false;
      lose();
      const unkeyed = await state.update<number>("plain", (n) => (n ?? 0) + 1).catch((e: unknown) => e);
      expect(unkeyed).toMatchObject({ code: "CONSUL_WRITE_UNKNOWN", retryable: false });
      expect((unkeyed as Error).message).toMatch(/It was not sent again/);
    } finally {
      p.leaderlessReads = false;
      c.destroy();
      await p.close();
    }
  });
});

test("several addresses: when the first cannot be reached the next serves, and the client stays there", async () => {
  const dead = `http://${randomLoopback()}:8500`;
  const c = new ConsulClient({ address: `${dead},${consul.address}`, retryMs: 0 });
  try {
    expect(c.addresses.map((a) => a.url)).toEqual([dead, consul.address]);
    expect(await c.leader()).not.toBe("");
    expect(c.address.url).toBe(consul.address);
    expect(await c.kvSet(`toolmesh/test/failover-${Date.now()}`, "v")).toBe(true);
  } finally {
    c.destroy();
  }
});

test("a hundred blocking queries at once do not hold up a short request (no cap on connections)", async () => {
  const c = new ConsulClient({ address: consul.address });
  const stop = new AbortController();
  try {
    const { index } = await c.catalogServices();
    let settled = 0;
    const waits = Array.from({ length: 100 }, () =>
      c
        .catalogServices({ index, wait: "60s", signal: stop.signal })
        .catch(() => undefined)
        .finally(() => settled++),
    );
    expect(await c.kvGet(`toolmesh/test/absent-${Date.now()}`)).toBeUndefined();
    expect(settled).toBe(0); // answered while every blocking query still waits
    stop.abort();
    await Promise.all(waits);
  } finally {
    c.destroy();
  }
});

test("discovery reads are stale reads with a bounded max_stale (they work while there is no leader)", async () => {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url!);
    res.writeHead(200, { "content-type": "application/json", "x-consul-index": "7" }).end("[]");
  });
  const host = randomLoopback();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const c = new ConsulClient({ address: `http://${host}:${(server.address() as { port: number }).port}`, maxStale: "12s" });
  try {
    await c.healthService("hr", { passing: true });
    await c.catalogServices();
    expect(seen).toEqual(["/v1/health/service/hr?passing=&stale=&max_stale=12s", "/v1/catalog/services?stale=&max_stale=12s"]);
  } finally {
    c.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

describe("Consul's own variables", () => {
  test("CONSUL_HTTP_SSL, CONSUL_HTTP_TOKEN_FILE, MESH_CONSUL_RETRY_MS; bad values name their variable", () => {
    const dir = mkdtempSync(join(tmpdir(), "toolmesh-settings-"));
    expect(consulSettings({}, { CONSUL_HTTP_ADDR: "10.0.0.1:8501,10.0.0.2:8501", CONSUL_HTTP_SSL: "true" }).address).toBe(
      "https://10.0.0.1:8501,https://10.0.0.2:8501",
    );
    expect(consulSettings({ address: "http://a:1", token: "t" }, { CONSUL_HTTP_ADDR: "b:2", CONSUL_HTTP_TOKEN: "u" })).toMatchObject({
      address: "http://a:1",
      token: "t",
    });
    expect(consulSettings({}, { MESH_CONSUL_RETRY_MS: "0" }).retryMs).toBe(0);
    for (const [env, message] of [
      [{ CONSUL_CACERT: join(dir, "missing.pem") }, /CONSUL_CACERT names .*missing\.pem, which cannot be read/],
      [{ CONSUL_HTTP_SSL: "maybe" }, /CONSUL_HTTP_SSL is "maybe"; expected true or false/],
      [{ CONSUL_CLIENT_CERT: __filename }, /CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY go together/],
      [{ MESH_CONSUL_RETRY_MS: "soon" }, /MESH_CONSUL_RETRY_MS is "soon"/],
      [{ CONSUL_HTTP_ADDR: "ftp://x" }, /uses ftp/],
    ] as const) {
      expect(() => consulSettings({}, env)).toThrow(message);
    }
  });

  test("HTTPS with CONSUL_CACERT and CONSUL_TLS_SERVER_NAME against a real Consul; without the CA it is refused", async () => {
    const bin = await resolveConsulBinary();
    const dir = mkdtempSync(join(tmpdir(), "toolmesh-tls-"));
    await run(bin, ["tls", "ca", "create"], { cwd: dir });
    await run(bin, ["tls", "cert", "create", "-server", "-dc", "dc1"], { cwd: dir });
    const bind = randomLoopback();
    const agent = await startDevConsul({
      bindAddress: bind,
      binary: bin,
      hcl: `ports { https = 8501 } tls { defaults { ca_file = "${dir}/consul-agent-ca.pem" cert_file = "${dir}/dc1-server-consul-0.pem" key_file = "${dir}/dc1-server-consul-0-key.pem" } }`,
    });
    try {
      const ok = new ConsulClient(
        consulSettings(
          {},
          {
            CONSUL_HTTP_ADDR: `${bind}:8501`,
            CONSUL_HTTP_SSL: "true",
            CONSUL_CACERT: join(dir, "consul-agent-ca.pem"),
            CONSUL_TLS_SERVER_NAME: "server.dc1.consul",
          },
        ),
      );
      expect(await ok.leader()).not.toBe("");
      ok.destroy();
      const untrusted = new ConsulClient(
        consulSettings({}, { CONSUL_HTTP_ADDR: `https://${bind}:8501`, CONSUL_TLS_SERVER_NAME: "server.dc1.consul" }),
      );
      const err = await untrusted.leader().catch((e: unknown) => e);
      untrusted.destroy();
      expect(err).toMatchObject({ code: "CONSUL_UNREACHABLE" });
    } finally {
      await agent.stop();
    }
  });
});
