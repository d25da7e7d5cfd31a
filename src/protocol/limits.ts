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
