/** Separates agent and tool in a gateway tool name: `hr__find_employee`. */
export const TOOL_SEPARATOR = "__";

/**
 * MCP tool names are 1-128 characters of [A-Za-z0-9_.-]; several clients (and LLM function
 * calling) also refuse dots. Agent names cannot contain "_", so the first "__" always
 * splits a gateway name unambiguously, and the same agent and tool always give the same name.
 */
const VALID = /^[A-Za-z0-9_-]{1,128}$/;

export function gatewayToolName(agent: string, tool: string): string | undefined {
  const name = `${agent}${TOOL_SEPARATOR}${tool}`;
  return VALID.test(name) ? name : undefined;
}

export function parseGatewayToolName(name: string): { agent: string; tool: string } | undefined {
  const i = name.indexOf(TOOL_SEPARATOR);
  if (i <= 0 || i + TOOL_SEPARATOR.length >= name.length) return undefined;
  return { agent: name.slice(0, i), tool: name.slice(i + TOOL_SEPARATOR.length) };
}

/**
 * A filter over `agent.tool` with `*` wildcards; a bare agent name means all its tools.
 * E.g. "hr", "finance.get_*", "*.ask".
 */
export function toolFilter(include: readonly string[], exclude: readonly string[]): (agent: string, tool: string) => boolean {
  const compile = (p: string) => {
    const full = p.includes(".") ? p : `${p}.*`;
    return new RegExp(
      `^${full
        .split("*")
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*")}$`,
    );
  };
  const inc = include.map(compile);
  const exc = exclude.map(compile);
  return (agent, tool) => {
    const key = `${agent}.${tool}`;
    return (inc.length === 0 || inc.some((r) => r.test(key))) && !exc.some((r) => r.test(key));
  };
}
