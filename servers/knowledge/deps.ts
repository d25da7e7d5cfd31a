import type { Corpus } from "./domain/corpus.ts";

export interface KnowledgeDeps {
  corpus: Corpus;
}
