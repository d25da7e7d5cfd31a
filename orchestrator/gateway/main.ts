#!/usr/bin/env node
// The gateway as a process: `node orchestrator/gateway/main.ts --port 7000` is `mesh gateway --port 7000`,
// with the same validation, messages and exit codes.
import { enableCompileCache } from "node:module";

enableCompileCache?.();
const { main } = await import("../cli/program.ts");
await main([process.argv[0]!, "mesh", "gateway", ...process.argv.slice(2)]);
process.exit(0);
