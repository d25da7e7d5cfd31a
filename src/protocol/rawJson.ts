/**
 * The exact text of a member inside a JSON document, e.g. `params.arguments` of a JSON-RPC
 * request, so a proxy can forward it byte for byte (key order, number formatting, escapes)
 * instead of re-serialising what it parsed. `text` must be valid JSON (it was parsed
 * already); as JSON.parse does, the last of duplicate keys wins. Undefined when the path
 * is absent.
 */
export function rawMember(text: string, path: readonly string[]): string | undefined {
  let start = skipWs(text, 0);
  let end = valueEnd(text, start);
  for (const key of path) {
    if (text[start] !== "{") return undefined;
    let found: [number, number] | undefined;
    let i = skipWs(text, start + 1);
    while (i < end && text[i] !== "}") {
      const keyEnd = stringEnd(text, i);
      const name = JSON.parse(text.slice(i, keyEnd)) as string;
      i = skipWs(text, keyEnd);
      i = skipWs(text, i + 1); // the ':'
      const vEnd = valueEnd(text, i);
      if (name === key) found = [i, vEnd];
      i = skipWs(text, vEnd);
      if (text[i] === ",") i = skipWs(text, i + 1);
    }
    if (!found) return undefined;
    [start, end] = found;
  }
  return text.slice(start, end);
}

function skipWs(text: string, i: number): number {
  while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  return i;
}

/** The index after the string starting at `i` (a '"'). */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === "\\") j++;
    else if (text[j] === '"') return j + 1;
  }
  return text.length;
}

/** The index after the value starting at `i`. */
function valueEnd(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return stringEnd(text, i);
  if (c === "{" || c === "[") {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text[j];
      if (d === '"') j = stringEnd(text, j) - 1;
      else if (d === "{" || d === "[") depth++;
      else if (d === "}" || d === "]") {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return text.length;
  }
  let j = i;
  while (j < text.length && !",}] \t\n\r".includes(text[j]!)) j++;
  return j;
}
