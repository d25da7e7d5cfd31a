// The CPU profiles of `npm run bench`: V8 profiles of the caller (this process), an agent and
// the gateway on the toolmesh paths, summarised as the functions with the most self time.
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { topSelfTime } from "./cpu.ts";
import type { Bench } from "./harness.ts";
import { GATEWAY, QUICK, waitFor } from "./harness.ts";
import { measure, table } from "./lib.ts";

type Profile = Parameters<typeof topSelfTime>[0];

/** Profiles the direct and gateway paths; returns the Markdown of bench/results/profiles.md. */
export async function profilesSection(b: Bench): Promise<string[]> {
  const profDir = mkdtempSync(join(tmpdir(), "toolmesh-profiles-"));
  const profEnv = { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir}` };
  const profAgent = await b.agent({ BENCH_AGENT_NAME: "prof-echo", ...profEnv });
  const profGateway = await b.agent({ ...profEnv }, GATEWAY, "gateway ready");
  await b.register("prof-gw", new URL("/agents/prof-echo/mcp", profGateway.url).href);
  await waitFor(
    async () => (await fetch(new URL("/agents/prof-echo/mcp", profGateway.url), { method: "POST", body: "{}" })).status !== 404,
  );
  const inspector = new Session();
  inspector.connect();
  await inspector.post("Profiler.enable");
  const clientProfile = async (call: () => Promise<unknown>) => {
    await measure(call, { concurrency: 16, warmup: 200, durationMs: 200 });
    await inspector.post("Profiler.start");
    await measure(call, { concurrency: 16, warmup: 0, durationMs: QUICK ? 1_000 : 3_000 });
    return (await inspector.post("Profiler.stop")).profile as unknown as Profile;
  };
  const payload = "x".repeat(100);
  const callerSide = await clientProfile(() => b.mesh.callTool("prof-echo", "echo", { payload }));
  const callerViaGateway = await clientProfile(() => b.mesh.callTool("prof-gw", "echo", { payload }));
  inspector.disconnect();
  await profAgent.process.stop(5_000);
  await profGateway.process.stop(5_000);
  const written = (pid: number | undefined) => {
    const file = readdirSync(profDir).find((f) => f.includes(`.${pid}.`));
    return file ? (JSON.parse(readFileSync(join(profDir, file), "utf8")) as Profile) : undefined;
  };
  return profileMarkdown([
    ["toolmesh caller → agent: the caller", callerSide],
    ["toolmesh caller → gateway → agent: the caller", callerViaGateway],
    ["the agent (serving both runs)", written(profAgent.process.pid)],
    ["the gateway (/agents/<name>/mcp)", written(profGateway.process.pid)],
  ]);
}

/** One table of top self time per profile. */
function profileMarkdown(profiles: [string, Profile | undefined][]): string[] {
  const md = [
    `# CPU profiles of the toolmesh paths`,
    ``,
    `Written by \`npm run bench\` (${new Date().toISOString().slice(0, 10)}): 100 B echo calls at concurrency 16; top functions by self time, as a share of each process's busy time.`,
  ];
  for (const [name, profile] of profiles) {
    md.push("", `## ${name}`, "");
    if (!profile) {
      md.push("(no profile written)");
      continue;
    }
    md.push(
      table(
        ["function", "self time"],
        topSelfTime(profile).map((r) => [r.fn, `${(r.share * 100).toFixed(1)}%`]),
      ),
    );
  }
  return md;
}
