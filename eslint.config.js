// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

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
    // CommonJS configuration files (dependency-cruiser's).
    files: ["**/*.cjs"],
    languageOptions: { sourceType: "commonjs", globals: { module: "writable", require: "readonly" } },
  },
  {
    // The console's page script runs in the browser.
    files: ["src/console/ui/**/*.js"],
    languageOptions: {
      globals: { document: "readonly", window: "readonly", sessionStorage: "readonly", Node: "readonly", TextDecoderStream: "readonly" },
    },
  },
  {
    // Sizes a reader can hold (docs/architecture.md): split by responsibility, not by cleverness.
    files: ["src/**/*.ts", "orchestrator/**/*.ts", "servers/**/*.ts", "bench/**/*.ts", "scripts/**/*.ts"],
    rules: {
      "max-lines": ["error", { max: 300, skipBlankLines: true, skipComments: true }],
      "max-lines-per-function": ["error", { max: 60, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },
  // The layers (and no cycles) are checked by dependency-cruiser: .dependency-cruiser.cjs.
);
