import type { Tool } from "@modelcontextprotocol/client";
import { stem } from "../../../src/text/tokenize.ts";

// What a record tool's output says (get_employee: one entity in, its record out): the fields
// of that kind of thing, and the relations to other things its fields and lists lead to.

/** The JSON Schema a tool's input and output are described with, as far as the planner reads it. */
export type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  description?: string;
  default?: unknown;
};

/** A parameter named for the kind of thing it takes an id of (`employee_id`). */
export const ID_PARAM = /^(.*)_id$/;

/**
 * A step from one entity to another that a tool's output gives: get_employee's `manager`,
 * list_direct_reports' `reports` (a list), the record's `department` (a name of another type).
 */
export interface Relation {
  name: string;
  /** How an answer names it ("manager", "direct reports"). */
  label: string;
  /** Stemmed words that name it in a question. */
  words: string[];
  from: string;
  to: string;
  agent: string;
  tool: string;
  param: string;
  /** Path in structuredContent to the related object (with id and name), list or name. */
  path: string[];
  list: boolean;
  /** For a list: the date fields of its members (to pick the newest or the longest-serving). */
  dateFields: string[];
  /**
   * The path ends in an id (a ticket's `requester_id`), not an object with a name: the planner
   * reads that thing's record (`record`) to name it and go on from it.
   */
  record?: Attribute;
}

/** A field of an entity's record (email, location, hireDate…), read by the record's tool. */
export interface Attribute {
  type: string;
  field: string;
  agent: string;
  tool: string;
  param: string;
  path: string[];
}

/** A read-only tool that takes one entity (`param`, of `type`) and returns what is known of it. */
export interface RecordTool {
  agent: string;
  tool: Tool;
  param: string;
  type: string;
}

/** What the mesh's tools say of their parameters, read before any record. */
export interface ParamKnowledge {
  /** Every kind of thing the mesh knows. */
  types: readonly string[];
  /** The entity type each parameter takes, by its name (`requester_id` → employee). */
  paramTypes: ReadonlyMap<string, string>;
  /** The verbs said of each parameter ("raised", "opened" for `requester_id`). */
  paramVerbs: ReadonlyMap<string, ReadonlySet<string>>;
}

/** What one record tool's output gives, in the order its schema lists it. */
export interface RecordFacts {
  relations: Relation[];
  /** Relations that end in an id: linked to the record of what they lead to once every tool is read. */
  links: Relation[];
  /** Each field, with the words it is ranked by. */
  attributes: { attribute: Attribute; text: string }[];
}

/** A name as words ("net_pay", "hireDate" → "net pay", "hire Date"). */
export function nameWords(s: string): string {
  return s.replace(/_/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2");
}

/** Reads a record tool's output schema: the entity's own record, and the objects with ids it lists. */
export function readRecord(r: RecordTool, known: ParamKnowledge): RecordFacts {
  const facts: RecordFacts = { relations: [], links: [], attributes: [] };
  const self = new Set([r.type, ID_PARAM.exec(r.param)?.[1] ?? r.param]);
  const out = (r.tool.outputSchema as Schema | undefined)?.properties ?? {};
  for (const [prop, s] of Object.entries(out)) {
    if (self.has(prop) && s.properties) ownRecord(r, known, prop, s.properties, facts);
    else {
      const related = relatedObjects(r, self, prop, s);
      if (related) facts.relations.push(related);
    }
  }
  return facts;
}

/**
 * The entity's own record: its fields are attributes; a field named after a type leads to
 * that entity, and one holding another thing's id (a ticket's `requester_id`) links to that
 * thing, named by the field and by what tools say of the same parameter ("raised", "opened").
 */
function ownRecord(r: RecordTool, known: ParamKnowledge, prop: string, fields: Record<string, Schema>, facts: RecordFacts): void {
  for (const [field, fs] of Object.entries(fields)) {
    if (field === "id" || field === "name") continue;
    const linked = ID_PARAM.test(field) ? known.paramTypes.get(field) : undefined;
    const linkName = ID_PARAM.exec(field)?.[1];
    if (linked && linkName && linked !== r.type) {
      const words = [stem(linkName), ...[...(known.paramVerbs.get(field) ?? [])].map(stem)];
      facts.links.push(fieldRelation(r, [prop, field], { name: linkName, label: nameWords(linkName), words, to: linked }));
    }
    if (known.types.includes(field))
      facts.relations.push(fieldRelation(r, [prop, field], { name: field, label: field, words: [stem(field)], to: field }));
    const attribute: Attribute = { type: r.type, field, agent: r.agent, tool: r.tool.name, param: r.param, path: [prop, field] };
    facts.attributes.push({ attribute, text: `${nameWords(field)} ${fs.description ?? ""}` });
  }
}

/** A relation from one field of the record (`path`) to one thing of type `to`. */
function fieldRelation(r: RecordTool, path: string[], named: { name: string; label: string; words: string[]; to: string }): Relation {
  const { name, label, words, to } = named;
  return { name, label, words, from: r.type, to, agent: r.agent, tool: r.tool.name, param: r.param, path, list: false, dateFields: [] };
}

/** An object or list of objects with ids (a `manager`, the `reports`): a relation to more of the same kind. */
function relatedObjects(r: RecordTool, self: ReadonlySet<string>, prop: string, s: Schema): Relation | undefined {
  const item = s.type === "array" ? s.items : s;
  if (!item?.properties?.["id"] || self.has(prop)) return undefined;
  const title = (r.tool.title ?? r.tool.name.replace(/_/g, " ")).toLowerCase();
  const phrase = title.split(/\s+/).filter((w) => w !== "get" && w !== "list");
  return {
    name: prop,
    label: s.type === "array" && phrase.length > 0 ? phrase.join(" ") : prop,
    words: [...new Set([stem(prop), ...phrase.map(stem)])],
    from: r.type,
    to: r.type,
    agent: r.agent,
    tool: r.tool.name,
    param: r.param,
    path: [prop],
    list: s.type === "array",
    dateFields: Object.entries(item.properties)
      .filter(([f, fs]) => /date$/i.test(f) || (fs as { format?: string }).format === "date")
      .map(([f]) => f),
  };
}
