/**
 * Request bodies: read with a size limit and a deadline (a client that stops half way through a body
 * must not hold anything), then parsed as JSON and checked against a valibot schema, with the field
 * named in the 400 message.
 *
 * Threads: VMM thread; the only wait is the body read, bounded by `timeoutMs` ([bounded-waits]). Nothing here
 * touches the VM, so a slow body never delays another request's lifecycle operation.
 * @module
 */
import * as v from "valibot";
import { ApiError } from "./api-error.ts";

/** Largest request body accepted; cloud-hypervisor's micro-http allows 4 MiB, our bodies are tiny. */
export const BODY_LIMIT_BYTES = 64 * 1024;
/** How long a client may take to send its body once the headers arrived. */
export const BODY_READ_TIMEOUT_MS = 5000;

/**
 * The whole body as bytes (empty when there is none).
 * @throws {ApiError} 400 when it is larger than `limit` bytes, 408 when it does not arrive within `timeoutMs`.
 */
export async function readBody(
  req: Request,
  limit: number = BODY_LIMIT_BYTES,
  timeoutMs: number = BODY_READ_TIMEOUT_MS,
): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    throw new ApiError(400, `request body is too large: ${declared} bytes, the limit is ${limit}`);
  }
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let timer: Timer | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === "timeout") {
        throw new ApiError(408, `request body did not arrive within ${timeoutMs} ms`);
      }
      if (next.done) break;
      total += next.value.byteLength;
      if (total > limit) throw new ApiError(400, `request body is too large: more than ${limit} bytes`);
      chunks.push(next.value);
    }
  } catch (e) {
    void reader.cancel().catch(() => undefined);
    if (e instanceof ApiError) throw e;
    throw new ApiError(400, `could not read the request body: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks);
}

/**
 * Parses `bytes` as JSON and validates it with `schema`.
 * @throws {ApiError} 400 "request body is not valid JSON: …" or "desired_vcpus = 0: expected …".
 */
export function parseJsonBody<TSchema extends v.GenericSchema>(
  bytes: Uint8Array,
  schema: TSchema,
  what: string,
): v.InferOutput<TSchema> {
  if (bytes.byteLength === 0) throw new ApiError(400, `this endpoint needs a JSON body (${what})`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new ApiError(400, `request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const result = v.safeParse(schema, value);
  if (result.success) return result.output;
  throw new ApiError(400, describeIssue(result.issues[0], what));
}

/**
 * One line naming the field, like the config file's messages: "desired_vcpus = 0: expected an integer
 * from 1 to 4", "desired_vcpus: required", "desired_ram: not supported in VmResize".
 */
function describeIssue(issue: v.BaseIssue<unknown>, what: string): string {
  const keys = issue.path?.map((item) => String(item.key)) ?? [];
  const key = keys.join(".");
  if (!key) return `request body is not a ${what}: expected ${issue.message}`;
  if (issue.type === "strict_object" && issue.input === keys.at(-1))
    return `${key}: not supported in ${what}`;
  if (issue.input === undefined) return `${key}: required`;
  return `${key} = ${JSON.stringify(issue.input)}: expected ${issue.message}`;
}
