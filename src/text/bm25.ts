import { tokenize } from "./tokenize.ts";

/** BM25 term-frequency saturation. @default 1.2 */
export const DEFAULT_K1 = 1.2;
/** BM25 length normalisation. @default 0.75 */
export const DEFAULT_B = 0.75;

export interface Bm25Hit<T> {
  item: T;
  score: number;
}

/**
 * Okapi BM25 over a fixed set of documents, each given as weighted fields (a title can
 * count more than a body). Built once; queries are cheap.
 */
export class Bm25Index<T> {
  private readonly items: T[] = [];
  private readonly tf: Map<string, number>[] = [];
  private readonly lengths: number[] = [];
  private readonly df = new Map<string, number>();
  private avgLength = 0;
  private readonly k1: number;
  private readonly b: number;

  constructor(options: { k1?: number; b?: number } = {}) {
    this.k1 = options.k1 ?? DEFAULT_K1;
    this.b = options.b ?? DEFAULT_B;
  }

  get size(): number {
    return this.items.length;
  }

  /** Adds a document; `fields` are [text, weight] pairs (weight repeats its terms). */
  add(item: T, fields: readonly (readonly [string, number])[]): void {
    const counts = new Map<string, number>();
    let length = 0;
    for (const [text, weight] of fields) {
      for (const term of tokenize(text)) {
        counts.set(term, (counts.get(term) ?? 0) + weight);
        length += weight;
      }
    }
    for (const term of counts.keys()) this.df.set(term, (this.df.get(term) ?? 0) + 1);
    this.items.push(item);
    this.tf.push(counts);
    this.lengths.push(length);
    this.avgLength = this.lengths.reduce((a, b) => a + b, 0) / this.lengths.length;
  }

  /** Whether any document contains the (tokenized) term. */
  has(term: string): boolean {
    return this.df.has(term);
  }

  /** Inverse document frequency (BM25+ style, never negative). */
  idf(term: string): number {
    const n = this.items.length;
    const df = this.df.get(term) ?? 0;
    return Math.log(1 + (n - df + 0.5) / (df + 0.5));
  }

  /** Best `limit` documents with a positive score, best first. */
  search(query: string, limit = 5): Bm25Hit<T>[] {
    const terms = [...new Set(tokenize(query))];
    if (terms.length === 0) return [];
    const hits: Bm25Hit<T>[] = [];
    for (let i = 0; i < this.items.length; i++) {
      const counts = this.tf[i]!;
      const norm = this.k1 * (1 - this.b + (this.b * this.lengths[i]!) / (this.avgLength || 1));
      let score = 0;
      for (const term of terms) {
        const f = counts.get(term);
        if (f) score += this.idf(term) * ((f * (this.k1 + 1)) / (f + norm));
      }
      if (score > 0) hits.push({ item: this.items[i]!, score });
    }
    return hits.sort((a, b) => b.score - a.score).slice(0, limit);
  }
}
