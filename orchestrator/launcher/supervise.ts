import { startDevConsul, type DevConsul } from "../../src/consul/devAgent.ts";
import { describeError } from "../../src/protocol/errors.ts";
import type { AgentProcess, ReadyInfo } from "./agentProcess.ts";
import type { MeshConsul } from "./meshConsul.ts";

/** First wait before restarting an agent that exited on its own; doubles while it keeps failing. @default 1000 */
export const RESTART_FIRST_DELAY_MS = 1_000;
/** Longest wait between restarts. @default 30000 */
export const RESTART_MAX_DELAY_MS = 30_000;
/** Uptime after which an agent's restart delay starts again from the first. @default 60000 */
export const RESTART_RESET_AFTER_MS = 60_000;
/** How often mesh up checks a Consul it did not start. @default 5000 */
export const CONSUL_CHECK_INTERVAL_MS = 5_000;

/** A process mesh up keeps running: what it says about it, and where its log is. */
export interface Supervised extends ReadyInfo {
  label: string;
  logFile: string;
  process: AgentProcess;
}

/**
 * Starts an agent again (same label, port and log) whenever it exits while the mesh is up:
 * after RESTART_FIRST_DELAY_MS, doubling up to RESTART_MAX_DELAY_MS while it keeps failing,
 * back to the first delay once it has stayed up RESTART_RESET_AFTER_MS.
 */
export function superviseAgent(inst: Supervised, progress: (line: string) => void, stopping: () => boolean): void {
  let delay = RESTART_FIRST_DELAY_MS;
  let startedAt = Date.now();
  const watch = () =>
    void inst.process.exited.then(async (code) => {
      if (stopping()) return;
      if (Date.now() - startedAt >= RESTART_RESET_AFTER_MS) delay = RESTART_FIRST_DELAY_MS;
      progress(`${inst.label} exited (code ${code}); starting it again in ${delay / 1_000} s; its log: ${inst.logFile}`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, RESTART_MAX_DELAY_MS);
      if (stopping()) return;
      startedAt = Date.now();
      try {
        Object.assign(inst, await inst.process.start());
        progress(`${inst.label} is back (${inst.instanceId}, pid ${inst.pid})`);
      } catch (e) {
        progress(`${inst.label} did not start again: ${describeError(e)}`);
        inst.process.kill(); // a start that timed out leaves a process: its exit schedules the next try
      }
      watch();
    });
  watch();
}

/**
 * Starts the Consul mesh up runs again whenever it exits while the mesh is up (after 1 s,
 * doubling to 30 s while it keeps failing), saying so. With a data directory it comes back
 * with everything it had; a -dev agent comes back empty, and the agents notice the empty
 * catalog and register again by themselves (their reconcile loop), saying their data is lost.
 */
export function superviseConsul(consul: MeshConsul, progress: (line: string) => void, stopping: () => boolean): { stop(): void } {
  const kind = consul.dataDir ? "Consul" : "the Consul dev agent";
  let delay = RESTART_FIRST_DELAY_MS;
  let stopped = false;
  const watch = (agent: DevConsul) =>
    void agent.exited.then(async (code) => {
      if (stopped || stopping()) return;
      progress(`${kind} exited (code ${code}); starting it again in ${delay / 1_000} s (agents keep serving meanwhile)`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, RESTART_MAX_DELAY_MS);
      if (stopped || stopping()) return;
      try {
        const fresh = await startDevConsul(consul.devOptions!);
        consul.dev = fresh;
        delay = RESTART_FIRST_DELAY_MS;
        progress(
          consul.dataDir
            ? `Consul is back at ${fresh.address} (pid ${fresh.process.pid}) with its data (${consul.dataDir})`
            : `Consul is back at ${fresh.address} (pid ${fresh.process.pid}), empty (a dev agent keeps nothing); the agents register again within seconds`,
        );
        watch(fresh);
      } catch (e) {
        progress(`${kind} did not start again: ${describeError(e)}; trying again`);
        watch({ ...consul.dev!, exited: Promise.resolve(null) });
      }
    });
  watch(consul.dev!);
  return { stop: () => void (stopped = true) };
}

/** Says when a Consul that mesh up did not start becomes unreachable, and when it is back. */
export function watchConsul(consul: MeshConsul, progress: (line: string) => void, stopping: () => boolean): { stop(): void } {
  const address = consul.addresses.join(",");
  let down = false;
  const timer = setInterval(() => {
    if (stopping()) return;
    void consul.client.leader({ timeoutMs: 2_000 }).then(
      (leader) => {
        if (down && leader) progress(`Consul at ${address} is reachable again; the agents register again within seconds`);
        if (leader) down = false;
      },
      (e: unknown) => {
        if (!down) progress(`Consul at ${address} is unreachable (${describeError(e)}); agents keep serving from their last-known catalog`);
        down = true;
      },
    );
  }, CONSUL_CHECK_INTERVAL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
