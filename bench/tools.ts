// The benches' shell helpers: run a build tool (throwing with its output when it fails) and check
// that a tool is installed.

/** A build step (as, ld, objcopy, gcc) may take this long before it counts as failed. */
const TOOL_TIMEOUT_MS = 20_000;

/** Runs `cmd`; throws with its exit code, stderr and stdout when it fails or times out. */
export function sh(cmd: string[], timeoutMs = TOOL_TIMEOUT_MS): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  if (!r.success) {
    throw new Error(`${cmd.join(" ")} failed (${r.exitCode}):\n${r.stderr.toString()}${r.stdout.toString()}`);
  }
}

/** True when `tool` is on PATH. */
export function haveTool(tool: string): boolean {
  return Bun.which(tool) !== null;
}

/**
 * The QEMU 7.2 microvm every bench compares against, up to its devices and kernel: KVM, `memoryMib` of
 * RAM, no default devices, serial on stdout, isa-debug-exit at 0xf4 (how the guests power it off) and
 * version 2 virtio-mmio transports (microvm offers legacy ones unless told otherwise).
 */
export function qemuMicrovmArgs(exe: string | null, memoryMib: number): string[] {
  return [
    exe ?? "qemu-system-x86_64",
    "-M",
    "microvm",
    "-accel",
    "kvm",
    "-m",
    String(memoryMib),
    "-nodefaults",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=4",
    "-global",
    "virtio-mmio.force-legacy=false",
  ];
}
