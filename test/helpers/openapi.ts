/**
 * docs/openapi.yaml as a response validator: every response the API tests receive goes through
 * `expectMatchesSpec` (via the clients in api-client.ts), so the document cannot drift from the server.
 * ajv validates bodies against the document's own component schemas (OpenAPI 3.0 schema objects are
 * the JSON Schema subset ajv checks, plus the `int64` format, registered below).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv, { type ValidateFunction } from "ajv";
import { parse } from "yaml";
import { REPO } from "./cli.ts";

export const SPEC_PATH = join(REPO, "docs", "openapi.yaml");
export const API_PREFIX = "/api/v1";

interface SchemaRef {
  $ref: string;
}
interface ResponseObject {
  description: string;
  headers?: Record<string, unknown>;
  content?: Record<string, { schema: SchemaRef }>;
}
interface Operation {
  responses: Record<string, ResponseObject | SchemaRef>;
  requestBody?: unknown;
}
export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Partial<Record<"get" | "put", Operation>>>;
  components: { schemas: Record<string, unknown>; responses: Record<string, ResponseObject> };
}

export const spec = parse(readFileSync(SPEC_PATH, "utf8")) as OpenApiDocument;

const ajv = new Ajv({
  strict: true,
  allErrors: true,
  formats: { int64: { type: "number", validate: (n: number) => Number.isSafeInteger(n) } },
});
ajv.addKeyword("components");
ajv.addSchema({ $id: "openapi.json", components: spec.components });

/** The validator of `#/components/schemas/NAME` (or any $ref into the document). */
export function schemaValidator(ref: string): ValidateFunction {
  const validate = ajv.getSchema(`openapi.json${ref}`);
  if (!validate) throw new Error(`docs/openapi.yaml has no schema at ${ref}`);
  return validate;
}

/** One HTTP answer as a client saw it. */
export interface SeenResponse {
  method: string;
  /** The request path, e.g. "/api/v1/vm.info". */
  path: string;
  status: number;
  allow: string | null;
  contentType: string | null;
  body: string;
}

/** How many responses have been checked in this test process (the suite asserts it is not zero). */
export let checkedResponses = 0;

/** What in `r` the document does not describe; empty when it matches. */
export function specProblems(r: SeenResponse): string[] {
  const name = r.path.startsWith(`${API_PREFIX}/`) ? r.path.slice(API_PREFIX.length) : undefined;
  const item = name === undefined ? undefined : spec.paths[name];
  let response: ResponseObject | SchemaRef | undefined;
  const problems: string[] = [];
  if (!item) {
    if (r.status !== 404)
      problems.push(`${r.path} is not in the document, so it must answer 404, not ${r.status}`);
    response = spec.components.responses.NotFound;
  } else {
    const op = item[r.method.toLowerCase() as "get" | "put"];
    if (!op) {
      const allowed = Object.keys(item).map((m) => m.toUpperCase());
      if (r.status !== 405)
        problems.push(`${r.method} ${r.path} is not in the document, so it must answer 405, not ${r.status}`);
      if (r.allow !== allowed.join(", "))
        problems.push(`Allow header is ${JSON.stringify(r.allow)}, the document says ${allowed.join(", ")}`);
      response = spec.components.responses.MethodNotAllowed;
    } else {
      response = op.responses[String(r.status)];
      if (!response) problems.push(`${r.method} ${r.path}: status ${r.status} is not documented`);
    }
  }
  if (response && "$ref" in response) {
    response = spec.components.responses[response.$ref.replace("#/components/responses/", "")];
  }
  if (!response) return problems;
  const json = response.content?.["application/json"];
  if (!json) {
    if (r.body !== "")
      problems.push(
        `${r.method} ${r.path} ${r.status}: the document says no body, got ${JSON.stringify(r.body)}`,
      );
    return problems;
  }
  if (!r.contentType?.startsWith("application/json"))
    problems.push(`content type is ${r.contentType}, not application/json`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.body);
  } catch {
    problems.push(`body is not JSON: ${JSON.stringify(r.body.slice(0, 200))}`);
    return problems;
  }
  const validate = schemaValidator(json.schema.$ref);
  if (!validate(parsed)) {
    problems.push(
      `body does not match ${json.schema.$ref}: ${ajv.errorsText(validate.errors)}; body ${r.body.slice(0, 300)}`,
    );
  }
  return problems;
}

/** Throws, naming every mismatch, unless `r` is what docs/openapi.yaml says the server sends. */
export function expectMatchesSpec(r: SeenResponse): void {
  checkedResponses++;
  const problems = specProblems(r);
  if (problems.length > 0) {
    throw new Error(
      `response to ${r.method} ${r.path} (${r.status}) does not match docs/openapi.yaml:\n  ${problems.join("\n  ")}`,
    );
  }
}
