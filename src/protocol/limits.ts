/** Deepest nesting of objects/arrays accepted in tool arguments. @default 32 */
export const MAX_ARGUMENT_DEPTH = 32;
/** Largest tool arguments accepted, serialized. @default 1048576 (1 MiB) */
export const MAX_ARGUMENT_BYTES = 1024 * 1024;

/**
 * What is wrong with tool arguments by size or shape, or undefined when they are fine.
 * Iterative, so hostile nesting cannot exhaust the stack while it is being measured.
 */
export function argumentProblem(args: unknown, maxDepth = MAX_ARGUMENT_DEPTH, maxBytes = MAX_ARGUMENT_BYTES): string | undefined {
  if (args === undefined) return undefined;
  if (typeof args !== "object" || args === null || Array.isArray(args)) return "arguments must be a JSON object";
  if (nestsDeeperThan(args, maxDepth)) return `arguments nest deeper than ${maxDepth} levels`;
  const bytes = Buffer.byteLength(JSON.stringify(args));
  if (bytes > maxBytes) return `arguments are ${bytes} bytes; the limit is ${maxBytes}`;
  return undefined;
}

/**
 * Whether objects/arrays in `value` nest deeper than `maxDepth` (a scalar is depth 0, `{}` 1).
 * Iterative, so hostile nesting cannot exhaust the stack while it is being measured: check
 * it before any recursive walk (JSON.stringify, a protocol SDK's fromJSON).
 */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth > maxDepth) return true;
    for (const child of Object.values(v)) if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * Deepest nesting of objects and arrays accepted in a whole JSON-RPC request body: room for
 * arguments at their own limit (MAX_ARGUMENT_DEPTH) inside `params`, and for `_meta`, with
 * margin; far below what would exhaust a stack in any recursive walk of the parsed value
 * (serialising, schema validation, copying). @default 64
 */
export const MAX_BODY_DEPTH = 64;

/**
 * How deep objects and arrays nest in a JSON text, scanning the text itself (no parse, no
 * recursion), stopping as soon as `limit` is passed: brackets inside strings do not count.
 * Returns the depth reached (at most `limit + 1`). The text need not be valid JSON: the
 * parser that runs after this check is the judge of that.
 */
export function jsonDepth(text: string, limit = MAX_BODY_DEPTH): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/** What is wrong with a request body's nesting, or undefined when it is within MAX_BODY_DEPTH. */
export function bodyDepthProblem(text: string, limit = MAX_BODY_DEPTH): string | undefined {
  if (jsonDepth(text, limit) <= limit) return undefined;
  return `the request body nests objects or arrays deeper than ${limit} levels; send a flatter request`;
}
