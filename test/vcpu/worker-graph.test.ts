/**
 * Each worker loads only what it runs (devices/frontends.ts): the vCPU worker's module graph, as Bun's
 * bundler resolves it from src/vcpu/worker.ts, holds the devices' register front-ends and no AML
 * builder, no device type, no back-end and no boot code; the virtio device worker's holds its back-ends
 * and no device type. Every module there is loaded again in every
 * vCPU (docs/performance.md), so this guards the footprint. Also: every device kind a machine can have
 * has its front-end in the worker's table, the same function its type attaches with.
 */
import { describe, expect, test } from "bun:test";
import { join, relative } from "node:path";
import { DEVICE_FRONTENDS } from "../../devices/frontends.ts";
import { DEVICE_KINDS } from "../../devices/registry.ts";

const REPO = join(import.meta.dir, "..", "..");

/** The repository paths of every module `entry` loads, statically. */
async function moduleGraph(entry: string): Promise<string[]> {
  const build = await Bun.build({ entrypoints: [join(REPO, entry)], target: "bun", metafile: true });
  expect(build.success).toBe(true);
  return Object.keys(build.metafile!.inputs).map((p) => relative(REPO, join(REPO, p)));
}

describe("the vCPU worker's module graph", () => {
  test("holds the front-ends and none of the VMM thread's device, ACPI or boot code", async () => {
    const graph = await moduleGraph("src/vcpu/worker.ts");
    expect(graph).toContain("devices/frontends.ts");
    expect(graph).toContain("devices/serial-8250.ts");
    expect(graph).toContain("devices/virtio/mmio-transport.ts");
    const forbidden = graph.filter(
      (p) =>
        p.startsWith("src/arch/x86_64/acpi/") ||
        (p.endsWith("-type.ts") && p !== "devices/device-type.ts") ||
        p === "devices/registry.ts" ||
        p === "devices/cpu-hotplug.ts" ||
        p === "devices/virtio/mmio-device.ts" ||
        /^devices\/virtio\/(block|queue|rng|console|net|vsock)/.test(p) ||
        /^src\/arch\/x86_64\/(bzimage|boot-params|elf|pvh|linux-boot|long-mode|e820|page-tables)\.ts$/.test(
          p,
        ) ||
        p.startsWith("src/config/") ||
        p.startsWith("src/api/"),
    );
    expect(forbidden).toEqual([]);
  });

  test("the virtio device worker's graph holds the back-ends and none of the device types or AML", async () => {
    const graph = await moduleGraph("src/vmm/virtio-worker.ts");
    expect(graph).toContain("devices/virtio/block.ts");
    const forbidden = graph.filter(
      (p) =>
        p.startsWith("src/arch/x86_64/acpi/") ||
        /^devices\/virtio\/[a-z]+-device\.ts$/.test(p) ||
        p === "devices/registry.ts" ||
        p.startsWith("src/config/"),
    );
    expect(forbidden).toEqual([]);
  });

  test("every device kind has its front-end, the same function its type attaches with", () => {
    for (const kind of DEVICE_KINDS) expect(DEVICE_FRONTENDS[kind.kind]).toBe(kind.attach);
    expect(Object.keys(DEVICE_FRONTENDS).sort()).toEqual(DEVICE_KINDS.map((k) => k.kind).sort());
  });
});
