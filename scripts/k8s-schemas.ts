// Converts Kubernetes' own OpenAPI v2 document (api/openapi-spec/swagger.json of the
// k8s.io/kubernetes module) into the per-kind JSON schemas kubeconform reads, offline.
//
//   node scripts/k8s-schemas.ts <swagger.json> <out-dir>
//
// What the widely used kubernetes-json-schema "standalone-strict" sets do (openapi2jsonschema
// --kubernetes --expanded --stand-alone --strict), reproduced here so no schema is downloaded:
// - one file per group/version/kind, named as kubeconform's default template expects:
//   `<kind>-<version>.json` for the core group, `<kind>-<first label of group>-<version>.json`
//   otherwise (deployment-apps-v1.json, service-v1.json, ingress-networking-v1.json);
// - strict: every object with `properties` and no `additionalProperties` refuses unknown
//   fields (a misspelt `readinessProbe` key fails, as `kubectl apply --validate=strict` does);
// - IntOrString accepts an integer or a string, and Quantity a string or a number, as the API
//   server decodes them;
// - apiVersion and kind must be the file's own (so a wrong apiVersion cannot pass by accident).
// Each file is self-contained: it carries the definitions its kind reaches, under
// `definitions`, and `$ref`s stay JSON pointers into that same file (recursive types such as
// JSONSchemaProps need no inlining).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

type Schema = { [key: string]: unknown };
interface Gvk {
  group: string;
  version: string;
  kind: string;
}

const [swaggerPath, outDir] = process.argv.slice(2);
if (!swaggerPath || !outDir) {
  console.error("usage: node scripts/k8s-schemas.ts <swagger.json> <out-dir>");
  process.exit(2);
}
const swagger = JSON.parse(readFileSync(swaggerPath, "utf8")) as { definitions?: Record<string, Schema> };
const definitions = swagger.definitions;
if (!definitions || Object.keys(definitions).length === 0) {
  console.error(`${swaggerPath}: no "definitions": expected Kubernetes' OpenAPI v2 document (api/openapi-spec/swagger.json)`);
  process.exit(1);
}

const REF_PREFIX = "#/definitions/";
const INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/** The definition names a schema reaches through `$ref`, transitively. */
function closure(root: string): Set<string> {
  const seen = new Set<string>();
  const pending = [root];
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (seen.has(name)) continue;
    const def = definitions![name];
    if (!def) throw new Error(`$ref to a missing definition ${name}`);
    seen.add(name);
    walk(def, (node) => {
      const ref = node["$ref"];
      if (typeof ref === "string" && ref.startsWith(REF_PREFIX)) pending.push(ref.slice(REF_PREFIX.length));
    });
  }
  return seen;
}

function walk(node: unknown, visit: (n: Schema) => void): void {
  if (Array.isArray(node)) for (const item of node) walk(item, visit);
  else if (node !== null && typeof node === "object") {
    visit(node as Schema);
    for (const value of Object.values(node)) walk(value, visit);
  }
}

/** A deep copy made strict, with the decoding rules of IntOrString and Quantity. */
function strict(name: string, def: Schema): Schema {
  if (name === INT_OR_STRING) return { description: def["description"], oneOf: [{ type: "string" }, { type: "integer" }] };
  if (name === QUANTITY) return { description: def["description"], oneOf: [{ type: "string" }, { type: "number" }] };
  const copy = structuredClone(def);
  walk(copy, (node) => {
    if (node["properties"] !== undefined && typeof node["properties"] === "object" && node["additionalProperties"] === undefined)
      node["additionalProperties"] = false;
    delete node["x-kubernetes-group-version-kind"];
  });
  return copy;
}

function fileName({ group, version, kind }: Gvk): string {
  const suffix = group === "" ? version : `${group.split(".")[0]}-${version}`;
  return `${kind}-${suffix}`.toLowerCase() + ".json";
}

mkdirSync(outDir, { recursive: true });
let written = 0;
for (const [name, def] of Object.entries(definitions)) {
  const gvks = def["x-kubernetes-group-version-kind"] as Gvk[] | undefined;
  if (!gvks) continue;
  const reached = closure(name);
  const defs: Record<string, Schema> = {};
  for (const n of reached) defs[n] = strict(n, definitions[n]!);
  for (const gvk of gvks) {
    // Kinds shared by every group (DeleteOptions, WatchEvent, Status) name no resource one applies.
    if (gvks.length > 1 && ["DeleteOptions", "WatchEvent"].includes(gvk.kind)) continue;
    const apiVersion = gvk.group === "" ? gvk.version : `${gvk.group}/${gvk.version}`;
    const root = structuredClone(defs[name]!);
    const props = (root["properties"] ?? {}) as Record<string, Schema>;
    if (props["apiVersion"]) props["apiVersion"] = { ...props["apiVersion"], enum: [apiVersion] };
    if (props["kind"]) props["kind"] = { ...props["kind"], enum: [gvk.kind] };
    const schema = { $schema: "http://json-schema.org/draft-04/schema#", ...root, definitions: defs };
    writeFileSync(join(outDir, fileName(gvk)), JSON.stringify(schema));
    written++;
  }
}
console.error(`k8s-schemas: wrote ${written} schemas to ${outDir}`);
