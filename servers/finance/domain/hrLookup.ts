import { BusinessError, resultText } from "../../../src/protocol/results.ts";
import type { MeshCaller } from "../../../src/client/meshCaller.ts";
import type { PayrollEmployee } from "./types.ts";

/** The HR agent's name in the mesh; finance finds its instances through Consul. */
export const HR_AGENT = "hr";

/**
 * Finance does not own employee data: it asks the HR agent through the mesh (capability
 * reuse), wherever HR's healthy replicas are. HR's business errors come back as
 * BusinessErrors with HR's own message.
 */
export class HrLookup {
  private readonly mesh: MeshCaller;

  constructor(mesh: MeshCaller) {
    this.mesh = mesh;
  }

  async employee(employeeId: string, signal?: AbortSignal): Promise<PayrollEmployee> {
    const result = await this.mesh.callTool(HR_AGENT, "get_employee", { employee_id: employeeId }, { signal });
    if (result.isError) throw new BusinessError(`HR agent: ${resultText(result)}`);
    return (result.structuredContent as { employee: PayrollEmployee }).employee;
  }

  /** Employees whose record matches a name (or id), via HR's find_employee. */
  async find(query: string, signal?: AbortSignal, limit = 5): Promise<PayrollEmployee[]> {
    const result = await this.mesh.callTool(HR_AGENT, "find_employee", { query, limit }, { signal });
    if (result.isError) throw new BusinessError(`HR agent: ${resultText(result)}`);
    return (result.structuredContent as { employees: PayrollEmployee[] }).employees;
  }
}
