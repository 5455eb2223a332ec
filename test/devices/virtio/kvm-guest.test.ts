/**
 * The C test guest's polling virtio-blk driver on real KVM: the guest (test/guests/virtio, booted by
 * bunvmm's PVH ELF loader) programs the transport through MMIO exits this test answers, and each
 * QueueNotify runs the block back-end in-line on the image file. Checks the guest's serial report, the
 * image file, and the device's counters. Also checks the built ELF carries the PVH entry note.
 */

import { toArrayBuffer } from "bun:ffi";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Vm } from "bunvmm";
import { ACPI_SLEEP_CONTROL } from "../../../devices/acpi-power.ts";
import type { AccessSize } from "../../../devices/bus.ts";
import {
  BLK_BAD_REQUESTS,
  BLK_FLUSH_OPS,
  BLK_READ_OPS,
  BLK_WRITE_OPS,
  BlockBackend,
} from "../../../devices/virtio/block.ts";
import { VirtioMmioState, VirtioMmioTransport } from "../../../devices/virtio/mmio-transport.ts";
import { SplitQueue } from "../../../devices/virtio/queue.ts";
import { KVM_RUN_LAYOUT } from "../../../ffi/kvm-structs.ts";
import { libc, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../../ffi/libc.ts";
import { VIRTIO_MMIO_SIZE } from "../../../ffi/virtio-layouts.ts";
import { FPU_FCW_RESET, MXCSR_RESET } from "../../../src/arch/x86_64/cpu-state.ts";
import { cpuidForVcpu } from "../../../src/arch/x86_64/cpuid.ts";
import { parseElf64 } from "../../../src/arch/x86_64/elf.ts";
import { lapicWithLint } from "../../../src/arch/x86_64/lapic.ts";
import {
  ACPI_POWER_PORT,
  UNOWNED_MMIO_TEST_ADDRESS,
  VIRTIO_MMIO_BASE,
} from "../../../src/arch/x86_64/layout.ts";
import { loadLinux } from "../../../src/arch/x86_64/linux-boot.ts";
import { bootMsrs } from "../../../src/arch/x86_64/msrs.ts";
import { pvhEntryPoint, XEN_ELFNOTE_OWNER, XEN_ELFNOTE_PHYS32_ENTRY } from "../../../src/arch/x86_64/pvh.ts";
import { cGuestElf } from "../../helpers/c-guest.ts";
import { TestMachine } from "../../helpers/kvm-harness.ts";

const MIB = 1 << 20;
const RAM = 64 * MIB;
const SECTOR = 512;
/** Where the test puts the transport (the guest gets it as VIRTIO_MMIO_BASE). */
const BASE = UNOWNED_MMIO_TEST_ADDRESS;
const SLEEP_PORT = ACPI_POWER_PORT + ACPI_SLEEP_CONTROL;
/** Bound on exits: the guest makes a few hundred; this only stops a runaway. */
const MAX_EXITS = 100_000;
const SERIAL = "c-guest-disk-01";
const SECTOR0_TEXT = "bunvmm sector zero";

let dir: string;
let elfPath: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bunvmm-virtio-kvm-"));
  elfPath = cGuestElf(["blk-driver.c"], { VIRTIO_MMIO_BASE: BASE });
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("C test guest", () => {
  test("builds into an ELF64 whose Xen PHYS32_ENTRY note names its entry (readelf -n)", () => {
    const notes = Bun.spawnSync(["readelf", "-n", elfPath]).stdout.toString();
    expect(notes).toContain("Xen");
    expect(notes).toMatch(/Unknown note type: \(0x00000012\)|PHYS32_ENTRY/);
    const elf = parseElf64(readFileSync(elfPath));
    const note = elf.notes.find((n) => n.name === XEN_ELFNOTE_OWNER && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
    expect(note).toBeDefined();
    expect(pvhEntryPoint(elf)).toBe(Number(elf.entry));
    const code = Bun.spawnSync(["objdump", "-d", elfPath]).stdout.toString();
    expect(code).not.toMatch(/%xmm|%st\b|\bfld|\bfst/); // no SSE or x87 instruction anywhere
  });

  test("drives virtio-blk over MMIO on real KVM: read, write, flush, GET_ID, out of range", () => {
    const image = join(dir, "disk.img");
    const bytes = new Uint8Array(64 * SECTOR);
    bytes.set(new TextEncoder().encode(SECTOR0_TEXT));
    writeFileSync(image, bytes);
    const disk = BlockBackend.open({ path: image, serial: SERIAL });
    const machine = TestMachine.create(RAM);
    const runSize = machine.kvm.getVcpuMmapSize();
    const runAddr = libc.mmap(0, runSize, PROT_READ | PROT_WRITE, MAP_SHARED, machine.vcpu.fd, 0);
    expect(BigInt(runAddr)).not.toBe(MAP_FAILED);
    try {
      const run = new DataView(toArrayBuffer(Number(runAddr), 0, runSize));
      const memory = machine.memory;
      const state = VirtioMmioState.create(disk.info);
      const queue = new SplitQueue(state, 0, memory);
      let notifies = 0;
      // No ioeventfd here: QueueNotify exits, and the front-end forwards it to the back-end in-line.
      const transport = new VirtioMmioTransport(state.buffer, memory, () => {
        notifies++;
        disk.processQueue(queue, memory);
      });

      const boot = loadLinux(memory, {
        kernelImage: readFileSync(elfPath),
        format: "elf",
        cmdline: "",
        ramSize: RAM,
      });
      const { vcpu } = machine;
      vcpu.setCpuid2(cpuidForVcpu(machine.kvm.getSupportedCpuid(), 0, { maxVcpus: 1 }));
      vcpu.setMsrs(bootMsrs());
      vcpu.setLapic(lapicWithLint(vcpu.getLapic()));
      vcpu.setFpu(FPU_FCW_RESET, MXCSR_RESET);
      vcpu.setSregs(boot.bootSregsFrom(vcpu.getSregs()));
      vcpu.setRegs(boot.bootRegs);

      let poweredOff = false;
      let stoppedBy = "";
      for (let i = 0; i < MAX_EXITS && !poweredOff && !stoppedBy; i++) {
        const exit = machine.run();
        if (exit.kind === "io") {
          if (exit.out && exit.port === SLEEP_PORT) poweredOff = true;
        } else if (exit.kind === "mmio" && exit.address >= BASE && exit.address < BASE + VIRTIO_MMIO_SIZE) {
          const offset = exit.address - BASE;
          const size = exit.len as AccessSize;
          if (exit.write) transport.write(offset, size, Number(exit.data & 0xffff_ffffn));
          else
            run.setBigUint64(
              KVM_RUN_LAYOUT.fields["mmio.data"].offset,
              BigInt(transport.read(offset, size)),
              true,
            );
        } else stoppedBy = JSON.stringify(exit);
      }
      const serial = machine.serialText();
      if (process.env.BUNVMM_SHOW_SERIAL) console.log(serial);
      expect(stoppedBy).toBe("");
      expect(poweredOff).toBe(true);
      for (const step of [
        "probe",
        "features",
        "queue",
        "read0",
        "write1",
        "flush",
        "getid",
        "readback",
        "oob",
      ])
        expect(serial).toContain(`${step} ok\n`);
      expect(serial).toContain(`sector0: ${SECTOR0_TEXT}\n`);
      expect(serial).toContain(`serial: ${SERIAL}\n`);
      expect(serial).toContain("capacity 64\n");
      expect(serial).toContain("DONE 0\n");
      expect(notifies).toBe(6);
      expect(state.forwardedNotifies).toBe(6);
      expect(state.badAccesses).toBe(0);
      expect(state.refusedTransitions).toBe(0);
      const file = readFileSync(image);
      expect(new TextDecoder().decode(file.subarray(SECTOR, SECTOR + 32))).toBe(
        "written by the virtio test guest",
      );
      expect(file[2 * SECTOR - 1]).toBe(0x5a);
      expect(disk.counter(BLK_READ_OPS)).toBe(2);
      expect(disk.counter(BLK_WRITE_OPS)).toBe(1);
      expect(disk.counter(BLK_FLUSH_OPS)).toBe(1);
      expect(disk.counter(BLK_BAD_REQUESTS)).toBe(1);
    } finally {
      libc.munmap(runAddr, runSize);
      machine.close();
      disk.close();
    }
  });

  test("bunvmm boots it as format = elf; built against VIRTIO_MMIO_BASE, it finds the first disk there", async () => {
    // The first transport's place is fixed (layout.ts), so a guest can be compiled against it.
    const image = join(dir, "first.img");
    const bytes = new Uint8Array(64 * SECTOR);
    bytes.set(new TextEncoder().encode(SECTOR0_TEXT));
    writeFileSync(image, bytes);
    const config = {
      memory: { size: "16M" },
      payload: { kernel: cGuestElf(["blk-driver.c"], { VIRTIO_MMIO_BASE }), format: "elf" },
      serial: { mode: "off" },
      disks: [{ path: image, serial: SERIAL }],
    };
    await using vm = await Vm.create(config, { serial: { kind: "none" }, logger: undefined });
    await vm.boot();
    const exit = await vm.exited;
    expect(exit.reason).toBe("poweroff");
    expect(vm.serial.text).toContain(`sector0: ${SECTOR0_TEXT}\n`);
    expect(vm.serial.text).toContain(`serial: ${SERIAL}\n`);
    expect(vm.serial.text).toEndWith("DONE 0\n");
  });
});
