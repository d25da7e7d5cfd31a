import type { Tool } from "@modelcontextprotocol/client";
import { nameWords, type Schema } from "./records.ts";
import { actionClass, toolVerbs } from "./speechAct.ts";

/** A tool the planner may call, with how its parameters take the things a question names. */
export interface Target {
  agent: string;
  tool: Tool;
  /** Parameters that take an entity, by entity type. */
  entityParams: { param: string; type: string; required: boolean }[];
  required: string[];
  properties: Record<string, Schema>;
  /**
   * Changes state (no `readOnlyHint`, or `destructiveHint`): planned only for a request to act
   * whose verb is of the tool's kind (`verbs`), and run only once confirmed.
   */
  sideEffect: boolean;
  /** Kinds of action the tool's own verbs name (speechAct.ts `actionClass`): what a request must ask for. */
  actions: string[];
  /** The (stemmed) words of its name, title, description and parameters: what it is about. */
  terms: Set<string>;
  /** A required free-text search parameter (`query`): any named entity can be searched for by its name. */
  search?: string;
}

/** Parameter names of free-text search. */
const SEARCH_PARAM = /^(query|q|search|text|keywords?)$/;

/** What the planner needs of a tool: its parameters, the entities they take (by `paramType`), whether it changes state. */
export function toTarget(agent: string, tool: Tool, paramType: (name: string, schema: Schema) => string | undefined): Target {
  const input = tool.inputSchema as Schema;
  const properties = input.properties ?? {};
  const required = input.required ?? [];
  const entityParams = Object.entries(properties).flatMap(([param, s]) => {
    const type = paramType(param, s);
    return type ? [{ param, type, required: required.includes(param) }] : [];
  });
  const a = tool.annotations ?? {};
  const search = required.find((r) => SEARCH_PARAM.test(r) && properties[r]?.type === "string");
  return {
    agent,
    tool,
    entityParams,
    required,
    ...(search ? { search } : {}),
    properties,
    sideEffect: a.readOnlyHint !== true || a.destructiveHint === true,
    actions: toolVerbs(tool).map(actionClass),
    terms: new Set(),
  };
}

/** What a tool is ranked by, with weights: its name, title, description and parameters (their descriptions and enum values). */
export function toolFields(target: Target): [string, number][] {
  const { tool, properties } = target;
  return [
    [nameWords(tool.name), 3],
    [tool.title ?? "", 2],
    [tool.description ?? "", 1],
    [
      Object.entries(properties)
        .map(([p, s]) => `${nameWords(p)} ${s.description ?? ""} ${(s.enum ?? []).join(" ")}`)
        .join(" "),
      1,
    ],
  ];
}
