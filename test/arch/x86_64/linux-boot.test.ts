/**
 * loadLinux(): the Debian kernel through both protocols into guest RAM (what lands where), its errors,
 * and on real KVM a crafted kernel of each kind that reads its boot structures from the entry state.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED } from "../../../ffi/kvm-structs.ts";
import {
  BOOT_PARAMS_LAYOUT,
  SETUP_HEADER_LAYOUT,
  SETUP_HEADER_OFFSET,
} from "../../../src/arch/x86_64/boot-params.ts";
import { parseBzImage } from "../../../src/arch/x86_64/bzimage.ts";
import { FPU_FCW_RESET, MXCSR_RESET } from "../../../src/arch/x86_64/cpu-state.ts";
import { cpuidForVcpu } from "../../../src/arch/x86_64/cpuid.ts";
import { e820Table } from "../../../src/arch/x86_64/e820.ts";
import { BOOT_GDT } from "../../../src/arch/x86_64/gdt.ts";
import { lapicWithLint } from "../../../src/arch/x86_64/lapic.ts";
import {
  BOOT_GDT_ADDRESS,
  BOOT_PML4_ADDRESS,
  CMDLINE_ADDRESS,
  PVH_START_INFO_ADDRESS,
  ramRanges,
  ZERO_PAGE_ADDRESS,
} from "../../../src/arch/x86_64/layout.ts";
import { type LinuxBoot, loadLinux } from "../../../src/arch/x86_64/linux-boot.ts";
import { EFER_LMA } from "../../../src/arch/x86_64/long-mode.ts";
import { bootMsrs } from "../../../src/arch/x86_64/msrs.ts";
import { HVM_START_INFO_LAYOUT } from "../../../src/arch/x86_64/pvh.ts";
import { getField, viewOf } from "../../../src/arch/x86_64/struct-layout.ts";
import { VcpuFd } from "../../../src/kvm/vcpu-fd.ts";
import { GuestMemory } from "../../../src/memory/guest-memory.ts";
import { MIB } from "../../../src/numbers.ts";
import { reason } from "../../helpers/boot-error-reason.ts";
import { craftBzImage, craftElf } from "../../helpers/crafted-kernels.ts";
import { debianKernel } from "../../helpers/debian-kernel.ts";
import { type Exit, TestMachine } from "../../helpers/kvm-harness.ts";

const HDR = SETUP_HEADER_LAYOUT.fields;
const BP = BOOT_PARAMS_LAYOUT.fields;
const CMDLINE = "earlyprintk=ttyS0 console=ttyS0 noxsave clearcpuid=cx16";

function cString(mem: GuestMemory, at: number, max = 4096): string {
  const bytes = mem.read(at, max);
  return new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
}

let bzImage: Uint8Array;
let vmlinux: Uint8Array;
let memory: GuestMemory;
const RAM = 256 * MIB;
const initramfs = new Uint8Array(3 * MIB + 123).map((_, i) => i * 7);

beforeAll(() => {
  const k = debianKernel();
  bzImage = readFileSync(k.bzImagePath);
  vmlinux = readFileSync(k.vmlinuxPath);
  memory = GuestMemory.allocate(ramRanges(RAM));
});
afterAll(() => memory.close());

describe("loadLinux() with the Debian bzImage", () => {
  let boot: LinuxBoot;
  beforeAll(() => {
    boot = loadLinux(memory, {
      kernelImage: bzImage,
      format: "bzimage",
      cmdline: CMDLINE,
      initramfs,
      ramSize: RAM,
      rsdpAddress: 0xe0000,
    });
  });

  test("describes the boot for the log", () => {
    expect(boot.protocol).toBe("linux64");
    expect(boot.entry).toMatch(
      /^bzImage \(boot protocol 2\.\d\d, lz4\) at 0x1000000, 64-bit entry 0x1000200, zero page 0x7000, initramfs 0xfcff000 \(3145851 bytes\)$/,
    );
  });

  test("kernel at 16 MiB, initramfs page-aligned at the top of RAM, command line at 0x20000", () => {
    const bz = parseBzImage(bzImage);
    expect(boot.kernel).toEqual({ start: 0x100_0000, end: 0x100_0000 + bz.initSize });
    expect(memory.read(0x100_0000, 64)).toEqual(bz.kernel.subarray(0, 64));
    expect(boot.initramfs).toEqual({ address: 0xfcf_f000, size: initramfs.length });
    expect(memory.read(0xfcf_f000, initramfs.length)).toEqual(initramfs);
    expect(boot.cmdline).toEqual({ address: CMDLINE_ADDRESS, size: CMDLINE.length + 1 });
    expect(cString(memory, CMDLINE_ADDRESS)).toBe(CMDLINE);
  });

  test("the zero page points at all of them", () => {
    const v = viewOf(memory.slice(ZERO_PAGE_ADDRESS, 4096));
    const h = SETUP_HEADER_OFFSET;
    expect(getField(v, h, HDR.header)).toBe(0x5372_6448);
    expect(getField(v, h, HDR.type_of_loader)).toBe(0xff);
    expect(getField(v, h, HDR.cmd_line_ptr)).toBe(CMDLINE_ADDRESS);
    expect(getField(v, h, HDR.ramdisk_image)).toBe(0xfcf_f000);
    expect(getField(v, h, HDR.ramdisk_size)).toBe(initramfs.length);
    expect(getField(v, 0, BP.acpi_rsdp_addr)).toBe(0xe0000);
    expect(getField(v, 0, BP.e820_entries)).toBe(3);
    expect(boot.e820).toEqual(e820Table(RAM));
  });

  test("GDT and page tables are in place; the entry state is long mode at +0x200 with RSI = zero page", () => {
    expect(memory.readU64(BOOT_GDT_ADDRESS + 0x10)).toBe(BOOT_GDT[2]!);
    expect(memory.readU64(BOOT_PML4_ADDRESS)).toBe(0xa003n);
    expect([boot.bootRegs.rip, boot.bootRegs.rsi]).toEqual([0x100_0200n, BigInt(ZERO_PAGE_ADDRESS)]);
  });
});

describe("loadLinux() with the Debian vmlinux through PVH", () => {
  let boot: LinuxBoot;
  beforeAll(() => {
    memory.slice(0, RAM).fill(0);
    boot = loadLinux(memory, {
      kernelImage: vmlinux,
      format: "elf",
      cmdline: CMDLINE,
      initramfs,
      ramSize: RAM,
      rsdpAddress: 0xe0000,
    });
  });

  test("loads the segments from 16 MiB, puts the start info at 0x6000, enters at the note's address", () => {
    expect(boot.protocol).toBe("pvh");
    expect(boot.kernel.start).toBe(0x100_0000);
    expect(boot.entry).toMatch(
      /^vmlinux via PVH: kernel \[0x1000000, 0x[0-9a-f]+\), 32-bit entry 0x1[0-9a-f]{6}, start info 0x6000, initramfs 0xfcff000/,
    );
    expect(boot.bootRegs.rbx).toBe(BigInt(PVH_START_INFO_ADDRESS));
    expect(Number(boot.bootRegs.rip)).toBeGreaterThan(boot.kernel.start);
  });

  test("the start info names the command line, initramfs, RSDP and memory map", () => {
    const I = HVM_START_INFO_LAYOUT.fields;
    const v = viewOf(memory.slice(PVH_START_INFO_ADDRESS, HVM_START_INFO_LAYOUT.size));
    expect(getField(v, 0, I.magic)).toBe(0x336e_c578);
    expect(cString(memory, getField(v, 0, I.cmdline_paddr))).toBe(CMDLINE);
    expect(getField(v, 0, I.rsdp_paddr)).toBe(0xe0000);
    expect(getField(v, 0, I.memmap_entries)).toBe(3);
    const modlist = getField(v, 0, I.modlist_paddr);
    expect([memory.readU64(modlist), memory.readU64(modlist + 8)]).toEqual([
      0xfcf_f000n,
      BigInt(initramfs.length),
    ]);
  });
});

describe("loadLinux() errors", () => {
  test("a command line longer than the bzImage's cmdline_size", () => {
    expect(
      reason(() =>
        loadLinux(memory, {
          kernelImage: bzImage,
          format: "bzimage",
          cmdline: "x".repeat(2048),
          ramSize: RAM,
        }),
      ),
    ).toBe("payload.cmdline is 2048 bytes; this kernel accepts at most 2047 (cmdline_size)");
  });

  test("an initramfs that does not fit above the kernel", () => {
    const big = new Uint8Array(200 * MIB);
    expect(
      reason(() =>
        loadLinux(memory, {
          kernelImage: bzImage,
          format: "bzimage",
          cmdline: "",
          initramfs: big,
          ramSize: RAM,
        }),
      ),
    ).toMatch(
      /^the initramfs \(209715200 bytes, 200\.0 MiB\) does not fit between the kernel's end at 0x[0-9a-f]+ and the top of RAM at 0x10000000: give the VM at least \d+ MiB$/,
    );
  });

  test("a bzImage given as an ELF and the other way round", () => {
    expect(
      reason(() => loadLinux(memory, { kernelImage: bzImage, format: "elf", cmdline: "", ramSize: RAM })),
    ).toBe("not an ELF file: no \\x7fELF magic at 0");
    expect(
      reason(() => loadLinux(memory, { kernelImage: vmlinux, format: "bzimage", cmdline: "", ramSize: RAM })),
    ).toBe("not a bzImage: no HdrS magic at 0x202");
  });

  test("a PVH entry outside the loaded kernel", () => {
    const elf = craftElf({ pvhEntry: 0x200_0000 });
    expect(
      reason(() => loadLinux(memory, { kernelImage: elf, format: "elf", cmdline: "", ramSize: RAM })),
    ).toBe("the PVH entry point 0x2000000 lies outside the loaded kernel [0x1000000, 0x1000100)");
  });
});

/** Port a test guest writes to when it is done (with the in-kernel LAPIC, `hlt` never exits to us). */
const DONE_PORT = 0x81;

/** Boots `kernel` on a one-vCPU machine set up the way the builder does, until it writes DONE_PORT. */
function runToHalt(kernel: Uint8Array, format: "bzimage" | "elf"): { exits: Exit[]; machine: TestMachine } {
  const machine = TestMachine.create(64 * MIB);
  const boot = loadLinux(machine.memory, { kernelImage: kernel, format, cmdline: "test", ramSize: 64 * MIB });
  const { vcpu } = machine;
  vcpu.setCpuid2(cpuidForVcpu(machine.kvm.getSupportedCpuid(), 0, { maxVcpus: 1 }));
  expect(vcpu.setMsrs(bootMsrs())).toBe(bootMsrs().length);
  vcpu.setLapic(lapicWithLint(vcpu.getLapic()));
  vcpu.setFpu(FPU_FCW_RESET, MXCSR_RESET);
  vcpu.setSregs(boot.bootSregsFrom(vcpu.getSregs()));
  vcpu.setRegs(boot.bootRegs);
  const exits: Exit[] = [];
  for (let i = 0; i < 10; i++) {
    const exit = machine.run();
    exits.push(exit);
    if ((exit.kind !== "io" && exit.kind !== "mmio") || (exit.kind === "io" && exit.port === DONE_PORT))
      break;
  }
  return { exits, machine };
}

describe("entry state on real KVM", () => {
  test("bzImage: long mode at load + 0x200, RSI = zero page, identity map up to 4 GiB", () => {
    // prettier-ignore
    const code = [
      0x8b,
      0x86,
      0x02,
      0x02,
      0x00,
      0x00, // mov eax, [rsi + 0x202]    ; "HdrS" in the zero page's header copy
      0x66,
      0xba,
      0x80,
      0x00, // mov dx, 0x80
      0xef, // out dx, eax
      0x8b,
      0x86,
      0x28,
      0x02,
      0x00,
      0x00, // mov eax, [rsi + 0x228]    ; cmd_line_ptr
      0xef, // out dx, eax
      0xbf,
      0x00,
      0x00,
      0x00,
      0xd0, // mov edi, 0xd0000000      ; unowned MMIO, through PD 3
      0x89,
      0x07, // mov [rdi], eax
      0xb2,
      0x81, // mov dl, 0x81
      0xee, // out dx, al                ; done (load + 0x21b)
    ];
    const kernel = new Uint8Array(0x1000);
    kernel.set(code, 0x200);
    const { exits, machine } = runToHalt(craftBzImage({ kernel }), "bzimage");
    try {
      expect(exits).toEqual([
        { kind: "io", port: 0x80, out: true, size: 4, value: 0x5372_6448 },
        { kind: "io", port: 0x80, out: true, size: 4, value: CMDLINE_ADDRESS },
        { kind: "mmio", address: 0xd000_0000, write: true, len: 4, data: BigInt(CMDLINE_ADDRESS) },
        { kind: "io", port: DONE_PORT, out: true, size: 1, value: 0 },
      ]);
      expect(machine.vcpu.getRegs().rip).toBe(0x100_021cn); // just past the last out
      const s = machine.vcpu.getSregs();
      expect(s.efer & EFER_LMA).toBe(EFER_LMA);
      expect([s.cs.selector, s.cs.l, s.ds.selector]).toEqual([0x10, 1, 0x18]);
    } finally {
      machine.close();
    }
  });

  test("KVM starts vCPU 0 RUNNABLE and the others UNINITIALIZED (waiting for INIT/SIPI): APs need no registers", () => {
    const machine = TestMachine.create(16 * MIB);
    try {
      const ap = new VcpuFd(machine.vm.createVcpu(1));
      expect([machine.vcpu.getMpState(), ap.getMpState()]).toEqual([
        KVM_MP_STATE_RUNNABLE,
        KVM_MP_STATE_UNINITIALIZED,
      ]);
      ap.close();
    } finally {
      machine.close();
    }
  });

  test("PVH: 32-bit protected mode at the note's entry, EBX = hvm_start_info", () => {
    // prettier-ignore
    const code = new Uint8Array([
      0x8b,
      0x03, // mov eax, [ebx]            ; magic
      0x66,
      0xba,
      0x80,
      0x00, // mov dx, 0x80
      0xef, // out dx, eax
      0x8b,
      0x43,
      0x18, // mov eax, [ebx + 0x18]     ; cmdline_paddr
      0xef, // out dx, eax
      0xb2,
      0x81, // mov dl, 0x81
      0xee, // out dx, al                ; done (entry + 13)
    ]);
    const { exits, machine } = runToHalt(craftElf({ code, pvhEntry: 0x100_0000 }), "elf");
    try {
      expect(exits).toEqual([
        { kind: "io", port: 0x80, out: true, size: 4, value: 0x336e_c578 },
        { kind: "io", port: 0x80, out: true, size: 4, value: CMDLINE_ADDRESS },
        { kind: "io", port: DONE_PORT, out: true, size: 1, value: 0 }, // AL = low byte of 0x20000
      ]);
      expect(machine.vcpu.getRegs().rip).toBe(0x100_000en); // just past the last out
      const s = machine.vcpu.getSregs();
      expect([s.cr0 & 0x8000_0001n, s.efer, s.cs.db, s.cs.l]).toEqual([1n, 0n, 1, 0]);
    } finally {
      machine.close();
    }
  });
});
