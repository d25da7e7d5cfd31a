import { describe, expect, it } from "vitest";
import { llmConfig } from "../../orchestrator/agent/planner/llm.ts";

describe("the LLM planner's configuration", () => {
  it("is off unless a model is named; empty variables (as docker-compose passes unset ones) count as unset", () => {
    expect(llmConfig({}, {})).toBeUndefined();
    expect(llmConfig({}, { OPENAI_MODEL: "", OPENAI_BASE_URL: "", OPENAI_API_KEY: "" })).toBeUndefined();
  });

  it("takes the usual variables, flags first; a local server needs no key", () => {
    expect(llmConfig({}, { OPENAI_MODEL: "gpt-x", OPENAI_API_KEY: "k" })).toEqual({ model: "gpt-x", apiKey: "k" });
    expect(llmConfig({ model: "qwen2.5:7b", baseURL: "http://localhost:11434/v1" }, { OPENAI_MODEL: "other" })).toEqual({
      model: "qwen2.5:7b",
      apiKey: "none",
      baseURL: "http://localhost:11434/v1",
    });
  });

  it("says what to fix: no key for OpenAI's endpoint, a base URL that is not http(s)", () => {
    expect(() => llmConfig({}, { OPENAI_MODEL: "gpt-x" })).toThrow(/OPENAI_API_KEY is not: set the key, or OPENAI_BASE_URL/);
    expect(() => llmConfig({ baseURL: "localhost:11434" }, { OPENAI_MODEL: "m" })).toThrow(
      /is not an http\(s\) URL \(e\.g\. http:\/\/localhost:11434\/v1/,
    );
  });
});
