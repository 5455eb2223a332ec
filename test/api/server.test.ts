/**
 * The REST API in-process: a real Vm on /dev/kvm (the counter guest), the server on a Unix socket, and
 * real clients (Bun's fetch, raw sockets). Every answer is checked against docs/openapi.yaml.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VcpuTimeoutError, Vm } from "bunvmm";
import { createConsola, LogLevels } from "consola";
import { ApiSocketError, BODY_LIMIT_BYTES, CLOSE_TIMEOUT_MS, startApiServer } from "../../src/api/index.ts";
import { apiFetch, expectRawMatchesSpec, isSocket, rawClient } from "../helpers/api-client.ts";
import { tempDir } from "../helpers/bunvmm-child.ts";
import { BUN } from "../helpers/cli.ts";
import { rawGuestConfig, waitUntil } from "../helpers/guests.ts";
import { Rng } from "../helpers/rng.ts";

/** Deadline of a wait for the API server to act on a request. */
const API_WAIT_MS = 15_000;

setDefaultTimeout(60_000);

const logger = createConsola({ level: LogLevels.silent });
const QUIET = { serial: { mode: "off" } as const, logger };
const dir = tempDir();
let sockets = 0;
const nextSocket = () => join(dir, `api-${sockets++}.sock`);

/** A booted counter guest (2 of 4 vCPUs) with the API on a fresh socket. */
async function serve(opts: { boot?: boolean; bodyTimeoutMs?: number } = {}) {
  const vm = await Vm.create(rawGuestConfig("counter", { boot: 2, max: 4 }), QUIET);
  const api = await startApiServer(vm, {
    socket: nextSocket(),
    logger,
    ...(opts.bodyTimeoutMs ? { bodyTimeoutMs: opts.bodyTimeoutMs } : {}),
  });
  if (opts.boot !== false) await vm.boot();
  return {
    vm,
    api,
    socket: api.socket,
    async [Symbol.asyncDispose]() {
      await api.close();
      await vm.shutdown();
    },
  };
}

const state = async (socket: string) => (await apiFetch(socket, "GET", "vm.info")).json().state as string;

describe("ApiServer endpoints", () => {
  test("vmm.ping answers the version, the pid and the features", async () => {
    await using s = await serve();
    const r = await apiFetch(s.socket, "GET", "vmm.ping");
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ version: "0.1.0", pid: process.pid, features: ["kvm"] });
  });

  test("vm.pause and vm.resume answer 204 and vm.info follows: Running, Paused, Running", async () => {
    await using s = await serve();
    const info = (await apiFetch(s.socket, "GET", "vm.info")).json();
    expect(info).toMatchObject({ state: "Running", memory_actual_size: 16 * 1024 * 1024 });
    expect(info.config).toMatchObject({
      cpus: { boot_vcpus: 2, max_vcpus: 4 },
      memory: { size: 16 << 20 },
      serial: { mode: "Off" },
    });
    expect((await apiFetch(s.socket, "PUT", "vm.pause")).status).toBe(204);
    expect(await state(s.socket)).toBe("Paused");
    expect(s.vm.vcpuStates()).toEqual(["PARKED", "PARKED"]);
    expect((await apiFetch(s.socket, "PUT", "vm.resume")).status).toBe(204);
    expect(await state(s.socket)).toBe("Running");
  });

  test("vm.counters has one map per vCPU and one for the serial port", async () => {
    await using s = await serve();
    await apiFetch(s.socket, "PUT", "vm.pause");
    const c = (await apiFetch(s.socket, "GET", "vm.counters")).json();
    expect(Object.keys(c)).toEqual(expect.arrayContaining(["vcpu0", "vcpu1", "serial"]));
    expect(Object.keys(c.vcpu0)).toEqual(
      expect.arrayContaining(["exits", "io_exits", "mmio_exits", "pauses", "kicks"]),
    );
    expect(c.vcpu0.pauses + c.vcpu1.pauses).toBeGreaterThanOrEqual(1);
    expect(c.serial).toEqual({ bytes_out: 0, bytes_dropped: 0 });
  });

  test("vm.resize adds a vCPU (204), and answers 429 while a removal is pending", async () => {
    await using s = await serve();
    expect((await apiFetch(s.socket, "PUT", "vm.resize", { desired_vcpus: 3 })).status).toBe(204);
    expect((await apiFetch(s.socket, "GET", "vm.info")).json().config.cpus.boot_vcpus).toBe(3);
    expect(Object.keys((await apiFetch(s.socket, "GET", "vm.counters")).json())).toContain("vcpu2");
    // The counter guest never ejects a CPU, so the removal stays pending (cloud-hypervisor: 429).
    expect((await apiFetch(s.socket, "PUT", "vm.resize", { desired_vcpus: 2 })).status).toBe(204);
    const refused = await apiFetch(s.socket, "PUT", "vm.resize", { desired_vcpus: 3 });
    expect(refused.status).toBe(429);
    expect(refused.json().error).toContain("vCPU 2 is being removed");
  });

  test("vm.reboot restarts the guest (204, Running, one reboot counted); vm.power-button answers 204", async () => {
    await using s = await serve();
    expect((await apiFetch(s.socket, "PUT", "vm.reboot")).status).toBe(204);
    expect(await state(s.socket)).toBe("Running");
    expect((await apiFetch(s.socket, "GET", "vm.counters")).json().vm).toEqual({ reboots: 1 });
    expect((await apiFetch(s.socket, "PUT", "vm.power-button")).status).toBe(204);
  });

  test("vmm.shutdown answers 204, stops the VM, closes the server and removes the socket", async () => {
    await using s = await serve();
    expect((await apiFetch(s.socket, "PUT", "vmm.shutdown")).status).toBe(204);
    expect(s.vm.state).toBe("Shutdown");
    await Promise.race([s.api.closed, deadline(5000, "the server to close after vmm.shutdown")]);
    expect(existsSync(s.socket)).toBe(false);
  });
});

describe("ApiServer refusals", () => {
  test("operations the state refuses answer 405 naming the state, in every state", async () => {
    await using s = await serve({ boot: false });
    const refused = async (endpoint: string, message: string, body?: object) => {
      const r = await apiFetch(s.socket, "PUT", endpoint, body);
      expect([r.status, r.json().error]).toEqual([405, message]);
    };
    await refused("vm.pause", "cannot pause: the VM is Created");
    await refused("vm.reboot", "cannot reboot: the VM is Created");
    await s.vm.boot();
    await refused("vm.resume", "cannot resume: the VM is Running");
    await apiFetch(s.socket, "PUT", "vm.pause");
    await refused("vm.pause", "cannot pause: the VM is Paused");
    await refused("vm.power-button", "cannot press the power button: the VM is Paused");
    expect((await apiFetch(s.socket, "PUT", "vm.shutdown")).status).toBe(204);
    expect(await state(s.socket)).toBe("Shutdown");
    await refused("vm.resume", "cannot resume: the VM is Shutdown");
    await refused("vm.resize", "cannot resize: the VM is Shutdown", { desired_vcpus: 2 });
    expect((await apiFetch(s.socket, "PUT", "vm.shutdown")).status).toBe(204); // idempotent
  });

  test("a pause that times out answers 500 with the VcpuTimeoutError's message", async () => {
    const stuck = [{ vcpu: 1, epoch: 3, ack: 2, runState: "RUNNING" }];
    const stub = {
      pause: () =>
        Promise.reject(new VcpuTimeoutError("pause", 1000, stuck, "rolled back: every vCPU is running")),
    } as unknown as Vm;
    await using api = await startApiServer(stub, { socket: nextSocket(), logger });
    const r = await apiFetch(api.socket, "PUT", "vm.pause");
    expect(r.status).toBe(500);
    expect(r.json().error).toBe(
      "pause timed out after 1000 ms waiting for vCPU 1 RUNNING (acked epoch 2, wanted 3); rolled back: every vCPU is running",
    );
  });
});

describe("ApiServer bad requests", () => {
  let s: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    s = await serve();
  });
  afterAll(async () => {
    await s[Symbol.asyncDispose]();
  });

  test.each([
    // unknown paths
    ["GET", "/api/v1/vm.nope", 404, "no such endpoint: /api/v1/vm.nope", undefined],
    ["GET", "/api/v2/vm.info", 404, "no such endpoint: /api/v2/vm.info", undefined],
    ["GET", "/api/v1/", 404, "no such endpoint: /api/v1/", undefined],
    ["PUT", "/vm.pause", 404, "no such endpoint: /vm.pause", undefined],
    // wrong methods
    ["GET", "/api/v1/vm.pause", 405, "vm.pause takes PUT, not GET", undefined],
    ["PUT", "/api/v1/vm.info", 405, "vm.info takes GET, not PUT", undefined],
    ["POST", "/api/v1/vm.resize", 405, "vm.resize takes PUT, not POST", '{"desired_vcpus": 2}'],
    ["DELETE", "/api/v1/vmm.ping", 405, "vmm.ping takes GET, not DELETE", undefined],
    // bodies
    ["PUT", "/api/v1/vm.resize", 400, "request body is not valid JSON: ", "{"],
    ["PUT", "/api/v1/vm.resize", 400, "this endpoint needs a JSON body (VmResize)", ""],
    [
      "PUT",
      "/api/v1/vm.resize",
      400,
      `request body is too large: ${BODY_LIMIT_BYTES + 1} bytes, the limit is ${BODY_LIMIT_BYTES}`,
      "x".repeat(BODY_LIMIT_BYTES + 1),
    ],
    ["PUT", "/api/v1/vm.pause", 400, "vm.pause takes no request body", "{}"],
    // VmResize fields
    [
      "PUT",
      "/api/v1/vm.resize",
      400,
      "desired_vcpus = 0: expected an integer from 1 to 4 (cpus.max_vcpus)",
      '{"desired_vcpus": 0}',
    ],
    [
      "PUT",
      "/api/v1/vm.resize",
      400,
      "desired_vcpus = 5: expected an integer from 1 to 4 (cpus.max_vcpus)",
      '{"desired_vcpus": 5}',
    ],
    [
      "PUT",
      "/api/v1/vm.resize",
      400,
      "desired_vcpus = 1.5: expected an integer from 1 to 4",
      '{"desired_vcpus": 1.5}',
    ],
    [
      "PUT",
      "/api/v1/vm.resize",
      400,
      'desired_vcpus = "2": expected an integer from 1 to 4',
      '{"desired_vcpus": "2"}',
    ],
    ["PUT", "/api/v1/vm.resize", 400, "desired_vcpus: required", "{}"],
    [
      "PUT",
      "/api/v1/vm.resize",
      400,
      "desired_ram: not supported in VmResize",
      '{"desired_vcpus": 2, "desired_ram": 1073741824}',
    ],
    [
      "PUT",
      "/api/v1/vm.resize",
      400,
      'request body is not a VmResize: expected a JSON object like {"desired_vcpus": 2}',
      "[2]",
    ],
    ["PUT", "/api/v1/vm.resize", 400, "request body is not a VmResize", "null"],
  ] as const)("%s %s answers %d: %s", async (method, path, status, message, body) => {
    const r = await apiFetch(s.socket, method, path, body);
    expect(r.status).toBe(status);
    expect(r.json().error).toStartWith(message);
    if (status === 405) expect(r.allow).toBe(message.includes("takes PUT") ? "PUT" : "GET");
  });

  test("a chunked body over the limit answers 400 without reading it all", async () => {
    const chunk = new Uint8Array(16 * 1024).fill(0x20);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        sent++;
        if (sent > 64)
          c.close(); // 1 MiB at most
        else c.enqueue(chunk);
      },
    });
    const big = await fetch("http://localhost/api/v1/vm.resize", {
      unix: s.socket,
      method: "PUT",
      body,
      signal: AbortSignal.timeout(15_000),
    });
    expect(big.status).toBe(400);
    expect(await big.json()).toEqual({
      error: `request body is too large: more than ${BODY_LIMIT_BYTES} bytes`,
    });
    expect(await state(s.socket)).toBe("Running");
  });
});

describe("ApiServer socket", () => {
  test("is created with mode 0600 and removed by close()", async () => {
    await using s = await serve({ boot: false });
    expect(statSync(s.socket).mode & 0o777).toBe(0o600);
    await s.api.close();
    expect(existsSync(s.socket)).toBe(false);
  });

  test("never clobbers a live socket: a second server fails with one line and the first keeps answering", async () => {
    await using s = await serve({ boot: false });
    await expect(startApiServer(s.vm, { socket: s.socket, logger })).rejects.toThrow(
      new ApiSocketError(s.socket, `api socket ${s.socket} is in use by another process`),
    );
    expect((await apiFetch(s.socket, "GET", "vmm.ping")).status).toBe(200);
  });

  test("replaces a stale socket whose process died", async () => {
    const socket = nextSocket();
    const killed = Bun.spawn(
      [
        BUN,
        "-e",
        `Bun.serve({ unix: ${JSON.stringify(socket)}, fetch: () => new Response("") }); process.kill(process.pid, "SIGKILL");`,
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
    await killed.exited;
    expect(isSocket(socket)).toBe(true); // left behind, nothing listening
    const vm = await Vm.create(rawGuestConfig("counter"), QUIET);
    await using api = await startApiServer(vm, { socket, logger });
    expect((await apiFetch(api.socket, "GET", "vm.info")).json().state).toBe("Created");
    await vm.shutdown();
  });

  test("refuses a path that is not a socket and leaves the file alone", async () => {
    const path = join(dir, "not-a-socket");
    writeFileSync(path, "precious");
    const vm = await Vm.create(rawGuestConfig("counter"), QUIET);
    await expect(startApiServer(vm, { socket: path, logger })).rejects.toThrow(
      `api socket ${path} exists and is not a socket`,
    );
    expect(await Bun.file(path).text()).toBe("precious");
    await vm.shutdown();
  });
});

describe("ApiServer concurrency", () => {
  test("100 concurrent clients issuing pause/resume/info/resize in random order all get answers, and the final state is what the successes add up to", async () => {
    await using s = await serve();
    const seed = (Date.now() ^ process.pid) >>> 0;
    const rng = new Rng(seed);
    const random = () => rng.next();
    const ops = ["pause", "resume", "info", "resize"] as const;
    const ok: Record<(typeof ops)[number], number> = { pause: 0, resume: 0, info: 0, resize: 0 };
    const allowed: Record<(typeof ops)[number], number[]> = {
      pause: [204, 405],
      resume: [204, 405],
      info: [200],
      resize: [204, 405, 429],
    };
    const plans = Array.from({ length: 100 }, () =>
      Array.from({ length: 5 }, () => ({
        op: ops[Math.floor(random() * ops.length)]!,
        vcpus: 1 + Math.floor(random() * 4),
      })),
    );
    let answered = 0;
    const client = async (plan: (typeof plans)[number]) => {
      for (const { op, vcpus } of plan) {
        const r =
          op === "info"
            ? await apiFetch(s.socket, "GET", "vm.info")
            : await apiFetch(
                s.socket,
                "PUT",
                `vm.${op}`,
                op === "resize" ? { desired_vcpus: vcpus } : undefined,
              );
        answered++;
        expect({ seed, op, status: r.status, allowed: allowed[op].includes(r.status) }).toEqual({
          seed,
          op,
          status: r.status,
          allowed: true,
        });
        if (r.status === 204 || r.status === 200) ok[op]++;
        if (op === "info") expect(["Running", "Paused"]).toContain(r.json().state);
      }
    };
    await Promise.race([
      Promise.all(plans.map(client)),
      deadline(45_000, `100 clients' answers (seed ${seed})`),
    ]);
    expect(answered).toBe(500);
    expect({ seed, pauses: ok.pause > 0, resumes: ok.resume > 0 }).toEqual({
      seed,
      pauses: true,
      resumes: true,
    });
    // Pause succeeds only from Running and resume only from Paused, and the Vm runs them one at a
    // time: the successes alternate, so the last completed one decides the state.
    const final = await state(s.socket);
    expect({ seed, final, pausedByCount: ok.pause - ok.resume === 1 }).toEqual({
      seed,
      final,
      pausedByCount: final === "Paused",
    });
    expect(ok.pause - ok.resume).toBeOneOf([0, 1]);
    const want = final === "Paused" ? "PARKED" : "RUNNING";
    await waitUntil(
      () => s.vm.vcpuStates().every((st) => st === want),
      `every vCPU ${want} (seed ${seed}): ${s.vm.vcpuStates()}`,
      API_WAIT_MS,
    );
    // Not wedged: the next toggle works and is seen.
    const toggle = final === "Paused" ? "resume" : "pause";
    expect((await apiFetch(s.socket, "PUT", `vm.${toggle}`)).status).toBe(204);
    expect(await state(s.socket)).toBe(final === "Paused" ? "Running" : "Paused");
  });

  test("a client that sends half a request, or vanishes mid-request, blocks no one", async () => {
    await using s = await serve({ bodyTimeoutMs: 500 });
    const halfHeaders = await rawClient(s.socket);
    halfHeaders.write("PUT /api/v1/vm.pause HTTP/1.1\r\nHost: localhost\r\n"); // never ends its headers
    const halfBody = await rawClient(s.socket);
    halfBody.write(
      'PUT /api/v1/vm.resize HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{"desired_',
    );
    const vanished = await rawClient(s.socket);
    vanished.write(
      'PUT /api/v1/vm.resize HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{"desired_',
    );
    vanished.close();
    const hungUp = await rawClient(s.socket);
    hungUp.write("PUT /api/v1/vm.pause HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
    hungUp.close(); // before the answer: the pause still runs, and is the last operation so far
    await waitUntil(() => s.vm.state === "Paused", "the vanished client's pause", API_WAIT_MS);

    for (let i = 0; i < 5; i++) {
      expect((await apiFetch(s.socket, "PUT", "vm.resume")).status).toBe(204);
      expect(await state(s.socket)).toBe("Running");
      expect((await apiFetch(s.socket, "PUT", "vm.pause")).status).toBe(204);
      expect(await state(s.socket)).toBe("Paused");
    }
    await waitUntil(() => halfBody.received().endsWith("}"), "the half body's answer", API_WAIT_MS);
    expect(expectRawMatchesSpec("PUT", "/api/v1/vm.resize", halfBody.received())).toBe(408);
    expect(halfBody.received()).toContain('{"error":"request body did not arrive within 500 ms"}');
    expect(halfHeaders.received()).toBe("");
    // Closing waits CLOSE_TIMEOUT_MS at most for the client that never finished its headers.
    await Promise.race([s.api.close(), deadline(CLOSE_TIMEOUT_MS + 3000, "close() with a half-open client")]);
    expect(existsSync(s.socket)).toBe(false);
    halfHeaders.close();
    halfBody.close();
  });
});

function deadline(ms: number, what: string): Promise<never> {
  return new Promise((_, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    timer.unref();
  });
}
