/**
 * The pause protocol's Promela model, checked by spin (model/README.md).
 *
 * model/pause.pml (the protocol bunvmm implements) must have no invalid end state and no assertion
 * violation, and must satisfy its LTL properties under weak fairness. model/pause-broken-8092.pml
 * (cloud-hypervisor's #8092 lock scope) must deadlock, and spin's trail must show the cycle: the VMM holds
 * `vcpu_states` while it waits for a pause ack, and a vCPU waits for `vcpu_states` in its MMIO exit.
 * Each change pause.pml makes to the protocol as first specified, undone, must make spin find its bug.
 * With a device worker compiled in, the same properties hold, and reading CMD before draining the control
 * eventfd must lose a wake-up.
 *
 * spin is a hard requirement (Debian: apt-get install spin): without it these tests fail, they never skip.
 */
import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const MODEL_DIR = join(import.meta.dir, "../../model");
const MODEL_FILES = ["pause.pml", "pause-broken-8092.pml"] as const;
/** Each spin verifier run (./pan) must end within this bound; it takes about 10-30 s on 2 cores. */
const PAN_TIMEOUT_MS = 60_000;
/** spin -a and gcc on the generated verifier. */
const BUILD_TIMEOUT_MS = 60_000;
/** One test: build, run, and for the broken model replay the trail. */
const TEST_TIMEOUT_MS = 150_000;

/** Operation bounds (the VMM does at most K lifecycle operations, then shuts down); see model/check.sh. */
const K_SAFETY = 6;
const K_LTL_PAUSE = 5;
const K_LTL_OPS = 4;
/** With a device worker (-DDEVICE_WORKER) the states multiply by about ten: smaller bounds. */
const K_DEVICE = 3;
const K_DEVICE_LTL = 2;

interface PanResult {
  /** The "errors: N" count pan printed. */
  errors: number;
  /** First error message ("invalid end state", "assertion violated ..."), if any. */
  error: string | undefined;
  statesStored: number;
  stateVectorBytes: number;
  /** pan could not finish the search (memory bound, depth bound). */
  incomplete: boolean;
  output: string;
  dir: string;
}

function requireTools(): void {
  if (Bun.which("spin") === null) {
    throw new Error(
      "spin is not installed: the pause model cannot be checked. Install it with `apt-get install spin`.",
    );
  }
  if (Bun.which("gcc") === null) {
    throw new Error("gcc is not installed: spin's verifier is C. Install it with `apt-get install gcc`.");
  }
}

function run(cmd: string[], cwd: string, timeout: number): string {
  const r = Bun.spawnSync(cmd, { cwd, timeout, stdout: "pipe", stderr: "pipe" });
  const output = r.stdout.toString() + r.stderr.toString();
  if (r.exitedDueToTimeout)
    throw new Error(`${cmd.join(" ")}: did not finish within ${timeout} ms\n${output}`);
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: exit ${r.exitCode}\n${output}`);
  return output;
}

/**
 * Generates, compiles and runs spin's verifier for `model` in a fresh directory.
 * mode "safety": assertions and invalid end states; "ltl:<claim>": acceptance cycles with weak fairness.
 */
function verify(model: (typeof MODEL_FILES)[number], mode: string, defines: string[]): PanResult {
  requireTools();
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-spin-"));
  for (const f of MODEL_FILES) copyFileSync(join(MODEL_DIR, f), join(dir, f));
  run(["spin", "-a", ...defines, model], dir, BUILD_TIMEOUT_MS);
  const cflags = mode === "safety" ? ["-DSAFETY", "-DNOCLAIM"] : ["-DNFAIR=3"];
  run(["gcc", "-O2", "-w", ...cflags, "-DMEMLIM=4096", "-o", "pan", "pan.c"], dir, BUILD_TIMEOUT_MS);
  const panArgs = mode === "safety" ? [] : ["-a", "-f", "-N", mode.slice("ltl:".length)];
  const output = run(["./pan", ...panArgs, "-m100000", "-w24"], dir, PAN_TIMEOUT_MS);
  const errors = /errors: (\d+)/.exec(output);
  if (errors === null) throw new Error(`pan printed no "errors: N" line\n${output}`);
  return {
    errors: Number(errors[1]),
    error:
      /pan:\d+: (invalid end state|assertion violated .*?|acceptance cycle)(?: \(at depth \d+\))?$/m.exec(
        output,
      )?.[1],
    statesStored: Number(/^\s*([\d.e+]+) states, stored/m.exec(output)?.[1] ?? NaN),
    stateVectorBytes: Number(/State-vector (\d+) byte/.exec(output)?.[1] ?? NaN),
    incomplete: /Search not completed|reached -DMEMLIM bound|max search depth too small/.test(output),
    output,
    dir,
  };
}

/** Runs `verify`, expects no error and a complete search, and always removes its directory. */
function verifyClean(...args: Parameters<typeof verify>): void {
  const r = verify(...args);
  try {
    expectClean(r);
  } finally {
    rmSync(r.dir, { recursive: true, force: true });
  }
}

function expectClean(r: PanResult): void {
  try {
    expect({ errors: r.errors, error: r.error, incomplete: r.incomplete }).toEqual({
      errors: 0,
      error: undefined,
      incomplete: false,
    });
    expect(r.statesStored).toBeGreaterThan(1000);
  } catch (e) {
    console.error(r.output);
    throw e;
  }
}

describe("model/pause.pml", () => {
  test(
    `safety (K=${K_SAFETY}): no invalid end state, no guest entry while PARKED, API state matches the vCPUs`,
    () => {
      verifyClean("pause.pml", "safety", [`-DK=${K_SAFETY}`]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    `LTL (K=${K_LTL_PAUSE}, weak fairness): [] (pausing -> <> !pausing), every pause completes or rolls back`,
    () => {
      verifyClean("pause.pml", "ltl:pause_completes", [`-DK=${K_LTL_PAUSE}`]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    `LTL (K=${K_LTL_OPS}, weak fairness): [] (busy -> <> !busy), every pause, resume and shutdown completes`,
    () => {
      verifyClean("pause.pml", "ltl:ops_complete", [`-DK=${K_LTL_OPS}`]);
    },
    TEST_TIMEOUT_MS,
  );

  // Each change pause.pml makes to the protocol as first specified, undone: spin must find the bug again.
  test.each([
    // a worker created while paused and resumed before it first ran never acks the resume epoch
    ["NO_FIX_ACK_RUNNING", /^assertion violated\s+!\(deadline_hit\)$/],
    // duplicate ejects: a second kick, a second reap, an unmarked slot reaped, an overflowing mailbox
    [
      "NO_FIX_EJECT_ONCE",
      /^assertion violated (\(THREADS\[\w+\]>0\)|\(\(r!=0\)&&PENDING_REMOVAL\[r\]\)|nfull\(mbox\))$/,
    ],
    // a signal sent to a worker thread that has already ended (or a stale ACK write: a deadline needed)
    ["NO_FIX_EXIT_LAST", /^assertion violated (\(THREADS\[\w+\]>0\)|\s*!\(deadline_hit\))$/],
    // a vCPU hot-added while paused parks at its first checkpoint and acknowledges a save unserved
    ["NO_FIX_SERVE_ON_PARK", /^assertion violated .*REQ\[0\].*REQ\[1\].*REQ\[2\]/],
  ] as const)(
    "-D%s: spin finds the bug the change fixes",
    (define, expected) => {
      const r = verify("pause.pml", "safety", ["-DK=4", `-D${define}`]);
      try {
        expect(r.errors).toBeGreaterThan(0);
        expect(r.error ?? "").toMatch(expected);
      } finally {
        rmSync(r.dir, { recursive: true, force: true });
      }
    },
    TEST_TIMEOUT_MS,
  );
});

describe("model/pause.pml with a device worker (-DDEVICE_WORKER)", () => {
  test(
    `safety (K=${K_DEVICE}): the vCPU properties, no request in flight at Paused, no notification to a parked device`,
    () => {
      verifyClean("pause.pml", "safety", [`-DK=${K_DEVICE}`, "-DDEVICE_WORKER"]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    `LTL (K=${K_DEVICE_LTL}, weak fairness): [] (busy -> <> !busy) with the device worker in pause, resume and shutdown`,
    () => {
      verifyClean("pause.pml", "ltl:ops_complete", [`-DK=${K_DEVICE_LTL}`, "-DDEVICE_WORKER"]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "-DNO_FIX_DRAIN_THEN_READ: reading CMD before draining the control eventfd loses a wake-up",
    () => {
      const r = verify("pause.pml", "safety", [
        `-DK=${K_DEVICE}`,
        "-DDEVICE_WORKER",
        "-DNO_FIX_DRAIN_THEN_READ",
      ]);
      try {
        expect(r.errors).toBeGreaterThan(0);
        expect(r.error ?? "").toMatch(/^assertion violated\s+!\(deadline_hit\)$/);
      } finally {
        rmSync(r.dir, { recursive: true, force: true });
      }
    },
    TEST_TIMEOUT_MS,
  );
});

describe("model/pause-broken-8092.pml", () => {
  test(
    "spin reports an invalid end state, and the trail ends in the vcpu_states hold-and-wait cycle",
    () => {
      const r = verify("pause-broken-8092.pml", "safety", [`-DK=${K_SAFETY}`]);
      try {
        expect(r.errors).toBeGreaterThan(0);
        expect(r.error).toBe("invalid end state");

        // Replay the trail; spin prints the steps, then the final globals and where each process stopped.
        const trail = run(["spin", "-t", "-p", "pause-broken-8092.pml"], r.dir, BUILD_TIMEOUT_MS);
        const finalPart = trail.slice(trail.lastIndexOf("#processes:"));
        const source = readFileSync(join(MODEL_DIR, "pause.pml"), "utf8").split("\n");
        const stoppedAt = [
          ...finalPart.matchAll(/proc\s+\d+ \((\w+):\d+\) pause\.pml:(\d+) \(state \d+\)(.*)$/gm),
        ].map(([, proc, line, rest]) => ({
          proc,
          line: Number(line),
          valid: (rest ?? "").includes("valid end state"),
        }));
        const lineText = (n: number) => source[n - 1] ?? "";
        const near = (n: number, needle: string) =>
          [0, 1, 2, 3].some((d) => lineText(n + d).includes(needle));

        // The VMM (holder N + 1 = 4) holds vcpu_states and is in the middle of pause() ...
        expect(finalPart).toMatch(/\bvcpu_states_lock = 4\b/);
        expect(finalPart).toMatch(/\bpausing = 1\b/);
        // ... waiting for every vCPU's PARKED ack (not at a valid end state) ...
        const vmm = stoppedAt.filter((p) => p.proc === "vmm");
        expect(vmm).toHaveLength(1);
        expect(vmm[0]!.valid).toBe(false);
        expect(near(vmm[0]!.line, "ALL_PAUSED(epoch)")).toBe(true);
        // ... while a vCPU is stuck taking vcpu_states in the hotplug controller's MMIO handler.
        const blockedOnLock = stoppedAt.filter(
          (p) => p.proc === "vcpu" && lineText(p.line).includes("LOCK_STATES(v)"),
        );
        expect(blockedOnLock.length).toBeGreaterThan(0);
      } catch (e) {
        console.error(r.output);
        throw e;
      } finally {
        rmSync(r.dir, { recursive: true, force: true });
      }
    },
    TEST_TIMEOUT_MS,
  );
});
