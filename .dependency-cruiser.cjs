// @ts-check
/**
 * The layers of the repository, bottom up (docs/architecture.md draws them). A module imports
 * only its own layer and the layers below it; nothing imports in a circle. `npm run lint` runs
 * this over every folder; test/unit/layers.test.ts proves it refuses an upward import and a cycle.
 */
const LAYERS = [
  ["protocol", "^src/protocol/"],
  ["text", "^src/text/"],
  ["telemetry", "^src/telemetry/"],
  ["context", "^src/context/"],
  ["logger", "^src/logger\\.ts$"],
  ["consul", "^src/consul/"],
  ["state", "^src/state/"],
  ["http", "^src/http/"],
  ["mcp", "^src/mcp/"],
  ["discovery", "^src/discovery/"],
  ["client", "^src/client/"],
  ["agent", "^src/agent/"],
  ["gateway", "^src/gateway/"],
  ["a2a", "^src/a2a/"],
  ["console", "^src/console/"],
  ["library index", "^src/index\\.ts$"],
  ["servers", "^servers/"],
  ["orchestrator/common", "^orchestrator/common/"],
  ["orchestrator/agent", "^orchestrator/agent/"],
  ["orchestrator/gateway", "^orchestrator/gateway/(?!main\\.ts$)"],
  ["orchestrator/launcher", "^orchestrator/launcher/"],
  ["orchestrator/cli", "^orchestrator/cli/"],
];
/** Programs and harnesses: they may import any layer, and no layer imports them. */
const TOP = "^(bench|scripts|test)/|^orchestrator/gateway/main\\.ts$";

const upward = LAYERS.map(([name, path], i) => ({
  name: `layer-${name.replace(/\W+/g, "-")}`,
  comment: `${name} sits below ${LAYERS.slice(i + 1)
    .map(([n]) => n)
    .join(", ")}: a layer imports only the layers below it (docs/architecture.md).`,
  severity: /** @type {const} */ ("error"),
  from: { path },
  to: { path: [...LAYERS.slice(i + 1).map(([, p]) => p), TOP] },
}));

/** @type {import("dependency-cruiser").IConfiguration} */
module.exports = {
  forbidden: [
    ...upward,
    {
      name: "no-circular",
      comment: "No import circle, even through types: a circle means two modules are one (docs/architecture.md).",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "no-unlayered",
      comment: "Every source file belongs to a layer in .dependency-cruiser.cjs (add a new folder there and to docs/architecture.md).",
      severity: "error",
      from: { path: "^(src|servers|orchestrator)/", pathNot: [...LAYERS.map(([, p]) => p), TOP] },
      to: {},
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: ["node_modules", "^bench/autogen/", "\\.venv/"] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
