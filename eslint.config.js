// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** The folders of src/, bottom up. */
const LAYERS = ["protocol", "text", "telemetry", "context", "consul", "state", "http", "discovery", "client", "agent", "gateway"];

export default tseslint.config(
  { ignores: ["node_modules/", ".mesh/", "coverage/", "bench/autogen/.venv/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        URL: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        performance: "readonly",
        AbortController: "readonly",
        AbortSignal: "readonly",
        Buffer: "readonly",
        NodeJS: "readonly",
        fetch: "readonly",
      },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      // A `let` set once, after closures that read it are made (late binding), stays a `let`.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // The console's page script runs in the browser.
    files: ["src/gateway/ui/**/*.js"],
    languageOptions: {
      globals: { document: "readonly", window: "readonly", sessionStorage: "readonly", Node: "readonly", TextDecoderStream: "readonly" },
    },
  },
  // Inside src/, a folder imports only the folders below it (DESIGN.md, "The wire and the layers").
  ...LAYERS.map((folder, i) => ({
    files: [`src/${folder}/**/*.ts`],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/servers/**", "**/orchestrator/**"],
              message: "src/ must not import servers/ or orchestrator/ (dependencies point inward).",
            },
            ...(i + 1 < LAYERS.length
              ? [
                  {
                    group: LAYERS.slice(i + 1).map((above) => `**/${above}/**`),
                    message: `src/${folder}/ sits below ${LAYERS.slice(i + 1).join(", ")}: a folder imports only the folders below it (${LAYERS.join(" < ")}).`,
                  },
                ]
              : []),
          ],
        },
      ],
    },
  })),
  {
    // Dependencies point inward (STYLE.md rule 2): the library never imports agents or the orchestrator.
    files: ["src/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/servers/**", "**/orchestrator/**"],
              message: "src/ must not import servers/ or orchestrator/ (dependencies point inward).",
            },
          ],
        },
      ],
    },
  },
);
