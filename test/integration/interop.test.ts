import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";

const run = promisify(execFile);
// The MCP Inspector's CLI: built on the v2 line of the MCP SDK, a client no one here wrote.
const INSPECTOR = fileURLToPath(
  new URL("../../node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js", import.meta.url),
);

let consul: TestConsul;
let hr: TestAgent;
const agents: Record<string, TestAgent> = {};
beforeAll(async () => {
  consul = await startTestConsul();
  for (const name of ["hr", "finance", "knowledge", "orchestrator"]) agents[name] = await spawnAgent(name, consul.address);
  hr = agents["hr"]!;
}, 60_000);
afterAll(async () => {
  await Promise.all(Object.values(agents).map((a) => a.process.stop()));
  await consul.stop();
});

async function inspector(...args: string[]): Promise<unknown> {
  const { stdout } = await run(process.execPath, [INSPECTOR, "--cli", hr.url, "--transport", "http", ...args], { timeout: 30_000 });
  return JSON.parse(stdout);
}

it.each(["hr", "finance", "knowledge", "orchestrator"])(
  "the MCP Inspector CLI's --strict schema lint finds nothing unportable in %s's tools (no type unions, no untyped schemas)",
  async (name) => {
    const { stderr } = await run(
      process.execPath,
      [INSPECTOR, "--cli", agents[name]!.url, "--transport", "http", "--method", "tools/list", "--strict"],
      { timeout: 30_000 },
    );
    // Findings ("Warning: tool ...", "Error: tool ...") are reported on stderr; nothing is printed for portable schemas.
    expect(stderr.trim()).toBe("");
  },
);

it("the MCP Inspector CLI lists an agent's tools with their schemas and annotations", async () => {
  const out = (await inspector("--method", "tools/list")) as {
    tools: { name: string; annotations?: Record<string, boolean>; outputSchema?: unknown }[];
  };
  const names = out.tools.map((t) => t.name);
  expect(names).toEqual(expect.arrayContaining(["find_employee", "request_leave", "ask"]));
  const requestLeave = out.tools.find((t) => t.name === "request_leave")!;
  expect(requestLeave.annotations).toMatchObject({ readOnlyHint: false, idempotentHint: false });
  expect(requestLeave.outputSchema).toBeDefined();
});

it("the MCP Inspector CLI calls a tool and gets structured content", async () => {
  const out = (await inspector("--method", "tools/call", "--tool-name", "get_employee", "--tool-arg", "employee_id=E1002")) as {
    structuredContent: { employee: { name: string } };
  };
  expect(out.structuredContent.employee.name).toBe("Bob Okafor");
});
