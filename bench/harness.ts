// What every section of `npm run bench` shares: the dev Consul, the processes it starts (and
// stops at the end), the clients of both SDK lines, the caller, and the Markdown it prints.
import { spawn, type ChildProcess } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as V1Transport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { AgentProcess } from "../orchestrator/launcher/agentProcess.ts";
import { MeshClient } from "../src/client/meshClient.ts";
import { ConsulClient } from "../src/consul/client.ts";
import { resolveConsulBinary, startDevConsul, type DevConsul } from "../src/consul/devAgent.ts";

export const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
export const ECHO = here("./echoAgent.ts");
export const GATEWAY = here("../orchestrator/gateway/main.ts");
export const PROBE = here("../test/fixtures/probeAgent.ts");
/** BENCH_QUICK=1: every measurement shortened, one repetition (a smoke run). */
export const QUICK = process.env["BENCH_QUICK"] === "1";
/** A positive integer from the environment (BENCH_REPS, BENCH_MS, BENCH_CALLS override the defaults), or `fallback`. */
function envInt(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isSafeInteger(v) && v > 0 ? v : fallback;
}
export const LATENCY_CALLS = envInt("BENCH_CALLS", QUICK ? 200 : 2_000);
export const THROUGHPUT_MS = envInt("BENCH_MS", QUICK ? 500 : 3_000);
/** Interleaved repetitions of every ladder point (medians and spread are over them). */
export const REPS = envInt("BENCH_REPS", QUICK ? 1 : 3);

/** An agent (or the gateway) started by the bench, and its process. */
export type Started = Awaited<ReturnType<Bench["agent"]>>;

/** The bench's shared state: one dev Consul, the processes started so far, the printed report. */
export class Bench {
  readonly out: string[] = [];
  private readonly children: { stop(): Promise<unknown> }[] = [];
  private seq = 0;
  private readonly logDir = mkdtempSync(join(tmpdir(), "toolmesh-bench-"));
  readonly consul: DevConsul;
  readonly consulClient: ConsulClient;
  readonly mesh: MeshClient;
  /** The gateway every section's "through the gateway" path goes through (started on first use). */
  private gatewayStarted: Promise<Started> | undefined;

  private constructor(consul: DevConsul) {
    this.consul = consul;
    this.children.push({ stop: () => consul.stop() });
    this.consulClient = new ConsulClient({ address: consul.address });
    this.mesh = new MeshClient({ consul: this.consulClient, callerName: "bench" });
    this.children.push({ stop: () => this.mesh.close() });
  }

  /**
   * Starts a dev Consul on its own loopback address. Every process here talks to Consul from
   * one IP; a caller watching every agent kind holds one blocking query per kind, and the
   * catalog section has 200 kinds: Consul's default of 200 concurrent connections per client
   * IP would refuse some (see docs/limits.md).
   */
  static async start(): Promise<Bench> {
    const consulBin = await resolveConsulBinary();
    const bind = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(2, 255)}`;
    const logDir = mkdtempSync(join(tmpdir(), "toolmesh-bench-consul-"));
    const consul = await startDevConsul({
      bindAddress: bind,
      binary: consulBin,
      logFile: join(logDir, "consul.log"),
      hcl: "limits { http_max_conns_per_client = 2000 }",
    });
    return new Bench(consul);
  }

  /** Prints a line and keeps it for the report. */
  say(s = ""): void {
    console.log(s);
    this.out.push(s);
  }

  /** Starts an agent process (the echo agent unless `entry` says otherwise) registered in this Consul. */
  async agent(env: NodeJS.ProcessEnv, entry = ECHO, readyMessage?: string) {
    const seq = ++this.seq;
    const p = new AgentProcess({
      agent: entry,
      label: `bench-${seq}`,
      port: 0,
      consul: this.consul.address,
      logFile: join(this.logDir, `bench-${seq}.log`),
      env: { MESH_LOG_LEVEL: "warn", ...env },
      ...(readyMessage ? { readyMessage } : {}),
    });
    // The ready line is logged at info: keep info for start-up, the agent logs little else.
    p.options.env!["MESH_LOG_LEVEL"] = "info";
    const ready = await p.start();
    this.children.push({ stop: () => p.stop(3_000) });
    return { ...ready, process: p };
  }

  /** The shared gateway process (one per run, started on first use). */
  gateway(): Promise<Started> {
    this.gatewayStarted ??= this.agent({}, GATEWAY, "gateway ready");
    return this.gatewayStarted;
  }

  /** Starts a plain node:http child that prints its URL on its first line; `args` are its arguments. */
  async plainServer(entry: string, ...args: string[]): Promise<{ url: string; pid: number }> {
    const child: ChildProcess = spawn(process.execPath, [entry, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    this.children.push({ stop: async () => void child.kill("SIGTERM") });
    const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once("line", resolve));
    return { url: line.trim(), pid: child.pid! };
  }

  /**
   * Registers an HTTP endpoint as a toolmesh agent kind `name` (tag "bench", not "mcp": the
   * gateway itself does not see it), so toolmesh's caller can call through it.
   */
  async register(name: string, url: string): Promise<void> {
    const u = new URL(url);
    await this.consulClient.registerService({
      id: `${name}-1`,
      name,
      address: u.hostname,
      port: Number(u.port),
      tags: ["bench"],
      meta: { toolmesh_version: "bench", mcp_protocols: "2026-07-28", mcp_path: u.pathname },
    });
  }

  /** A client on the SDK's v1 line: 2025-11-25, one session (what most MCP clients in the field are). */
  async v1Client(url: string): Promise<V1Client> {
    const c = new V1Client({ name: "bench", version: "1" });
    await c.connect(new V1Transport(new URL(url)));
    this.children.push({ stop: () => c.close() });
    return c;
  }

  /** A v2 SDK client pinned to 2026-07-28: no session, every call one POST with its envelope. */
  async v2Client(url: string): Promise<Client> {
    const c = new Client({ name: "bench", version: "1" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
    await c.connect(new StreamableHTTPClientTransport(new URL(url)));
    this.children.push({ stop: () => c.close() });
    return c;
  }

  /** Stops everything started, newest first. */
  async stop(): Promise<void> {
    this.consulClient.destroy();
    await Promise.allSettled(this.children.reverse().map((c) => c.stop()));
  }
}

/** Polls `cond` until it holds; throws after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error("bench: condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The median of a list of numbers. */
export const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
