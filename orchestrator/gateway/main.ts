#!/usr/bin/env node
// The gateway as a process: `node orchestrator/gateway/main.ts --port 7000` (same as `mesh gateway`).
import { enableCompileCache } from "node:module";

enableCompileCache?.();
const { Command } = await import("commander");
const { addGatewayOptions, runGateway } = await import("./run.ts");
await addGatewayOptions(new Command("gateway"))
  .action(async (flags) => {
    await runGateway(flags);
    process.exit(0);
  })
  .parseAsync(process.argv);
