// The manual keeps working as a set of linked pages: README.md is a front door of at most 250
// lines, every relative link in it and in docs/*.md reaches a file (and an anchor, a heading of
// that file, by GitHub's slug rules), and every ## section of a docs page can be reached from
// the index, docs/README.md, by following links.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const INDEX = "docs/README.md";
const FRONT_DOOR_MAX_LINES = 250;

type Files = ReadonlyMap<string, string>;
interface Link {
  file: string;
  line: number;
  target: string;
}
interface Heading {
  level: number;
  text: string;
  anchor: string;
}

/** GitHub's heading anchor (github-slugger): lowercase, drop everything but letters, digits, marks, `_`, `-` and spaces, spaces → `-`. */
function slugify(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** The text GitHub renders for a heading's markdown: code spans keep their contents, links their text, emphasis markers go. */
function headingText(markdown: string): string {
  return markdown
    .split(/(`+[^`]*`+)/)
    .map((part, i) =>
      i % 2 === 1
        ? part.replace(/^`+|`+$/g, "")
        : part
            .replace(/!\[[^\]]*\]\([^)]*\)/g, "")
            .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
            .replace(/<[^>]+>/g, "")
            .replace(/\*+/g, "")
            .replace(/(^|\W)_+|_+(?=\W|$)/g, "$1"),
    )
    .join("")
    .trim();
}

/** Each line of a markdown text outside fenced code blocks, with its inline code spans blanked. */
function proseLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let fence: string | undefined;
  text.split("\n").forEach((raw, i) => {
    const f = /^\s*(`{3,}|~{3,})/.exec(raw);
    if (f) {
      if (fence === undefined) fence = f[1]![0]!;
      else if (f[1]![0] === fence) fence = undefined;
      return;
    }
    if (fence === undefined) out.push({ line: i + 1, text: raw });
  });
  return out;
}

/** The ATX headings of a markdown text with their anchors; a repeated anchor gets -1, -2… as on GitHub. */
function headings(text: string): Heading[] {
  const seen = new Map<string, number>();
  const out: Heading[] = [];
  for (const { text: line } of proseLines(text)) {
    const m = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/.exec(line);
    if (!m) continue;
    const base = slugify(headingText(m[2]!));
    let anchor = base;
    while (seen.has(anchor)) {
      const n = seen.get(base)! + 1;
      seen.set(base, n);
      anchor = `${base}-${n}`;
    }
    seen.set(anchor, 0);
    out.push({ level: m[1]!.length, text: m[2]!, anchor });
  }
  return out;
}

/** Inline links and images (`[text](target)`, `![alt](target)`) outside code. */
function links(file: string, text: string): Link[] {
  const out: Link[] = [];
  for (const { line, text: raw } of proseLines(text)) {
    const prose = raw.replace(/(`+)[^`]*?\1/g, (s) => " ".repeat(s.length));
    for (const m of prose.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) {
      out.push({ file, line, target: m[1]! });
    }
  }
  return out;
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//");

/** Where a relative link points: the repository path of its file (the linking file itself for `#x`) and its anchor. */
function resolveLink(link: Link): { path: string; anchor: string | undefined } {
  const hash = link.target.indexOf("#");
  const pathPart = decodeURIComponent(hash < 0 ? link.target : link.target.slice(0, hash));
  const anchor = hash < 0 ? undefined : decodeURIComponent(link.target.slice(hash + 1));
  const path = pathPart === "" ? link.file : normalize(join(dirname(link.file), pathPart)).replace(/\/$/, "");
  return { path, anchor };
}

/** Every link in `files` that reaches no file, or no heading of its file. */
function brokenLinks(files: Files, exists: (path: string) => boolean): string[] {
  const problems: string[] = [];
  const anchors = new Map<string, Set<string>>();
  const anchorsOf = (path: string) => {
    let set = anchors.get(path);
    if (!set) {
      const text = files.get(path) ?? readFileSync(join(ROOT, path), "utf8");
      set = new Set(headings(text).map((h) => h.anchor));
      anchors.set(path, set);
    }
    return set;
  };
  for (const [file, text] of files) {
    for (const link of links(file, text)) {
      if (isExternal(link.target)) continue;
      const where = `${file}:${link.line}: (${link.target})`;
      const { path, anchor } = resolveLink(link);
      if (path === ".." || path.startsWith("../")) {
        problems.push(`${where} points outside the repository`);
      } else if (!files.has(path) && !exists(path)) {
        problems.push(`${where}: no file ${path}`);
      } else if (anchor !== undefined && path.endsWith(".md") && !anchorsOf(path).has(anchor)) {
        problems.push(`${where}: ${path} has no heading with the anchor #${anchor}`);
      }
    }
  }
  return problems;
}

/** The ## sections of docs pages that no page reachable from the index links to (and pages it never reaches). */
function unreachableSections(files: Files, index: string): string[] {
  const reachedPages = new Set<string>([index]);
  const reachedAnchors = new Set<string>();
  const queue = [index];
  while (queue.length > 0) {
    const page = queue.shift()!;
    for (const link of links(page, files.get(page) ?? "")) {
      if (isExternal(link.target)) continue;
      const { path, anchor } = resolveLink(link);
      if (anchor !== undefined) reachedAnchors.add(`${path}#${anchor}`);
      if (files.has(path) && !reachedPages.has(path)) {
        reachedPages.add(path);
        queue.push(path);
      }
    }
  }
  const missing: string[] = [];
  for (const [page, text] of files) {
    if (page === index || !page.startsWith("docs/")) continue;
    if (!reachedPages.has(page)) missing.push(`${page}: not reachable from ${index}`);
    for (const h of headings(text)) {
      if (h.level === 2 && !reachedAnchors.has(`${page}#${h.anchor}`)) {
        missing.push(`${page}#${h.anchor} ("## ${h.text}"): no page reachable from ${index} links to it`);
      }
    }
  }
  return missing;
}

function manual(): Map<string, string> {
  const files = new Map<string, string>([["README.md", readFileSync(join(ROOT, "README.md"), "utf8")]]);
  for (const name of readdirSync(join(ROOT, "docs")).sort()) {
    if (name.endsWith(".md")) files.set(`docs/${name}`, readFileSync(join(ROOT, "docs", name), "utf8"));
  }
  return files;
}

const onDisk = (path: string) => existsSync(join(ROOT, path));

describe("the manual", () => {
  const files = manual();

  it(`README.md is a front door of at most ${FRONT_DOOR_MAX_LINES} lines that leads to the index`, () => {
    const text = files.get("README.md")!;
    expect(text.replace(/\n$/, "").split("\n").length).toBeLessThanOrEqual(FRONT_DOOR_MAX_LINES);
    expect(links("README.md", text).map((l) => l.target)).toContain(INDEX);
  });

  it("every relative link in README.md and docs/*.md reaches a file, and every anchor a heading of it", () => {
    expect(files.has(INDEX)).toBe(true);
    expect(brokenLinks(files, onDisk)).toEqual([]);
  });

  it("every ## section of a docs page is reachable from docs/README.md", () => {
    expect(unreachableSections(files, INDEX)).toEqual([]);
  });
});

describe("the checks themselves", () => {
  it("anchors follow GitHub's rules, duplicates numbered", () => {
    const text = [
      "# toolmesh",
      "## Protocol revisions: 2026-07-28 and 2025-11-25 on one URL",
      "## Router → worker → back: toolmesh vs AutoGen's distributed runtime (gRPC)",
      "## Trying it on one machine: `mesh lab`",
      "## The **edge**: [OAuth 2.1](https://oauth.net) and `snake_case`",
      "```sh",
      "# not a heading",
      "```",
      "## Notes",
      "## Notes",
      "### Notes",
    ].join("\n");
    expect(headings(text).map((h) => h.anchor)).toEqual([
      "toolmesh",
      "protocol-revisions-2026-07-28-and-2025-11-25-on-one-url",
      "router--worker--back-toolmesh-vs-autogens-distributed-runtime-grpc",
      "trying-it-on-one-machine-mesh-lab",
      "the-edge-oauth-21-and-snake_case",
      "notes",
      "notes-1",
      "notes-2",
    ]);
  });

  it("a missing file, a missing anchor and an unreachable section are reported; code and external links are not links", () => {
    const files = new Map([
      ["README.md", "[index](docs/README.md) [gone](docs/gone.md) `[code](docs/nope.md)` [web](https://example.com/x#y)"],
      [INDEX, "[a](a.md#one) [a wrong anchor](a.md#three) [self](#toolmesh-docs)\n# toolmesh docs\n```\n[in code](nope.md)\n```"],
      ["docs/a.md", "# A\n## One\n## Two\n[back](../README.md#no-such-heading) ![shot](console.png)"],
    ]);
    expect(brokenLinks(files, (path) => path === "docs/console.png")).toEqual([
      "README.md:1: (docs/gone.md): no file docs/gone.md",
      "docs/README.md:1: (a.md#three): docs/a.md has no heading with the anchor #three",
      "docs/a.md:4: (../README.md#no-such-heading): README.md has no heading with the anchor #no-such-heading",
    ]);
    expect(unreachableSections(files, INDEX)).toEqual(['docs/a.md#two ("## Two"): no page reachable from docs/README.md links to it']);
  });
});
