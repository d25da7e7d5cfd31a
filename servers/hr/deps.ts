import type { Directory } from "./domain/directory.ts";
import type { LeaveService } from "./domain/leave.ts";
import type { HrAnswerer } from "./domain/answer.ts";

/** What every MCP session of an HR process shares. */
export interface HrDeps {
  directory: Directory;
  leave: LeaveService;
  answerer: HrAnswerer;
}
