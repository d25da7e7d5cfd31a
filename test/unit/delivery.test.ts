import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { expect, it } from "vitest";
import { notDelivered } from "../../src/client/delivery.ts";

it("counts only failures that prove the agent never ran the request", () => {
  expect(notDelivered(new StreamableHTTPError(404, "Session not found"))).toBe("session-unknown");
  expect(notDelivered(new StreamableHTTPError(503, "draining"))).toBe("draining");
  const refused = new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) });
  expect(notDelivered(refused)).toBe("connection-refused");
  // May have run: a reset mid-call, a server error, a timeout.
  expect(
    notDelivered(new TypeError("fetch failed", { cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }) })),
  ).toBeUndefined();
  expect(notDelivered(new StreamableHTTPError(500, "boom"))).toBeUndefined();
  expect(notDelivered(new Error("Request timed out"))).toBeUndefined();
});
