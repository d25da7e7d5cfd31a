import type { Tool } from "@modelcontextprotocol/client";
import type { VocabularyEntry } from "../../../src/agent/vocabulary.ts";
import { Bm25Index } from "../../../src/text/bm25.ts";
import { stem, tokenize } from "../../../src/text/tokenize.ts";
import { ID_PARAM, readRecord, type Attribute, type Relation, type Schema } from "./records.ts";
import { toolFields, toTarget, type Target } from "./targets.ts";
import { ROUTER_TAG } from "../router/classifier.ts";
import { toolVerbs } from "./speechAct.ts";
import { tokens as wordsOf } from "./language.ts";

/** The verbs of a description, as lemmas ("of the person who raised them" → raise). */
function descriptionVerbs(text: string): string[] {
  return wordsOf(text)
    .filter((t) => t.pos === "VERB")
    .map((t) => t.lemma);
}

/** What the planner knows of one agent: its catalog entry, tools and published vocabulary. */
export interface PlannerAgent {
  name: string;
  description?: string;
  tags: readonly string[];
  tools: readonly Tool[];
  vocabulary: readonly VocabularyEntry[];
}

/** A thing the mesh knows by name: an employee, a department, a document. */
export interface Entity {
  type: string;
  id: string;
  name: string;
  agents: string[];
}

export type Candidate = { kind: "tool"; target: Target } | { kind: "attribute"; attribute: Attribute };

/** A parameter's pattern with a literal letter in it (HD-\d{4}, not \d{4}-\d{2}): ids of a kind of their own. */
export function idPattern(s: { type?: string | string[]; pattern?: string } | undefined): RegExp | undefined {
  if (!s?.pattern || s.type !== "string" || !/[A-Za-z]/.test(s.pattern.replace(/\\[a-zA-Z]/g, ""))) return undefined;
  try {
    return new RegExp(s.pattern);
  } catch {
    return undefined;
  }
}

/**
 * The mesh as a planner reads it, derived from what agents publish: tools' schemas and
 * annotations glue entities together (a parameter named `employee_id` takes an employee, an
 * output `manager` with an id leads to another one), vocabularies name the entities.
 */
export class MeshModel {
  readonly agents: readonly PlannerAgent[];
  readonly entities: Entity[] = [];
  readonly targets: Target[] = [];
  readonly relations: Relation[] = [];
  readonly attributes: Attribute[] = [];
  /** Surface forms (lowercase) → entity, longest first. */
  readonly surfaces: { text: string; entity: Entity }[] = [];
  /**
   * Kinds of thing known by ids whose shape a tool's parameter gives (`ticket_id`: ^HD-\d{4}$),
   * not by a vocabulary: a word of that shape in a question names one.
   */
  readonly idTypes = new Map<string, { pattern: RegExp; agents: string[] }>();
  /** Every input parameter's entity type by its name, across tools (`requester_id` → employee). */
  private readonly paramTypes = new Map<string, string>();
  /** Verbs said of a parameter across tools: its descriptions' verbs, and the action of a tool that changes state ("open" for open_ticket's requester). */
  private readonly paramVerbs = new Map<string, Set<string>>();
  private readonly byTypeId = new Map<string, Entity>();
  private readonly index = new Bm25Index<Candidate>({ b: 0.3 });

  constructor(agents: readonly PlannerAgent[]) {
    this.agents = agents;
    for (const a of agents) {
      for (const v of a.vocabulary) {
        const key = `${v.type}\u0000${v.id.toLowerCase()}`;
        let e = this.byTypeId.get(key);
        if (!e) {
          e = { type: v.type, id: v.id, name: v.name, agents: [] };
          this.byTypeId.set(key, e);
          this.entities.push(e);
          for (const s of [v.name, v.id, ...(v.aliases ?? [])]) this.surfaces.push({ text: s.toLowerCase(), entity: e });
        }
        if (!e.agents.includes(a.name)) e.agents.push(a.name);
      }
    }
    this.surfaces.sort((x, y) => y.text.length - x.text.length);
    const vocabularyTypes = [...new Set(this.entities.map((e) => e.type))];
    this.vocabularyTypes = vocabularyTypes;
    // First what every parameter takes (so a tool's output can link to what another tool takes).
    for (const a of agents) {
      for (const t of a.tools) {
        if (t.name === "ask") continue;
        for (const [param, ps] of Object.entries((t.inputSchema as Schema).properties ?? {})) {
          const idType = ID_PARAM.exec(param)?.[1];
          const pattern = idType && !vocabularyTypes.includes(idType) && !this.paramType(param, ps) ? idPattern(ps) : undefined;
          if (idType && pattern) {
            const known = this.idTypes.get(idType) ?? this.idTypes.set(idType, { pattern, agents: [] }).get(idType)!;
            if (!known.agents.includes(a.name)) known.agents.push(a.name);
          }
        }
      }
    }
    for (const a of agents) {
      for (const t of a.tools) {
        if (t.name === "ask") continue;
        const annotations = t.annotations ?? {};
        const changes = annotations.readOnlyHint !== true || annotations.destructiveHint === true;
        for (const [param, ps] of Object.entries((t.inputSchema as Schema).properties ?? {})) {
          const type = this.paramType(param, ps);
          if (type && !this.paramTypes.has(param)) this.paramTypes.set(param, type);
          const verbs = this.paramVerbs.get(param) ?? this.paramVerbs.set(param, new Set()).get(param)!;
          for (const v of descriptionVerbs(ps.description ?? "")) verbs.add(v);
          if (changes && type) for (const v of toolVerbs(t)) verbs.add(v);
        }
      }
    }
    for (const a of agents) for (const t of a.tools) if (t.name !== "ask") this.addTool(a.name, t);
    this.linkRecords();
  }

  private readonly vocabularyTypes: string[];

  get types(): string[] {
    return [...this.vocabularyTypes, ...this.idTypes.keys()];
  }

  /** An id-shaped word of the question as a thing of its kind ("HD-2004": a ticket), or undefined. */
  idEntity(word: string): Entity | undefined {
    for (const [type, { pattern, agents }] of this.idTypes) if (pattern.test(word)) return { type, id: word, name: word, agents };
    return undefined;
  }

  entity(type: string, idOrName: string): Entity | undefined {
    const byId = this.byTypeId.get(`${type}\u0000${idOrName.toLowerCase()}`);
    if (byId) return byId;
    const lower = idOrName.toLowerCase();
    return this.entities.find((e) => e.type === type && e.name.toLowerCase() === lower);
  }

  /** Agents that answer in words (an `ask` tool) and are not routers. */
  /**
   * The things of a kind one tool reads (a document), found by the words of their names and
   * ids rather than by naming them exactly ("my tax forms" → "Tax forms and certificates"):
   * BM25 over each one's name, id and aliases, stemmed. Things several tools act on (an
   * employee, a department) are not guessed at from loose words. Best first.
   */
  findByWords(text: string): { entity: Entity; score: number }[] {
    this.wordIndex ??= (() => {
      const index = new Bm25Index<Entity>({ b: 0.3 });
      for (const e of this.entities) {
        if (this.readOnlyBy(e.type) !== 1) continue;
        index.add(e, [
          [e.name, 2],
          [e.id.replace(/[-_]+/g, " "), 2],
        ]);
      }
      return index;
    })();
    // Only words that point to no other agent's tools count: "expenses" is the expense tools'
    // word, "employees" a kind of thing, not a document's name.
    const kinds = new Set(this.types.map((t) => stem(t)));
    const terms = tokenize(text).filter((t) => !kinds.has(t));
    const distinctiveFor = (owners: readonly string[]) =>
      terms.filter((t) => [...(this.toolTerms.get(t) ?? [])].every((a) => owners.includes(a)));
    return this.wordIndex
      .search(text, 5)
      .filter((h) => {
        const own = distinctiveFor(h.item.agents);
        return tokenize(`${h.item.name} ${h.item.id.replace(/[-_]+/g, " ")}`).some((t) => own.includes(t));
      })
      .map((h) => ({ entity: h.item, score: h.score }));
  }

  private wordIndex: Bm25Index<Entity> | undefined;
  /** Which agents' tools use each (stemmed) word. */
  private readonly toolTerms = new Map<string, Set<string>>();

  /**
   * The kind of thing that relations lead from and back to (employees manage employees): what a
   * "who" question asks for. Undefined when no relation does.
   */
  get personType(): string | undefined {
    return this.relations.find((r) => r.from === r.to)?.from;
  }

  /** How many tools take things of this type (a document: one, the tool that reads it). */
  readOnlyBy(type: string): number {
    return this.targets.filter((t) => t.entityParams.some((p) => p.type === type)).length;
  }

  routable(): PlannerAgent[] {
    return this.agents.filter((a) => a.tools.some((t) => t.name === "ask") && !a.tags.includes(ROUTER_TAG));
  }

  /**
   * Tools and attributes ranked for a question about entities of `type` (or any, when
   * undefined); `named`: the entity is named in the question, so search tools may look it up by name.
   */
  rank(
    query: string,
    type: string | undefined,
    named = false,
    /** Which state-changing tools may be candidates (default: none: a question reads, it never acts). */
    mayChange: (t: Target) => boolean = () => false,
  ): { candidate: Candidate; score: number }[] {
    return this.index
      .search(query, 50)
      .filter((h) =>
        h.item.kind === "attribute"
          ? h.item.attribute.type === type
          : (!h.item.target.sideEffect || mayChange(h.item.target)) &&
            (type === undefined ||
              h.item.target.entityParams.some((p) => p.type === type) ||
              (named && h.item.target.search !== undefined && h.item.target.entityParams.length === 0)),
      )
      .map((h) => ({ candidate: h.item, score: h.score }));
  }

  /** Links that end in an id: the record of what they lead to (read with its record's tool). */
  private linkRecords(): void {
    for (const r of this.links) {
      const record = this.attributes.find((a) => a.type === r.to);
      if (record) this.relations.push({ ...r, record });
    }
  }

  /** Links found in records, kept until every tool is read (the record of what they lead to may come later). */
  private readonly links: Relation[] = [];

  /** The entity type a parameter takes: named after it (`department`, `employee_id`), or whose ids its pattern accepts. */
  private paramType(name: string, schema: Schema): string | undefined {
    const stemName = ID_PARAM.exec(name)?.[1] ?? name;
    if (this.types.includes(stemName)) return stemName;
    if (ID_PARAM.test(name) && schema.pattern) {
      let re: RegExp;
      try {
        re = new RegExp(schema.pattern);
      } catch {
        return undefined;
      }
      for (const type of this.types) {
        const ids = this.entities.filter((e) => e.type === type).slice(0, 20);
        if (ids.length > 0 && ids.every((e) => re.test(e.id))) return type;
      }
    }
    return undefined;
  }

  /** A tool as a target: how its parameters take things, ranked by its words; a record tool's output read too. */
  private addTool(agent: string, tool: Tool): void {
    const target = toTarget(agent, tool, (param, schema) => this.paramType(param, schema));
    this.targets.push(target);
    this.indexTool(target);
    // Relations and attributes come from read-only tools that take one entity.
    const only = target.entityParams.filter((p) => p.required);
    if (only.length !== 1 || target.required.length !== 1 || tool.annotations?.readOnlyHint !== true) return;
    const { param, type } = only[0]!;
    const facts = readRecord({ agent, tool, param, type }, { types: this.types, paramTypes: this.paramTypes, paramVerbs: this.paramVerbs });
    this.links.push(...facts.links);
    this.relations.push(...facts.relations);
    for (const { attribute, text } of facts.attributes) {
      this.attributes.push(attribute);
      this.index.add({ kind: "attribute", attribute }, [[text, 3]]);
    }
  }

  /** Ranks a tool by its name, title, description and parameters; its words are its `terms` and the agent's. */
  private indexTool(target: Target): void {
    const { agent } = target;
    const fields = toolFields(target);
    this.index.add({ kind: "tool", target }, fields);
    for (const [text] of fields) for (const term of tokenize(text)) target.terms.add(term);
    for (const [text] of fields)
      for (const term of tokenize(text)) (this.toolTerms.get(term) ?? this.toolTerms.set(term, new Set()).get(term)!).add(agent);
  }
}
