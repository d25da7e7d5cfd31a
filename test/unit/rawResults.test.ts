import { describe, expect, it } from "vitest";
import { carryRawResult, keepRawResult, rawResultHead } from "../../src/mcp/rawResults.ts";

const INFO = `"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"a","version":"1"}}`;

/** Parses an answer as directCall does and asks for its text to be kept. */
function kept(body: string, id = 7): string | undefined {
  const message = JSON.parse(body) as Record<string, unknown>;
  keepRawResult(message["result"], message, body, id);
  return typeof message["result"] === "object" && message["result"] !== null ? rawResultHead(message["result"]) : undefined;
}

describe("an agent's result text, kept for the proxy", () => {
  it("keeps the members of a complete result in the agent's shape, exactly as written", () => {
    const head = kept(`{"result":{"content":[],"n":1.50,"resultType":"complete",${INFO}},"jsonrpc":"2.0","id":7}`);
    expect(head).toBe(`{"content":[],"n":1.50,"resultType":"complete"`);
    expect(JSON.parse(`${head}}`)).toEqual({ content: [], n: 1.5, resultType: "complete" });
  });

  it.each([
    ["another id", `{"result":{"content":[],"resultType":"complete",${INFO}},"jsonrpc":"2.0","id":8}`],
    [
      "more in _meta",
      `{"result":{"content":[],"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{},"x":1}},"jsonrpc":"2.0","id":7}`,
    ],
    ["a task", `{"result":{"content":[],"resultType":"task",${INFO}},"jsonrpc":"2.0","id":7}`],
    ["no content", `{"result":{"resultType":"complete",${INFO}},"jsonrpc":"2.0","id":7}`],
    ["another order", `{"jsonrpc":"2.0","id":7,"result":{"content":[],"resultType":"complete",${INFO}}}`],
    ["a foreign member", `{"result":{"content":[],"resultType":"complete",${INFO}},"x":{${INFO}},"jsonrpc":"2.0","id":7}`],
    [
      "a serverInfo that is not the text's",
      `{"result":{"content":[],"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"a", "version":"1"}}},"jsonrpc":"2.0","id":7}`,
    ],
  ])("keeps nothing for %s", (_what, body) => {
    expect(kept(body)).toBeUndefined();
  });

  it("carries the text to a copy without _meta only", () => {
    const body = `{"result":{"content":[],"resultType":"complete",${INFO}},"jsonrpc":"2.0","id":7}`;
    const message = JSON.parse(body) as { result: Record<string, unknown> };
    keepRawResult(message.result, message, body, 7);
    const { _meta, ...stripped } = message.result;
    carryRawResult(message.result, stripped);
    expect(rawResultHead(stripped)).toBe(`{"content":[],"resultType":"complete"`);
    const withMeta = { ...stripped, _meta: { mine: 1 } };
    carryRawResult(message.result, withMeta);
    expect(rawResultHead(withMeta)).toBeUndefined();
  });
});
