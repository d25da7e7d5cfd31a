#!/usr/bin/env node
// The mesh CLI. `mesh --help` lists the commands.
import { Command, CommanderError } from "commander";
import { describeError, isMeshError } from "../../src/errors.ts";
import { serveCommand } from "./commands/serve.ts";
import { upCommand } from "./commands/up.ts";
import { UsageError } from "./errors.ts";
import { EXIT } from "./exitCodes.ts";

export function buildProgram(): Command {
  const program = new Command("mesh")
    .description("toolmesh: MCP agents discovered through Consul")
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  program.addCommand(serveCommand().exitOverride());
  program.addCommand(upCommand().exitOverride());
  return program;
}

async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exit(e.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
    }
    if (e instanceof UsageError || (isMeshError(e) && e.code === "CONFIG_INVALID")) {
      process.stderr.write(`mesh: ${describeError(e)}\n`);
      process.exit(EXIT.USAGE);
    }
    if (isMeshError(e)) {
      process.stderr.write(`mesh: ${describeError(e)}\n`);
      process.exit(EXIT.MESH);
    }
    process.stderr.write(`mesh: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(EXIT.INTERNAL);
  }
}

await main(process.argv);
