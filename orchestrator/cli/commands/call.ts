import { Command } from "commander";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv-provider.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { rootContext } from "../../../src/context/meshContext.ts";
import { ToolError, UsageError } from "../errors.ts";
import { addMeshOptions, withMesh, type MeshFlags } from "../mesh.ts";

interface CallFlags extends MeshFlags {
  arg: string[];
  session?: string;
  timeout: string;
}

const TARGET = /^([a-z][a-z0-9-]*)\.([A-Za-z0-9_.-]+)$/;

export function callCommand(): Command {
  return addMeshOptions(
    new Command("call")
      .description("call a tool through discovery and print its result")
      .argument("<agent.tool>", "e.g. hr.get_leave_balance")
      .argument("[json]", "arguments as a JSON object")
      .option(
        "--arg <key=value>",
        "one argument (repeatable); the value is read as the tool's schema types it",
        (v: string, acc: string[]) => [...acc, v],
        [],
      )
      .option("--session <id>", "session id carried in the call's context")
      .option("--timeout <ms>", "deadline for the whole call", "30000"),
  )
    .addHelpText(
      "after",
      `\nExamples:\n  mesh call hr.get_leave_balance --arg employee_id=E1002\n  mesh call finance.submit_expense '{"employee_id":"E1004","department":"Sales","category":"meals","amount":42,"description":"Lunch"}'`,
    )
    .action(async (target: string, json: string | undefined, flags: CallFlags) => {
      const m = TARGET.exec(target);
      if (!m) throw new UsageError(`"${target}" is not agent.tool, e.g. hr.get_leave_balance.`);
      const [, agentName, toolName] = m as unknown as [string, string, string];
      const timeoutMs = Number(flags.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
        throw new UsageError(`--timeout must be a positive whole number of milliseconds; got "${flags.timeout}".`);
      await withMesh(flags, async ({ mesh }) => {
        const agent = mesh.catalog.agent(agentName);
        if (!agent || agent.instances.length === 0) {
          throw new UsageError(
            `Unknown agent "${agentName}" (no healthy instance). Agents: ${
              mesh.catalog
                .agents()
                .map((a) => a.name)
                .join(", ") || "none"
            }.`,
          );
        }
        // Tools that could not be listed (e.g. no token for the agent): call anyway, untyped,
        // and let the agent's answer (or refusal) say what is wrong.
        const tool =
          agent.tools.find((t) => t.name === toolName) ??
          (agent.toolsError ? { name: toolName, inputSchema: { type: "object" as const } } : undefined);
        if (!tool)
          throw new UsageError(`Agent "${agentName}" has no tool "${toolName}". Its tools: ${agent.tools.map((t) => t.name).join(", ")}.`);
        const args = parseArguments(tool, json, flags.arg);
        const check = new AjvJsonSchemaValidator().getValidator(tool.inputSchema as never)(args);
        if (!check.valid) {
          throw new UsageError(
            `Arguments for ${target} do not match its input schema: ${check.errorMessage}. See "mesh tools ${agentName}".`,
          );
        }
        const context = rootContext({ caller: "mesh-cli", timeoutMs, ...(flags.session ? { sessionId: flags.session } : {}) });
        const { result, instance } = await mesh.call(agentName, toolName, args, { context, timeoutMs });
        report(flags, target, result, instance, context.traceId);
      });
    });
}

/** Merges a JSON object and --arg pairs; --arg values follow the schema's type for that key. */
export function parseArguments(tool: Tool, json: string | undefined, pairs: readonly string[]): Record<string, unknown> {
  let args: Record<string, unknown> = {};
  if (json !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch (e) {
      throw new UsageError(
        `The arguments are not valid JSON (${(e as Error).message}). Quote them for the shell, e.g. '{"employee_id":"E1002"}', or use --arg key=value.`,
      );
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed))
      throw new UsageError('The arguments must be a JSON object, e.g. \'{"employee_id":"E1002"}\'.');
    args = parsed as Record<string, unknown>;
  }
  const props = (tool.inputSchema.properties ?? {}) as Record<string, { type?: string | string[] }>;
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--arg "${pair}" is not key=value.`);
    const key = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    const type = props[key]?.type;
    const wantsString = type === "string" || (Array.isArray(type) && type.includes("string"));
    if (wantsString) args[key] = raw;
    else {
      try {
        args[key] = JSON.parse(raw);
      } catch {
        args[key] = raw;
      }
    }
  }
  return args;
}

function report(flags: MeshFlags, target: string, result: CallToolResult, instance: string, traceId: string): void {
  const text = result.content
    .map((c) => (c.type === "text" ? c.text : `[${c.type}]`))
    .join("\n")
    .trim();
  if (flags.json) {
    process.stdout.write(
      `${JSON.stringify({ target, instance, traceId, isError: Boolean(result.isError), structuredContent: result.structuredContent ?? null, content: result.content }, null, 2)}\n`,
    );
  } else if (!result.isError) {
    process.stdout.write(`${result.structuredContent ? JSON.stringify(result.structuredContent, null, 2) : text}\n`);
  }
  process.stderr.write(`${target} answered by ${instance} · trace ${traceId}\n`);
  if (result.isError) throw new ToolError(text || `${target} failed`);
}
