// `mesh call`: the call as its command line asks for it (target, deadline, idempotency key,
// arguments), checked before and after the agent's tools are known.
import { readFileSync } from "node:fs";
import { fromJsonSchema, type JsonSchemaType, type Tool } from "@modelcontextprotocol/client";
import { argumentProblem } from "../../../src/protocol/limits.ts";
import { IDEMPOTENCY_KEY_PATTERN } from "../../../src/context/meshContext.ts";
import type { CatalogAgent } from "../../../src/discovery/catalog.ts";
import { UsageError } from "../../common/errors.ts";
import { parseTimeout } from "../../common/options.ts";
import type { MeshFlags } from "../mesh.ts";

export interface CallFlags extends MeshFlags {
  arg: string[];
  argsFile?: string;
  session?: string;
  timeout: string;
  idempotencyKey?: string;
  task?: boolean;
}

/** A call as the command line asks for it, checked as far as it can be without the mesh. */
export interface CallRequest {
  /** agent.tool, as given. */
  target: string;
  agent: string;
  tool: string;
  flags: CallFlags;
  /** The arguments' JSON text (positional, --args-file or stdin), if any. */
  text: string | undefined;
  /** The --timeout budget, and the deadline it sets (epoch ms, discovery counted). */
  timeoutMs: number;
  deadline: number;
}

const TARGET = /^([a-z][a-z0-9-]*)\.([A-Za-z0-9_.-]+)$/;

/** Checks the target, --timeout and --idempotency-key, reads the arguments' text, and starts the deadline. */
export function callRequest(target: string, json: string | undefined, flags: CallFlags): CallRequest {
  const m = TARGET.exec(target);
  if (!m) throw new UsageError(`"${target}" is not agent.tool, e.g. hr.get_leave_balance.`);
  const [, agent, tool] = m as unknown as [string, string, string];
  const timeoutMs = parseTimeout(flags.timeout);
  if (flags.idempotencyKey !== undefined && !IDEMPOTENCY_KEY_PATTERN.test(flags.idempotencyKey))
    throw new UsageError(
      `--idempotency-key "${flags.idempotencyKey}" is invalid: 8 to 200 of A-Z a-z 0-9 . _ : + / = - (a UUID works, e.g. from uuidgen).`,
    );
  const text = argumentsText(json, flags.argsFile);
  return { target, agent, tool, flags, text, timeoutMs, deadline: Date.now() + timeoutMs };
}

/**
 * The tool the call names, from the agent's catalog entry. Tools that could not be listed
 * (e.g. no token for the agent): called anyway, untyped, and the agent's answer (or refusal)
 * says what is wrong.
 */
export function toolOf(agent: CatalogAgent, req: CallRequest): Tool {
  const tool =
    agent.tools.find((t) => t.name === req.tool) ??
    (agent.toolsError ? { name: req.tool, inputSchema: { type: "object" as const } } : undefined);
  if (!tool)
    throw new UsageError(`Agent "${req.agent}" has no tool "${req.tool}". Its tools: ${agent.tools.map((t) => t.name).join(", ")}.`);
  return tool;
}

/** The call's arguments (JSON and --arg merged), refused unless they can be sent and match the tool's input schema. */
export async function checkedArguments(tool: Tool, req: CallRequest): Promise<Record<string, unknown>> {
  const args = parseArguments(tool, req.text, req.flags.arg);
  const problem = argumentProblem(args);
  if (problem) throw new UsageError(`Arguments for ${req.target} cannot be sent: ${problem}.`);
  const check = await fromJsonSchema(tool.inputSchema as JsonSchemaType)["~standard"].validate(args);
  if (check.issues) {
    throw new UsageError(
      `Arguments for ${req.target} do not match its input schema: ${check.issues.map((i) => i.message).join("; ")}. See "mesh tools ${req.agent}".`,
    );
  }
  return args;
}

/** The arguments' JSON text from the positional argument, --args-file, or standard input ("-"). */
function argumentsText(json: string | undefined, file: string | undefined): string | undefined {
  if (json !== undefined && file !== undefined) throw new UsageError("Give the arguments once: as JSON, or with --args-file, not both.");
  const source = file ?? (json === "-" ? "-" : undefined);
  if (source === undefined) return json;
  try {
    return readFileSync(source === "-" ? 0 : source, "utf8");
  } catch (e) {
    throw new UsageError(
      `Cannot read the arguments from ${source === "-" ? "standard input" : source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`,
    );
  }
}

/** Merges a JSON object and --arg pairs; --arg values follow the schema's type for that key. */
export function parseArguments(tool: Tool, json: string | undefined, pairs: readonly string[]): Record<string, unknown> {
  const args = json === undefined ? {} : jsonObject(json);
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

/** The arguments given as JSON text: an object, or a usage error showing how to quote one. */
function jsonObject(json: string): Record<string, unknown> {
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
  return parsed as Record<string, unknown>;
}
