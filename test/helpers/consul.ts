import { randomInt } from "node:crypto";
import { ConsulClient } from "../../src/consul/client.ts";
import { resolveConsulBinary, startDevConsul, type DevConsul, type DevConsulOptions } from "../../src/consul/devAgent.ts";

let binary: Promise<string> | undefined;

/** A loopback address of its own for each dev agent, so parallel test files never collide. */
export function randomLoopback(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(2, 255)}`;
}

export interface TestConsul {
  readonly address: string;
  readonly bind: string;
  /** A client for assertions (destroyed by stop()). */
  readonly client: ConsulClient;
  readonly agent: DevConsul;
  /** Kills the agent and, after `downMs`, starts a fresh one (empty catalog) on the same address. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts an isolated `consul agent -dev` on a random loopback address and waits for a leader. */
export async function startTestConsul(extra: Pick<DevConsulOptions, "hcl" | "token"> = {}): Promise<TestConsul> {
  binary ??= resolveConsulBinary();
  const bin = await binary;
  const bind = randomLoopback();
  let agent = await startDevConsul({ bindAddress: bind, binary: bin, ...extra });
  const client = new ConsulClient({ address: agent.address, token: extra.token });
  return {
    get address() {
      return agent.address;
    },
    bind,
    client,
    get agent() {
      return agent;
    },
    async restart(downMs = 0) {
      agent.kill("SIGKILL");
      await agent.exited;
      await new Promise((r) => setTimeout(r, downMs)); // the outage's length: the scenario itself
      agent = await startDevConsul({ bindAddress: bind, binary: bin, ...extra });
    },
    async stop() {
      client.destroy();
      await agent.stop();
    },
  };
}
