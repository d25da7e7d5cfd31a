import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BusinessError } from "../../../src/protocol/results.ts";
import { tokenize } from "../../../src/text/tokenize.ts";
import { Bm25Index } from "../../../src/text/bm25.ts";

export interface Document {
  id: string;
  title: string;
  category: string;
  /** Path inside the shipped corpus, e.g. docs/expense-policy.md */
  source: string;
  text: string;
}

export interface Passage {
  docId: string;
  title: string;
  source: string;
  index: number;
  text: string;
}

export interface SearchHit extends Passage {
  score: number;
}

/** Where the shipped company documents live. */
export const DEFAULT_DOCS_DIR = fileURLToPath(new URL("../data/docs/", import.meta.url));

/** Title terms count this many times a body term: a title is a strong signal. @default 3 */
export const TITLE_WEIGHT = 3;

/** Company documents, split into paragraph passages and ranked with BM25. */
export class Corpus {
  private readonly docs: Map<string, Document>;
  private readonly index = new Bm25Index<Passage>();

  constructor(documents: readonly Document[]) {
    this.docs = new Map(documents.map((d) => [d.id, d]));
    for (const d of documents) {
      d.text
        .split(/\n\s*\n/)
        .map((p) => p.trim())
        .filter(Boolean)
        .forEach((text, index) => {
          this.index.add({ docId: d.id, title: d.title, source: d.source, index, text }, [
            [d.title, TITLE_WEIGHT],
            [text, 1],
          ]);
        });
    }
  }

  static load(dir: string = DEFAULT_DOCS_DIR): Corpus {
    const docs = readdirSync(dir)
      .filter((f) => f.endsWith(".md"))
      .sort()
      .map((file) => parseDocument(file.slice(0, -3), `docs/${file}`, readFileSync(join(dir, file), "utf8")));
    return new Corpus(docs);
  }

  get size(): number {
    return this.docs.size;
  }

  list(category?: string): Document[] {
    return [...this.docs.values()].filter((d) => !category || d.category === category);
  }

  categories(): string[] {
    return [...new Set([...this.docs.values()].map((d) => d.category))].sort();
  }

  get(id: string): Document {
    const d = this.docs.get(id);
    if (!d)
      throw new BusinessError(`Unknown document id "${id}". Use list_documents or search_documents to find ids, e.g. "expense-policy".`);
    return d;
  }

  /**
   * Words of `text` that no document contains (after stemming), e.g. "dog" in "Can I bring
   * my dog to the office?": what a question asks about that the documents cannot answer.
   */
  unknownWords(text: string): string[] {
    const words = text.match(/[\p{L}\p{N}][\p{L}\p{N}'-]*/gu) ?? [];
    return [
      ...new Set(words.filter((w) => tokenize(w).length > 0 && tokenize(w).every((t) => !this.index.has(t))).map((w) => w.toLowerCase())),
    ];
  }

  search(query: string, limit = 5): SearchHit[] {
    return this.index.search(query, limit).map((h) => ({ ...h.item, score: Math.round(h.score * 1000) / 1000 }));
  }
}

/** Parses a document with a `---` front matter block holding title and category. */
export function parseDocument(id: string, source: string, raw: string): Document {
  const m = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(raw);
  const meta = new Map<string, string>();
  for (const line of (m?.[1] ?? "").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) meta.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return { id, title: meta.get("title") ?? id, category: meta.get("category") ?? "general", source, text: (m?.[2] ?? raw).trim() };
}
