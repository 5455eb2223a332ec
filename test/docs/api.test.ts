/**
 * docs/api.md shows what is served: its VmInfo and VmCounters examples have exactly the shape a live VM
 * answers with, and its library example imports the server from the package by name.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as bunvmm from "bunvmm";
import { Vm } from "bunvmm";
import { vmCounters, vmInfo } from "../../src/api/wire.ts";
import { guestImage } from "../helpers/guests.ts";
import { codeBlock } from "./_markdown.ts";

const DISK_BYTES = 1 << 16;

// biome-ignore lint/suspicious/noExplicitAny: the examples are JSON out of the page, read freely
const example = (what: string, key: string): any =>
  JSON.parse(codeBlock("api.md", what, (b) => b.lang === "json" && b.text.includes(key)));

/** The shape of a JSON value: objects by their sorted keys, arrays by their elements, leaves by type. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, shape((value as Record<string, unknown>)[k])]),
    );
  }
  return typeof value;
}

describe("docs/api.md", () => {
  test("the VmInfo example is what vm.info answers for the config it shows", async () => {
    const doc = example('a json block with "memory_actual_size"', '"memory_actual_size"');
    const { cpus, memory, payload, api } = doc.config;
    const kernel = guestImage("counter");
    await using vm = await Vm.create(
      { cpus, memory, payload: { ...payload, kernel }, serial: { mode: doc.config.serial.mode }, api },
      { serial: { mode: "off" }, logLevel: "silent" },
    );
    await vm.boot();
    expect(vmInfo(vm)).toEqual({ ...doc, config: { ...doc.config, payload: { ...payload, kernel } } });
  });

  test("the VmCounters example has the groups and counters a VM with two vCPUs and a disk reports", async () => {
    const doc = example('a json block with "bytes_dropped"', '"bytes_dropped"');
    const dir = mkdtempSync(join(tmpdir(), "bunvmm-docs-api-"));
    const disk = join(dir, "disk.img");
    writeFileSync(disk, new Uint8Array(DISK_BYTES));
    await using vm = await Vm.create(
      {
        cpus: { boot_vcpus: 2 },
        memory: { size: "16M" },
        payload: { kernel: guestImage("counter"), format: "raw" },
        disks: [{ path: disk }],
      },
      { serial: { mode: "off" }, logLevel: "silent" },
    );
    expect(shape(vmCounters(vm.counters()))).toEqual(shape(doc));
    rmSync(dir, { recursive: true, force: true });
  });

  test("the library example imports startApiServer from the package, which exports it", () => {
    const snippet = codeBlock("api.md", "a ts block calling startApiServer", (b) =>
      b.text.includes("startApiServer("),
    );
    const imports = [...snippet.matchAll(/^import .* from "([^"]+)"/gm)].map((m) => m[1]);
    expect(imports).toEqual(["bunvmm"]);
    expect(typeof bunvmm.startApiServer).toBe("function");
  });
});
