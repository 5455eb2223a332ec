/**
 * docs/openapi.yaml: a valid OpenAPI 3.0 document, naming exactly the routes the server has, with
 * cloud-hypervisor's schema names; and the response validator the other API tests use really rejects
 * what the document does not describe.
 */
import { describe, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { API_ROOT, ROUTES } from "../../src/api/index.ts";
import { API_PREFIX, type SeenResponse, schemaValidator, spec, specProblems } from "../helpers/openapi.ts";

describe("docs/openapi.yaml", () => {
  test("is a valid OpenAPI 3.0 document", async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(spec) as unknown as Record<string, unknown>);
    expect({ valid: result.valid, errors: result.errors ?? null }).toEqual({ valid: true, errors: null });
    expect(validator.version).toStartWith("3.0");
  });

  test("documents exactly the server's routes, each with its method", () => {
    expect(API_PREFIX).toBe(API_ROOT);
    const documented = Object.fromEntries(
      Object.entries(spec.paths).map(([path, item]) => [
        path.slice(1),
        Object.keys(item).map((m) => m.toUpperCase()),
      ]),
    );
    const served = Object.fromEntries(Object.entries(ROUTES).map(([name, route]) => [name, [route.method]]));
    expect(documented).toEqual(served);
  });

  test("uses cloud-hypervisor's schema names for what cloud-hypervisor has", () => {
    expect(Object.keys(spec.components.schemas)).toEqual(
      expect.arrayContaining([
        "VmmPingResponse",
        "VmState",
        "VmInfo",
        "VmCounters",
        "VmConfig",
        "CpusConfig",
        "MemoryConfig",
        "PayloadConfig",
        "SerialConfig",
        "ConsoleMode",
        "VmResize",
      ]),
    );
  });

  test("VmResize takes desired_vcpus only", () => {
    const validate = schemaValidator("#/components/schemas/VmResize");
    expect([
      validate({ desired_vcpus: 2 }),
      validate({ desired_vcpus: 0 }),
      validate({ desired_ram: 1 }),
      validate({}),
    ]).toEqual([true, false, false, false]);
  });
});

describe("specProblems()", () => {
  const base: SeenResponse = {
    method: "GET",
    path: "/api/v1/vm.info",
    status: 200,
    allow: null,
    contentType: "application/json",
    body: "",
  };
  const info = {
    config: {
      cpus: { boot_vcpus: 1, max_vcpus: 1, hide_features: [] },
      memory: { size: 1 << 24, thp: true },
      payload: { cmdline: "", format: "raw" },
      serial: { mode: "Off" },
      api: {},
      disks: [{ path: "/vm/disk.img", readonly: false, direct: false, id: "disk0" }],
      rng: { src: "/dev/urandom" },
      console: { mode: "File", file: "/vm/hvc0.log" },
      vmm: { lifecycle_timeout_ms: 1000 },
    },
    state: "Running",
    memory_actual_size: 1 << 24,
  };

  test("accepts a response the document describes", () => {
    expect(specProblems({ ...base, body: JSON.stringify(info) })).toEqual([]);
  });

  test.each([
    [
      "a missing field",
      { ...base, body: JSON.stringify({ ...info, state: undefined }) },
      "must have required property 'state'",
    ],
    [
      "an undocumented field",
      { ...base, body: JSON.stringify({ ...info, device_tree: {} }) },
      "must NOT have additional properties",
    ],
    [
      "a state outside VmState",
      { ...base, body: JSON.stringify({ ...info, state: "BreakPoint" }) },
      "must be equal to one of the allowed values",
    ],
    ["an undocumented status", { ...base, status: 201, body: "{}" }, "status 201 is not documented"],
    [
      "a body on a 204",
      { ...base, method: "PUT", path: "/api/v1/vm.pause", status: 204, body: "x" },
      "the document says no body",
    ],
    [
      "an error without the error field",
      { ...base, method: "PUT", path: "/api/v1/vm.pause", status: 405, body: '["x"]' },
      "must be object",
    ],
    ["a 200 for an unknown path", { ...base, path: "/api/v1/vm.nmi", body: "{}" }, "must answer 404"],
    [
      "a 405 without Allow",
      { ...base, method: "GET", path: "/api/v1/vm.pause", status: 405, body: '{"error":"x"}' },
      "Allow header is null",
    ],
    ["a body that is not JSON", { ...base, body: "Running" }, "body is not JSON"],
  ])("rejects %s", (_what, response, problem) => {
    expect(specProblems(response).join("\n")).toContain(problem);
  });
});
