import type { McpServer } from "@modelcontextprotocol/server";

/**
 * Words an agent's data gives meaning to, published so a planner can recognise them in a
 * question: the names of the things its tools take as arguments (employees, departments,
 * documents), each with the id a tool accepts. `type` names the kind of thing the way the
 * agent's tools name their parameters: a parameter called `<type>` or `<type>_id` takes it.
 */
export interface VocabularyEntry {
  type: string;
  id: string;
  name: string;
  /** Other names a person uses for it (e.g. a first name, a short title). */
  aliases?: string[];
}

export interface Vocabulary {
  entries: VocabularyEntry[];
}

/** Where an agent publishes its vocabulary (a JSON resource). */
export function vocabularyUri(agent: string): string {
  return `toolmesh://${agent}/vocabulary`;
}

/** Registers the vocabulary resource on one server instance. */
export function registerVocabulary(server: McpServer, agent: string, vocabulary: () => Vocabulary): void {
  server.registerResource(
    "vocabulary",
    vocabularyUri(agent),
    {
      mimeType: "application/json",
      description: `Names ${agent}'s tools understand (type, id, name), for planners that read questions.`,
    },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: "application/json", text: JSON.stringify(vocabulary()) }] }),
  );
}
