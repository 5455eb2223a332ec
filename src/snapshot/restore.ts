/**
 * Builds a machine from a checked snapshot (src/snapshot/reader.ts), through the builder's restore hooks
 * (src/vmm/builder.ts MachineRestore), in this order:
 *
 *   guest RAM     the memory file mapped MAP_PRIVATE (copy-on-write: the file is never written, one
 *                 snapshot can start many VMs, pages load when first touched), checked against its
 *                 checksum through the mapping.
 *   vCPUs         created in index order; each saved one gets its state (src/snapshot/vcpu-state.ts has
 *                 the order within a vCPU), then KVMCLOCK_CTRL; an ejected slot is set up as a fresh AP.
 *   irqchip, PIT  after the vCPUs exist: the IOAPIC and PICs route to LAPICs that must be there.
 *   clock         KVM_SET_CLOCK with the saved kvmclock value and no flags.
 *   devices       each device's saved state, by name, through its DeviceType.restore.
 *
 * What the guest sees of time: its clocks continue from the instant of the snapshot, with no jump. The
 * TSC MSR is restored to its saved value and kvmclock is set to the saved nanoseconds with the
 * KVM_CLOCK_REALTIME flag cleared (KVM would otherwise advance it by the wall time since the snapshot),
 * so monotonic time inside the guest resumes where it stopped, however long the snapshot sat on disk;
 * its wall clock is behind by that long until NTP (or the guest's own RTC read) corrects it. This is
 * what Firecracker and cloud-hypervisor do. KVMCLOCK_CTRL tells a kvmclock guest it was stopped by the
 * host, so its soft-lockup watchdog does not report the gap (EINVAL from a guest without kvmclock is
 * expected and ignored).
 *
 * Threads: VMM thread, before any worker starts.
 */
import { closeSync, openSync } from "node:fs";
import type { ConsolaInstance } from "consola/core";
import { deviceTypeOf } from "../../devices/registry.ts";
import { EINVAL } from "../../ffi/errno-names.ts";
import { KVM_CLOCK_DATA_LAYOUT } from "../../ffi/kvm-structs.ts";
import { describeMsr } from "../arch/x86_64/msrs.ts";
import { CpuidTable } from "../kvm/cpuid-table.ts";
import { KvmError } from "../kvm/kvm-error.ts";
import { GuestMemory } from "../memory/guest-memory.ts";
import type { MachineRestore } from "../vmm/builder.ts";
import { MEMORY_FILE } from "./format.ts";
import { memoryChecksum, regionFileOffsets } from "./memory-file.ts";
import type { SnapshotImage } from "./reader.ts";
import { SnapshotError } from "./snapshot-error.ts";
import { writeVcpuState } from "./vcpu-state.ts";

const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

/** The restore hooks for `image`. */
export function machineRestore(image: SnapshotImage, log: ConsolaInstance): MachineRestore {
  const { dir, manifest, state } = image;
  const memoryEntry = manifest.files[MEMORY_FILE]!;
  return {
    source: `snapshot ${dir}`,
    created: state.created_vcpus,
    vcpus: image.vcpus.size,
    memory(ranges) {
      const total = ranges.reduce((n, r) => n + r.size, 0);
      if (total !== memoryEntry.bytes) {
        throw new SnapshotError(
          `snapshot ${dir}: ${MEMORY_FILE} holds ${memoryEntry.bytes} bytes of RAM; the config asks for ${total}`,
        );
      }
      const fd = openSync(`${dir}/${MEMORY_FILE}`, "r");
      let memory: GuestMemory;
      try {
        memory = GuestMemory.mapFile(ranges, fd, regionFileOffsets(ranges));
      } finally {
        closeSync(fd); // the mapping keeps the file
      }
      const found = memoryChecksum(memory, memoryEntry.extents ?? []);
      if (found !== memoryEntry.checksum) {
        memory.close();
        throw new SnapshotError(
          `snapshot ${dir}: ${MEMORY_FILE} checksum mismatch (manifest ${memoryEntry.checksum}, file ${found}): the file was changed or damaged`,
        );
      }
      return memory;
    },
    cpuid(index) {
      const entries = image.vcpus.has(index) ? state.cpuid[String(index)] : undefined;
      return entries && new CpuidTable(entries);
    },
    vcpu(vcpu, index) {
      const saved = image.vcpus.get(index);
      if (!saved) return false;
      const cpuid = this.cpuid(index);
      if (!cpuid) throw new SnapshotError(`snapshot ${dir}: no CPUID saved for vCPU ${index}`);
      const refused = writeVcpuState(vcpu, cpuid, saved);
      if (refused.length > 0)
        log.warn(`vCPU ${index}: KVM refused MSR(s) ${refused.map(describeMsr).join(", ")}`);
      try {
        vcpu.kvmclockCtrl();
      } catch (e) {
        if (!(e instanceof KvmError && e.errno === EINVAL)) throw e;
      }
      return true;
    },
    platform(vm, devices) {
      const { vm: chips } = state;
      vm.setIrqchip(fromB64(chips.pic_master));
      vm.setIrqchip(fromB64(chips.pic_slave));
      vm.setIrqchip(fromB64(chips.ioapic));
      vm.setPit2(fromB64(chips.pit2));
      const clock = fromB64(chips.clock);
      new DataView(clock.buffer).setUint32(KVM_CLOCK_DATA_LAYOUT.fields.flags.offset, 0, true);
      vm.setClock(clock);
      for (const spec of devices.specs) {
        const saved = state.devices.find((d) => d.name === spec.name && d.kind === spec.kind);
        if (!saved) throw new SnapshotError(`snapshot ${dir}: no saved state for device ${spec.name}`);
        deviceTypeOf(spec.kind).restore(spec, { version: saved.version, bytes: fromB64(saved.bytes) });
      }
    },
  };
}
