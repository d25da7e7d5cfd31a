/** A mistake in how the CLI was called; exits with EXIT.USAGE. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A tool answered with isError (a business failure); exits with EXIT.TOOL_ERROR. */
export class ToolError extends Error {
  override readonly name = "ToolError";
}
