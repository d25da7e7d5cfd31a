import { askTool } from "../../src/agent/askTool.ts";
import type { ToolSpec } from "../../src/agent/tools.ts";
import { defineAgent } from "../../src/agent/definition.ts";
import type { KnowledgeDeps } from "./deps.ts";
import { answerFromCorpus } from "./domain/answer.ts";
import { Corpus } from "./domain/corpus.ts";
import { getDocumentTool } from "./tools/getDocument.ts";
import { listDocumentsTool } from "./tools/listDocuments.ts";
import { searchDocumentsTool } from "./tools/searchDocuments.ts";

export const KNOWLEDGE_VERSION = "1.0.0";

export function createKnowledgeDeps(corpus: Corpus = Corpus.load()): KnowledgeDeps {
  return { corpus };
}

/** The knowledge agent's tools, independent of transport (built once per process). */
export function knowledgeTools(deps: KnowledgeDeps): ToolSpec[] {
  return [
    searchDocumentsTool(deps),
    getDocumentTool(deps),
    listDocumentsTool(deps),
    askTool(
      "knowledge",
      "the company handbook and policies: benefits (health, dental and vision insurance, retirement match, learning budget), remote work, equipment, onboarding, performance reviews, promotions, compensation and salary bands, leave (vacation, sick, parental), travel, expense and per diem policies, security (passwords, two-factor authentication, phishing, incidents, data classification), on-call, public holidays, referral bonus and the code of conduct",
      async (q) => answerFromCorpus(deps.corpus, q),
      [
        "Can I work from home on Fridays?",
        "What should I do if my laptop is stolen?",
        "Does the company match pension contributions?",
        "How long is probation?",
        "What is the hotel limit on business trips?",
        "How do I report a security incident?",
      ],
    ),
  ];
}

export const knowledgeAgent = defineAgent<KnowledgeDeps>({
  name: "knowledge",
  version: KNOWLEDGE_VERSION,
  description:
    "Company knowledge base: handbook, benefits, security, travel and expense policies, searched with BM25 and quoted with sources.",
  intents: ["handbook", "policies", "benefits", "security", "search"],
  createDeps: () => createKnowledgeDeps(),
  instructions: "Search and read the company handbook and policies. Answers quote passages with their source document.",
  tools: knowledgeTools,
  vocabulary: (deps) => ({ entries: deps.corpus.list().map((d) => ({ type: "doc", id: d.id, name: d.title })) }),
});
