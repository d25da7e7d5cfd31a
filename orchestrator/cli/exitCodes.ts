/** Exit codes of the mesh CLI, one per kind of failure (STYLE.md rule 6). */
export const EXIT = Object.freeze({
  OK: 0,
  /** A tool answered with isError (a business failure). */
  TOOL_ERROR: 1,
  /** Bad flags, arguments or configuration. */
  USAGE: 2,
  /** Consul, discovery, connections, deadlines, protocol errors from an agent: the mesh itself failed. */
  MESH: 3,
  /** A bug in toolmesh (an error that is none of the above); please report it. */
  INTERNAL: 70,
  /** Interrupted twice (Ctrl-C during shutdown). */
  INTERRUPTED: 130,
});
