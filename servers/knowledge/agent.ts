import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { createMcpServer } from "../../src/agent/mcpServer.ts";
import { registerAskTool } from "../../src/agent/askTool.ts";
import { defineAgent } from "../../src/agent/definition.ts";
import type { KnowledgeDeps } from "./deps.ts";
import { answerFromCorpus } from "./domain/answer.ts";
import { Corpus } from "./domain/corpus.ts";
import { registerGetDocument } from "./tools/getDocument.ts";
import { registerListDocuments } from "./tools/listDocuments.ts";
import { registerSearchDocuments } from "./tools/searchDocuments.ts";

export const KNOWLEDGE_VERSION = "1.0.0";

export function createKnowledgeDeps(corpus: Corpus = Corpus.load()): KnowledgeDeps {
  return { corpus };
}

/** The knowledge agent's MCP server, independent of transport. */
export function createKnowledgeServer(deps: KnowledgeDeps): McpServer {
  const server = createMcpServer(
    { name: "toolmesh-knowledge", title: "Knowledge agent", version: KNOWLEDGE_VERSION },
    { instructions: "Search and read the company handbook and policies. Answers quote passages with their source document." },
  );
  registerSearchDocuments(server, deps);
  registerGetDocument(server, deps);
  registerListDocuments(server, deps);
  registerAskTool(
    server,
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
  );
  return server;
}

export const knowledgeAgent = defineAgent<KnowledgeDeps>({
  name: "knowledge",
  version: KNOWLEDGE_VERSION,
  description:
    "Company knowledge base: handbook, benefits, security, travel and expense policies, searched with BM25 and quoted with sources.",
  intents: ["handbook", "policies", "benefits", "security", "search"],
  createDeps: () => createKnowledgeDeps(),
  createServer: createKnowledgeServer,
});
