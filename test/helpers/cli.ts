import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the mesh CLI as a user would, as a separate process (with `stdin` as its standard input). */
export function mesh(args: readonly string[], env: NodeJS.ProcessEnv = {}, stdin = ""): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["orchestrator/cli/main.ts", ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    child.stdin.end(stdin);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A port that was free a moment ago (for servers that cannot take port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const p = (probe.address() as { port: number }).port;
      probe.close(() => resolve(p));
    });
  });
}
