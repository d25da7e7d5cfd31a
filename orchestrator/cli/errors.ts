/** A mistake in how the CLI was called; exits with EXIT.USAGE. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
