import {
  type ClientCapabilities,
  fromJsonSchema,
  type CallToolResult,
  type InputRequiredResult,
  type JsonSchemaType,
  type ServerContext,
  type Tool,
  type ToolAnnotations,
} from "@modelcontextprotocol/server";
import * as z from "zod";
import type { MeshContext } from "../context/meshContext.ts";
import { MeshError } from "../protocol/errors.ts";

/** What a tool handler answers: a result, or (2026-07-28) a request for the client's input. */
export type ToolOutcome = CallToolResult | InputRequiredResult;

/** Everything a tool handler may use besides its arguments. */
export interface ToolCall {
  /** Aborts when the caller cancels or the call's deadline passes. */
  readonly signal: AbortSignal;
  /** The MeshContext this call arrived with (onward calls continue it by themselves). */
  readonly context: MeshContext;
  /** Reports progress to the caller, if it asked for progress (a no-op otherwise). */
  progress(progress: number, total?: number, message?: string): Promise<void>;
  /** The SDK's request context: input responses and request state of a multi-round-trip call, logging, the envelope. */
  readonly sdk: ServerContext;
  /**
   * What the caller's client can answer (elicitation, sampling, roots): the request's
   * envelope on 2026-07-28, the session's `initialize` on 2025-11-25. A tool asks for input
   * (inputRequired) only when the client declared the capability for it.
   */
  readonly clientCapabilities: ClientCapabilities;
}

/** A tool as an agent defines it: its contract (schemas, annotations) and a thin handler. */
export interface ToolSpec<I extends z.ZodObject = z.ZodObject, O extends z.ZodObject | undefined = z.ZodObject | undefined> {
  readonly name: string;
  readonly title?: string;
  readonly description: string;
  /** Arguments, validated before the handler runs (zod: the JSON Schema offered to clients is derived from it). */
  readonly input?: I;
  /**
   * A raw JSON Schema offered, verbatim, as the input schema instead of one derived from
   * `input` (e.g. a 2020-12 schema with `$defs`, or `x-mcp-header` annotations); arguments
   * are validated against it.
   */
  readonly inputJsonSchema?: Tool["inputSchema"];
  /** The shape of `structuredContent`; results are checked against it. */
  readonly output?: O;
  readonly annotations?: ToolAnnotations;
  /**
   * Runs as a task (the Tasks extension, SEP-2663) for clients that declare it: "optional"
   * answers others synchronously, "required" refuses them with -32021. For long-running work.
   */
  readonly task?: "optional" | "required";
  /**
   * For a task tool: input gathered before the task starts (MRTR rounds answered in the
   * tools/call itself, SEP-2663 §task creation). Return inputRequired(...) to ask; undefined
   * to start the task, whose handler then sees the responses gathered.
   */
  readonly prepare?: (args: z.infer<I>, call: ToolCall) => InputRequiredResult | undefined | Promise<InputRequiredResult | undefined>;
  readonly _meta?: Record<string, unknown>;
  readonly handler: (args: z.infer<I>, call: ToolCall) => ToolOutcome | Promise<ToolOutcome>;
}

/** Declares a tool with its argument types inferred from its input schema. */
export function defineTool<I extends z.ZodObject, O extends z.ZodObject | undefined = undefined>(spec: ToolSpec<I, O>): ToolSpec {
  return spec as unknown as ToolSpec;
}

type Validate = (value: unknown) => { issues?: readonly { message: string }[] } | Promise<{ issues?: readonly { message: string }[] }>;

/** Tool names MCP and the mesh accept: 1-128 of letters, digits, `_`, `-`, `.`. */
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * An agent's tools, built once per process: the listing clients see (JSON Schemas derived
 * from the zod schemas once, not per request), and each tool's spec by name. Every server
 * instance the kit builds (one per 2026-07-28 request, one per 2025-11-25 session) answers
 * tools/list and tools/call from this one registry.
 */
export class ToolRegistry {
  private entries = new Map<string, { spec: ToolSpec; validate: Validate | undefined }>();
  private cached: readonly Tool[] = [];

  constructor(specs: readonly ToolSpec[]) {
    for (const spec of specs) this.put(spec);
    this.cached = this.describe();
  }

  /** The tools/list answer, sorted by name (computed once per change, not per request). */
  get listing(): readonly Tool[] {
    return this.cached;
  }

  get(name: string): ToolSpec | undefined {
    return this.entries.get(name)?.spec;
  }

  /**
   * Checks a tool's arguments against its input schema: the zod schema's parse, or for a
   * raw JSON Schema, a validator compiled once (the SDK's JSON Schema validator).
   */
  async validate(
    spec: ToolSpec,
    args: Record<string, unknown>,
  ): Promise<{ ok: true; args: Record<string, unknown> } | { ok: false; issues: string }> {
    if (spec.input) {
      const parsed = spec.input.safeParse(args);
      if (parsed.success) return { ok: true, args: parsed.data as Record<string, unknown> };
      return {
        ok: false,
        issues: parsed.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "arguments"}: ${i.message}`).join("; "),
      };
    }
    const validate = this.entries.get(spec.name)?.validate;
    if (!validate) return { ok: true, args };
    const result = await validate(args);
    return result.issues ? { ok: false, issues: result.issues.map((i) => i.message).join("; ") } : { ok: true, args };
  }

  /** Adds a tool (an agent whose tool set grows while it runs). */
  add(spec: ToolSpec): void {
    this.put(spec);
    this.cached = this.describe();
  }

  private put(spec: ToolSpec): void {
    if (!TOOL_NAME.test(spec.name))
      throw new MeshError("CONFIG_INVALID", `Tool name "${spec.name}" is invalid: 1-128 letters, digits, "_", "-" or ".".`);
    if (this.entries.has(spec.name)) throw new MeshError("CONFIG_INVALID", `Two tools are named "${spec.name}".`);
    const validate = spec.inputJsonSchema
      ? (fromJsonSchema(spec.inputJsonSchema as JsonSchemaType)["~standard"].validate as Validate)
      : undefined;
    this.entries.set(spec.name, { spec, validate });
  }

  private describe(): readonly Tool[] {
    // Sorted by name: the same order on every replica and through the gateway's passthrough.
    return Object.freeze(
      [...this.entries.values()].map((e) => describeTool(e.spec)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    );
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether any tool can run as a task (the agent then offers the Tasks extension). */
  get hasTasks(): boolean {
    return [...this.entries.values()].some((e) => e.spec.task !== undefined);
  }
}

/** The tools/list entry of a tool. */
function describeTool(spec: ToolSpec): Tool {
  return {
    name: spec.name,
    ...(spec.title ? { title: spec.title } : {}),
    description: spec.description,
    inputSchema: spec.inputJsonSchema ?? (spec.input ? jsonSchema(spec.input, "input") : { type: "object", properties: {} }),
    ...(spec.output ? { outputSchema: jsonSchema(spec.output, "output") } : {}),
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
    ...(spec._meta ? { _meta: spec._meta } : {}),
  } as Tool;
}

/** A zod object schema as the JSON Schema (2020-12, the MCP default dialect) clients read. */
function jsonSchema(schema: z.ZodObject, io: "input" | "output"): Tool["inputSchema"] {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io }) as Record<string, unknown>;
  return rest as Tool["inputSchema"];
}
