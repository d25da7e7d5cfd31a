// CPU accounting for bench/run.ts: process CPU time from /proc (where the cores went), and
// summaries of V8 CPU profiles (where the time went inside a process).
import { readFileSync } from "node:fs";

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); undefined elsewhere. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat (here 11 and 12 after the command name), in clock ticks.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** CPU used by groups of processes while `work` runs, as a share of one core each. */
export async function cpuShare<T>(
  groups: Record<string, number[]>,
  work: () => Promise<T>,
): Promise<{ result: T; share: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, pids.map(cpuSeconds)]));
  const t0 = performance.now();
  const result = await work();
  const wall = (performance.now() - t0) / 1_000;
  const share: Record<string, number> = {};
  for (const [k, pids] of Object.entries(groups)) {
    let used = 0;
    pids.forEach((pid, i) => (used += (cpuSeconds(pid) ?? 0) - (before[k]![i] ?? 0)));
    share[k] = used / wall;
  }
  return { result, share };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Frames that are not the path being measured: module loading at start-up, the profiler's own calls. */
const NOT_THE_PATH =
  /^(compileSourceTextModule|wrapSafe|compileForInternalLoader|__require|post) |(loader|realm|translators|module_job|typescript|inspector):/;

/** The functions with the most self time in a V8 CPU profile, idle, start-up and the profiler left out. */
export function topSelfTime(profile: Profile, count = 12): { fn: string; share: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node) return;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)" || functionName === "(program)") return;
    const file = url.split("/").pop() || "(native)";
    if (NOT_THE_PATH.test(`${functionName} ${file}:`)) return;
    const dt = profile.timeDeltas[i] ?? 0;
    busy += dt;
    const key = `${functionName || "(anonymous)"} ${file}${lineNumber >= 0 ? `:${lineNumber + 1}` : ""}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([fn, t]) => ({ fn, share: busy ? t / busy : 0 }));
}
