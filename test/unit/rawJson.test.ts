import { expect, it } from "vitest";
import { rawMember } from "../../src/protocol/rawJson.ts";

it("finds a member's exact text: key order, number formatting and escapes as sent", () => {
  const body = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"take","arguments":{"b":1.50,"a":1e2,"s":"\\u00e9 \\"q\\" }","n":[1,{"x":null}]},"_meta":{}}}`;
  expect(rawMember(body, ["params", "arguments"])).toBe(`{"b":1.50,"a":1e2,"s":"\\u00e9 \\"q\\" }","n":[1,{"x":null}]}`);
  expect(rawMember(body, ["params", "name"])).toBe(`"take"`);
  expect(rawMember(body, ["id"])).toBe("7");
  expect(JSON.parse(rawMember(body, ["params", "arguments"])!)).toEqual(JSON.parse(body).params.arguments);
});

it("tolerates whitespace, takes the last of duplicate keys (as JSON.parse), and says undefined for a missing path", () => {
  const body = ` { "params" : { "arguments" : { "a" : 1 } , "arguments" : [ 2 , 3 ] } } `;
  expect(rawMember(body, ["params", "arguments"])).toBe("[ 2 , 3 ]");
  expect(rawMember(body, ["params", "missing"])).toBeUndefined();
  expect(rawMember(body, ["nope", "arguments"])).toBeUndefined();
  expect(rawMember(`{"params":5}`, ["params", "arguments"])).toBeUndefined();
});
