import { expect, it } from "vitest";
import { gatewayToolName, parseGatewayToolName, toolFilter } from "../../src/gateway/toolNames.ts";

it("namespaces tools as agent__tool within MCP's name rules, and parses them back", () => {
  expect(gatewayToolName("hr", "find_employee")).toBe("hr__find_employee");
  expect(parseGatewayToolName("hr__find_employee")).toEqual({ agent: "hr", tool: "find_employee" });
  expect(parseGatewayToolName("my-agent__do__it")).toEqual({ agent: "my-agent", tool: "do__it" }); // agent names have no "_"
  expect(gatewayToolName("everything", "get.weather")).toBeUndefined(); // a dot: refused by many clients
  expect(gatewayToolName("a", "x".repeat(200))).toBeUndefined();
  expect(parseGatewayToolName("nounderscores")).toBeUndefined();
  expect(parseGatewayToolName("__tool")).toBeUndefined();
});

it("filters by agent, agent.tool and wildcards", () => {
  const f = toolFilter(["hr", "*.ask"], ["hr.request_*"]);
  expect(f("hr", "find_employee")).toBe(true);
  expect(f("hr", "request_leave")).toBe(false);
  expect(f("finance", "ask")).toBe(true);
  expect(f("finance", "get_budget")).toBe(false);
  expect(toolFilter([], [])("anything", "at_all")).toBe(true);
});
