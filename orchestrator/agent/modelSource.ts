import { ProtocolError } from "@modelcontextprotocol/client";
import type { MeshClient } from "../../src/client/meshClient.ts";
import { vocabularyUri, type Vocabulary, type VocabularyEntry } from "../../src/agent/vocabulary.ts";
import { describeError } from "../../src/protocol/errors.ts";
import type { Logger } from "../../src/logger.ts";
import { MeshModel } from "./planner/model.ts";
import type { AskFailure } from "./planner/run.ts";

/** How long a published vocabulary is reused before it is read again. @default 60000 */
export const VOCABULARY_TTL_MS = 60_000;

/**
 * The mesh as the planner reads it, kept current: the healthy agents of the catalog, their
 * tools and the vocabularies they publish (each reused for VOCABULARY_TTL_MS), the model
 * rebuilt only when one of those changed. Remembers which agents' vocabularies could not be
 * read, so a part left unanswered for that reason is said to be the mesh's failure.
 */
export class ModelSource {
  private readonly mesh: MeshClient;
  private readonly logger: Logger;
  private readonly vocabularies = new Map<string, { at: number; entries: readonly VocabularyEntry[] }>();
  private lastModel: { inputs: unknown[]; model: MeshModel } | undefined;
  /** Agents whose vocabulary could not be read for the latest model, with why. */
  readonly unread = new Map<string, string>();

  constructor(mesh: MeshClient, logger: Logger) {
    this.mesh = mesh;
    this.logger = logger;
  }

  /** The mesh as the planner reads it: healthy agents, their tools and vocabularies. */
  async model(deadline: number): Promise<MeshModel> {
    const agents = this.mesh.catalog.agents().filter((a) => a.instances.length > 0);
    const vocabularies = await Promise.all(agents.map((a) => this.vocabulary(a.name, deadline)));
    // The same agents, tool lists and vocabularies (the catalog and the cache keep their arrays): the same model.
    const inputs = agents.flatMap((a, i) => [a.name, a.description, a.tools, vocabularies[i]]);
    if (this.lastModel && this.lastModel.inputs.length === inputs.length && this.lastModel.inputs.every((x, i) => x === inputs[i]))
      return this.lastModel.model;
    const model = new MeshModel(
      agents.map((a, i) => ({
        name: a.name,
        ...(a.description ? { description: a.description } : {}),
        tags: a.tags,
        tools: a.tools,
        vocabulary: vocabularies[i]!,
      })),
    );
    this.lastModel = { inputs, model };
    return model;
  }

  /**
   * A part left unanswered while an agent could not be read (its vocabulary, so the names it
   * knows) or had no usable instance is a failure of the mesh, not of the question: said so.
   */
  explain(f: AskFailure): AskFailure {
    if (f.kind !== "unanswered") return f;
    const down = this.mesh.catalog
      .agents()
      .filter((a) => a.instances.length === 0)
      .map((a) => `${a.name} has no usable instance`);
    const unread = [...this.unread].map(([agent, err]) => `${agent} did not answer (${err})`);
    const why = [...down, ...unread];
    if (why.length === 0) return f;
    const message = `${f.message} But ${why.join(" and ")}, so what only it knows could not be looked up; ask again once it is back (see "mesh agents").`;
    return { ...f, kind: "mesh", message };
  }

  private async vocabulary(agent: string, deadline: number): Promise<readonly VocabularyEntry[]> {
    const cached = this.vocabularies.get(agent);
    if (cached && Date.now() - cached.at < VOCABULARY_TTL_MS) return cached.entries;
    const signal = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
    try {
      const read = await this.mesh.withAgent(agent, (c) => c.readResource({ uri: vocabularyUri(agent) }, { signal }));
      const text = (read.contents[0] as { text?: unknown } | undefined)?.text;
      const parsed = typeof text === "string" ? (JSON.parse(text) as Vocabulary) : undefined;
      const entries = Array.isArray(parsed?.entries)
        ? parsed.entries.filter((e) => e && typeof e.type === "string" && typeof e.id === "string" && typeof e.name === "string")
        : [];
      this.vocabularies.set(agent, { at: Date.now(), entries });
      this.unread.delete(agent);
      return entries;
    } catch (e) {
      // An agent that publishes none (most MCP servers) is planned from its tools alone.
      this.logger.debug({ agent, err: describeError(e) }, "no vocabulary");
      // An agent that publishes none answers "not found"; one that did not answer is a mesh failure.
      if (!cached && !answeredWithout(e)) this.unread.set(agent, describeError(e));
      this.vocabularies.set(agent, { at: Date.now(), entries: cached?.entries ?? [] });
      return cached?.entries ?? [];
    }
  }
}

/** The agent answered, with no (usable) vocabulary: a protocol error (no such resource) or one that is not JSON. */
function answeredWithout(e: unknown): boolean {
  return e instanceof ProtocolError || e instanceof SyntaxError;
}
