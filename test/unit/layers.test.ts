import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { expectedIndexes } from "../../scripts/indexes.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DEPCRUISE = join(ROOT, "node_modules/.bin/depcruise");
const run = promisify(execFile);

/** depcruise with the repository's rules over `folders` of `cwd`: its exit status and report. */
async function cruise(cwd: string, folders: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run(DEPCRUISE, [...folders, "--config", join(ROOT, ".dependency-cruiser.cjs"), "--output-type", "err"], {
      cwd,
    });
    return { code: 0, out: stdout };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, out: `${err.stdout ?? ""}${err.stderr ?? ""}` };
  }
}

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

/** A throw-away tree of TypeScript files (path → source), with the repository's tsconfig. */
function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "toolmesh-layers-"));
  scratch.push(dir);
  cpSync(join(ROOT, "tsconfig.json"), join(dir, "tsconfig.json"));
  for (const [path, source] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), source);
  }
  return dir;
}

describe("the layer rule (.dependency-cruiser.cjs, run by npm run lint)", () => {
  it("holds for the whole repository: no upward import, no cycle, no file outside a layer", async () => {
    const r = await cruise(ROOT, ["src", "orchestrator", "servers", "bench", "scripts", "test"]);
    expect(r.out).toMatch(/no dependency violations found/);
    expect(r.code).toBe(0);
  });

  it("refuses a library layer importing one above it", async () => {
    const dir = tree({
      "src/protocol/codes.ts": 'import { agent } from "../agent/run.ts";\nexport const code = agent;\n',
      "src/agent/run.ts": "export const agent = 1;\n",
    });
    const r = await cruise(dir, ["src"]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/layer-protocol: src\/protocol\/codes\.ts → src\/agent\/run\.ts/);
  });

  it("refuses the library importing the orchestrator, and the gateway's process importing the CLI", async () => {
    const dir = tree({
      "src/client/pool.ts": 'import { x } from "../../orchestrator/cli/program.ts";\nexport const y = x;\n',
      "orchestrator/cli/program.ts": "export const x = 1;\n",
      "orchestrator/gateway/run.ts": 'import { x } from "../cli/program.ts";\nexport const z = x;\n',
    });
    const r = await cruise(dir, ["src", "orchestrator"]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/layer-client: src\/client\/pool\.ts → orchestrator\/cli\/program\.ts/);
    expect(r.out).toMatch(/layer-orchestrator-gateway: orchestrator\/gateway\/run\.ts → orchestrator\/cli\/program\.ts/);
  });

  it("refuses a cycle inside one layer, even one made only of type imports", async () => {
    const dir = tree({
      "src/gateway/a.ts": 'import type { B } from "./b.ts";\nexport interface A { b?: B }\n',
      "src/gateway/b.ts": 'import type { A } from "./a.ts";\nexport interface B { a?: A }\n',
    });
    const r = await cruise(dir, ["src"]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/no-circular/);
  });

  it("refuses a source folder no layer names", async () => {
    const dir = tree({
      "src/newthing/x.ts": 'import { code } from "../protocol/codes.ts";\nexport const x = code;\n',
      "src/protocol/codes.ts": "export const code = 1;\n",
    });
    const r = await cruise(dir, ["src"]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/no-unlayered: src\/newthing\/x\.ts/);
  });
});

describe("each folder's index.ts", () => {
  it("lists exactly what other folders import from the folder (npm run indexes rewrites them)", async () => {
    const stale: string[] = [];
    for (const [path, text] of await expectedIndexes()) {
      const file = join(ROOT, path);
      if (!existsSync(file) || readFileSync(file, "utf8") !== text) stale.push(path);
    }
    expect(stale, "out of date: run npm run indexes").toEqual([]);
  });
});
