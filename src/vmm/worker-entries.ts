/**
 * Every Worker entry point bunvmm starts, named once: the VMM resolves them here, and `bun run build`
 * (src/vmm/build-binary.ts) compiles exactly these next to the CLI, so a compiled binary can start
 * every worker the source tree can.
 *
 * In a `bun build --compile` binary, entry points live in an embedded file system rooted at the entry
 * points' common folder (src/), and are named relative to it; from the source tree they are files.
 *
 * Threads: VMM thread (and the build script).
 */

/** Entry modules by name, as paths under src/. A device type's back-end names its entry here. */
export const WORKER_ENTRIES = {
  vcpu: "vcpu/worker.ts",
  /** Every virtio device's back-end (devices/virtio/mmio-device.ts names it VIRTIO_WORKER_ENTRY). */
  virtio: "vmm/virtio-worker.ts",
} as const;

export type WorkerEntryName = keyof typeof WORKER_ENTRIES;

/** The CLI's entry, under src/: the first entry point of the compiled binary. */
export const CLI_ENTRY = "cli/main.ts";

/** Paths from the repository root of every entry point the binary needs, the CLI first. */
export function compiledEntryPoints(): string[] {
  return [CLI_ENTRY, ...Object.values(WORKER_ENTRIES)].map((p) => `src/${p}`);
}

/** What to pass to `new Worker` for `name`, from the source tree or inside a compiled binary. */
export function workerEntryUrl(name: WorkerEntryName): string {
  const path = WORKER_ENTRIES[name];
  return import.meta.url.includes("/$bunfs/") ? `./${path}` : new URL(`../${path}`, import.meta.url).href;
}
