/**
 * Wires a machine from a config: KVM VM, irqchip and PIT, guest RAM, the payload, the devices and the
 * boot vCPUs. The only place that knows all layers (Firecracker's builder.rs).
 */

import type { ByteQueue } from "../../devices/byte-queue.ts";
import { CPU_ENABLED } from "../../devices/cpu-hotplug-controller.ts";
import { EINTR } from "../../ffi/errno-names.ts";
import {
  KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_IRQCHIP,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_PIT2,
  KVM_CAP_SET_TSS_ADDR,
  KVM_CAP_USER_MEMORY,
  KVM_MP_STATE_UNINITIALIZED,
  KVM_PIT_SPEAKER_DUMMY,
} from "../../ffi/kvm-structs.ts";
import { FPU_FCW_RESET, flatProtectedModeSregs, MXCSR_RESET } from "../arch/x86_64/cpu-state.ts";
import { cpuidForVcpu, isAmdLike } from "../arch/x86_64/cpuid.ts";
import { lapicWithLint } from "../arch/x86_64/lapic.ts";
import {
  ACPI_TABLES_START,
  IDENTITY_MAP_ADDRESS,
  RAW_LOAD_ADDRESS,
  ramRanges,
  TSS_ADDRESS,
} from "../arch/x86_64/layout.ts";
import { loadLinux } from "../arch/x86_64/linux-boot.ts";
import { bootMsrs, describeMsr } from "../arch/x86_64/msrs.ts";
import { loadRawImage, rawEntryRegs } from "../arch/x86_64/raw-payload.ts";
import type { VmConfig } from "../config/index.ts";
import { BunvmmError } from "../errors.ts";
import type { CpuidTable } from "../kvm/cpuid-table.ts";
import { KVM_API_VERSION, Kvm } from "../kvm/kvm.ts";
import { KvmError } from "../kvm/kvm-error.ts";
import type { Regs, Sregs, VcpuFd } from "../kvm/vcpu-fd.ts";
import { VmFd } from "../kvm/vm-fd.ts";
import { GuestMemory } from "../memory/guest-memory.ts";
import { CpuManager, type CpuManagerEnv, startVcpuSpares } from "./cpu-manager.ts";
import { DeviceManager } from "./device-manager.ts";
import { resolvePayload } from "./payload.ts";
import { acpiTablesFor } from "./platform.ts";

/** KVM_CREATE_VM can fail with EINTR when a signal lands during its set-up (QEMU retries it too). */
const CREATE_VM_ATTEMPTS = 5;

const REQUIRED_CAPS: ReadonlyArray<readonly [number, string]> = [
  [KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"],
  [KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"],
  [KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"],
  [KVM_CAP_PIT2, "KVM_CAP_PIT2"],
  [KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"],
];

/** A host that lacks what bunvmm needs: says which capability or limit. */
export class HostError extends BunvmmError {
  override readonly name = "HostError";
  constructor(message: string, options?: ErrorOptions) {
    super("host", message, options);
  }
}

/**
 * How to build a machine from a snapshot instead of a payload (src/snapshot/restore.ts): guest RAM comes
 * from the memory file, the vCPUs and the platform from the saved state; nothing is loaded or booted.
 */
export interface MachineRestore {
  /** What the machine's logs call it ("snapshot /path"). */
  readonly source: string;
  /** Guest RAM over the snapshot's memory file (copy-on-write). */
  memory(ranges: ReadonlyArray<{ gpa: number; size: number }>): GuestMemory;
  /** vCPU slots to create, 0 .. created-1 (as the snapshotted VM had, ejected ones included). */
  readonly created: number;
  /** How many vCPUs have saved state (the workers to start). */
  readonly vcpus: number;
  /** The CPUID saved for vCPU `index`, if it was saved. */
  cpuid(index: number): CpuidTable | undefined;
  /** Loads vCPU `index`'s saved state; false when it has none (an ejected slot: set up as a fresh AP). */
  vcpu(vcpu: VcpuFd, index: number): boolean;
  /** After every vCPU exists: the irqchip, the PIT, the clock and the devices' state. */
  platform(vm: VmFd, devices: DeviceManager, cpus: CpuManager): void;
}

/** The pieces of a built machine; `closeMachine` releases them. */
export interface Machine {
  kvm: Kvm;
  vm: VmFd;
  memory: GuestMemory;
  devices: DeviceManager;
  cpus: CpuManager;
  /** What is booted, for logs. */
  payloadSource: string;
  /**
   * Sets up an application processor (boot or hot-added) to wait for INIT/SIPI from the guest.
   * `fresh` is false for a slot reused after an eject.
   */
  configureAp(vcpu: VcpuFd, index: number, fresh: boolean): void;
  /** The CPUID vCPU `index` was given (KVM_SET_CPUID2), for a snapshot. */
  cpuid(index: number): CpuidTable;
  /** The KVM capabilities the machine relies on, by name, with KVM_CHECK_EXTENSION's answers. */
  capabilities: Record<string, number>;
}

function createVm(kvm: Kvm): VmFd {
  for (let attempt = 1; ; attempt++) {
    try {
      return new VmFd(kvm.createVm());
    } catch (e) {
      if (!(e instanceof KvmError && e.errno === EINTR) || attempt === CREATE_VM_ATTEMPTS) throw e;
    }
  }
}

/** Builds everything up to (not including) starting the vCPU workers. */
export function buildMachine(
  config: VmConfig,
  events: Pick<CpuManagerEnv, "onRequest" | "onOutcome" | "onReaped"> & {
    /** A device back-end's loop ended on its own, delivered on the VMM thread. */
    onDeviceCrash(device: string, summary: string): void;
  },
  serial: { tx: ByteQueue; rx: ByteQueue },
  log: (stage: string) => void,
  restore?: MachineRestore,
): Machine {
  const payload = restore
    ? undefined
    : resolvePayload(config.payload.kernel, config.payload.format, config.payload.initramfs);
  // vCPU workers load their modules while this thread builds the VM; the CpuManager owns them after:
  // vCPU 0's on a boot, every saved vCPU's on a restore (all of them run at once).
  const spares = startVcpuSpares(restore ? restore.vcpus : 1);
  const cleanup: Array<() => void> = [() => spares.close()];
  try {
    const kvm = Kvm.open();
    cleanup.push(() => kvm.close());
    const api = kvm.getApiVersion();
    if (api !== KVM_API_VERSION)
      throw new HostError(`KVM API version ${api}; bunvmm needs ${KVM_API_VERSION}`);
    const capabilities: Record<string, number> = {};
    for (const [cap, name] of REQUIRED_CAPS) {
      capabilities[name] = kvm.checkExtension(cap);
      if (capabilities[name] === 0) throw new HostError(`this host's KVM lacks ${name}`);
    }
    const maxVcpus = kvm.checkExtension(KVM_CAP_MAX_VCPUS);
    if (config.cpus.max_vcpus > maxVcpus) {
      throw new HostError(
        `cpus.max_vcpus = ${config.cpus.max_vcpus}, but this host's KVM allows ${maxVcpus}`,
      );
    }
    const runSize = kvm.getVcpuMmapSize();
    const supportedCpuid = kvm.getSupportedCpuid();

    const vm = createVm(kvm);
    cleanup.push(() => vm.close());
    vm.setIdentityMapAddr(IDENTITY_MAP_ADDRESS);
    vm.setTssAddr(TSS_ADDRESS);
    vm.createIrqchip();
    vm.createPit2(KVM_PIT_SPEAKER_DUMMY);
    log("created VM with in-kernel irqchip and PIT");

    const ranges = ramRanges(config.memory.size);
    const memory = restore
      ? restore.memory(ranges)
      : GuestMemory.allocate(ranges, { thp: config.memory.thp });
    cleanup.push(() => memory.close());
    memory.descriptors.forEach((r, slot) => {
      vm.setUserMemoryRegion(slot, r.gpa, r.size, BigInt(r.hostAddr));
    });
    log(`mapped ${config.memory.size >> 20} MiB of guest RAM${restore ? ` from ${restore.source}` : ""}`);

    const devices = new DeviceManager(
      vm,
      memory,
      config.cpus.max_vcpus,
      config,
      serial,
      events.onDeviceCrash,
      restore !== undefined,
    );
    cleanup.push(() => devices.close());
    let boot: { regs: Regs; sregs: (current: Sregs) => Sregs; describe: string } | undefined;
    // Restoring: guest RAM already holds the ACPI tables and the payload the guest booted with.
    if (payload) {
      const acpi = acpiTablesFor(devices.specs, {
        bootVcpus: config.cpus.boot_vcpus,
        maxVcpus: config.cpus.max_vcpus,
      });
      memory.write(ACPI_TABLES_START, acpi.blob);
      log(`ACPI tables at 0x${ACPI_TABLES_START.toString(16)} (${[...acpi.tables.keys()].join(", ")})`);
      if (payload.format === "raw") {
        loadRawImage(memory, payload.image);
        boot = {
          regs: rawEntryRegs(config.cpus.boot_vcpus, config.cpus.max_vcpus, config.memory.size),
          sregs: flatProtectedModeSregs,
          describe: `raw image at 0x${RAW_LOAD_ADDRESS.toString(16)} (${payload.image.length} bytes)`,
        };
      } else {
        const linux = loadLinux(memory, {
          kernelImage: payload.image,
          format: payload.format,
          cmdline: config.payload.cmdline,
          initramfs: payload.initramfs,
          ramSize: config.memory.size,
          rsdpAddress: acpi.rsdpAddress,
        });
        boot = { regs: linux.bootRegs, sregs: linux.bootSregsFrom, describe: linux.entry };
      }
      log(`loaded ${payload.source}: ${boot.describe}`);
    }

    const state = { msrIndices: kvm.getMsrIndexList(), xsave2Size: vm.xsave2Size() };
    capabilities.KVM_CAP_XSAVE2 = state.xsave2Size;
    const cpus = new CpuManager(
      { vm, runSize, memory, devices: devices.specs, state, spares, ...events },
      config.cpus.max_vcpus,
    );
    const cpuidOptions = { maxVcpus: config.cpus.max_vcpus, hide: config.cpus.hide_features };
    const msrs = bootMsrs({ amd: isAmdLike(supportedCpuid) });
    // A restored vCPU keeps the CPUID it was saved with (perhaps another host's); the rest get this host's.
    const cpuid = (index: number) =>
      restore?.cpuid(index) ?? cpuidForVcpu(supportedCpuid, index, cpuidOptions);
    /** What every vCPU gets, boot or hot-added: CPUID (first time only), MSRs, FPU, LAPIC LINT0/LINT1. */
    const configureCommon = (vcpu: VcpuFd, index: number, fresh: boolean) => {
      // KVM refuses to change CPUID once a vCPU has run (Linux >= 5.16); a reused slot keeps its own.
      if (fresh) vcpu.setCpuid2(cpuid(index));
      const accepted = vcpu.setMsrs(msrs);
      if (accepted < msrs.length) {
        throw new HostError(`KVM_SET_MSRS: this host refused ${describeMsr(msrs[accepted]![0])}`);
      }
      vcpu.setFpu(FPU_FCW_RESET, MXCSR_RESET);
      // KVM_SET_LAPIC also makes KVM rebuild its APIC-id routing map now. Without it a vCPU created
      // while the VM runs may be missing from the map until its own first KVM_RUN, and an INIT/SIPI
      // the guest sends it before then is dropped (seen: the 2nd of two CPUs hot-added together never
      // started, 5 runs in 8; 0 in 8 with this call).
      vcpu.setLapic(lapicWithLint(vcpu.getLapic()));
    };
    const configureAp = (vcpu: VcpuFd, index: number, fresh: boolean) => {
      configureCommon(vcpu, index, fresh);
      vcpu.setMpState(KVM_MP_STATE_UNINITIALIZED); // a reused slot forgets it ever ran
    };
    const machine = {
      kvm,
      vm,
      memory,
      devices,
      cpus,
      payloadSource: restore?.source ?? payload?.source ?? "",
      configureAp,
      cpuid,
      capabilities,
    };
    if (restore) {
      for (let i = 0; i < restore.created; i++) {
        cpus.prepare(i, (vcpu, fresh) => {
          if (!restore.vcpu(vcpu, i)) configureAp(vcpu, i, fresh);
        });
      }
      restore.platform(vm, devices, cpus);
      log(`restored ${restore.created} vCPU slot(s) and the platform from ${restore.source}`);
      return machine;
    }
    const entry = boot!;
    cpus.prepare(0, (vcpu, fresh) => {
      configureCommon(vcpu, 0, fresh);
      vcpu.setSregs(entry.sregs(vcpu.getSregs()));
      vcpu.setRegs(entry.regs);
    });
    for (let i = 1; i < config.cpus.boot_vcpus; i++)
      cpus.prepare(i, (vcpu, fresh) => configureAp(vcpu, i, fresh));
    for (let i = 0; i < config.cpus.boot_vcpus; i++) devices.hotplug.setStatus(i, CPU_ENABLED);
    log(`created ${config.cpus.boot_vcpus} vCPU(s) (max ${config.cpus.max_vcpus})`);
    return machine;
  } catch (e) {
    for (const f of cleanup.reverse()) f();
    throw e;
  }
}

/** Releases a machine's host resources once no worker can touch them any more. */
export function closeMachine(m: Machine): void {
  m.cpus.close();
  m.devices.close();
  m.memory.close();
  m.vm.close();
  m.kvm.close();
}
