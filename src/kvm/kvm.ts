/**
 * The /dev/kvm handle: system ioctls only. One method per ioctl, no policy
 * (https://docs.kernel.org/virt/kvm/api.html, section 4).
 */

import { E2BIG } from "../../ffi/errno-names.ts";
import {
  KVM_CHECK_EXTENSION,
  KVM_CREATE_VM,
  KVM_GET_API_VERSION,
  KVM_GET_MSR_INDEX_LIST,
  KVM_GET_SUPPORTED_CPUID,
  KVM_GET_VCPU_MMAP_SIZE,
} from "../../ffi/ioctl-numbers.ts";
import { KVM_CPUID_ENTRY2_LAYOUT, KVM_CPUID2_LAYOUT, KVM_MSR_LIST_LAYOUT } from "../../ffi/kvm-structs.ts";
import { addressOf, cString, errno, libc, O_CLOEXEC, O_RDWR } from "../../ffi/libc.ts";
import { CpuidTable } from "./cpuid-table.ts";
import { check, KvmError } from "./kvm-error.ts";

/** The API version every KVM since 2.6.22 reports (KVM_GET_API_VERSION). */
export const KVM_API_VERSION = 12;
/** How many CPUID entries we make room for in KVM_GET_SUPPORTED_CPUID (E2BIG below that). */
const MAX_CPUID_ENTRIES = 256;

/** An open /dev/kvm; closing it does not affect VMs already created from it. */
export class Kvm {
  private constructor(readonly fd: number) {}

  /** Opens the KVM device node. @throws {KvmError} "open /dev/kvm: permission denied (EACCES): …" */
  static open(path = "/dev/kvm"): Kvm {
    const fd = libc.open(addressOf(cString(path)), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) throw new KvmError(`open ${path}`, errno());
    return new Kvm(fd);
  }

  /** KVM_GET_API_VERSION: always 12 on a usable kernel. */
  getApiVersion(): number {
    return check("KVM_GET_API_VERSION", libc.ioctl(this.fd, KVM_GET_API_VERSION, 0));
  }

  /** KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific value. */
  checkExtension(cap: number): number {
    return check("KVM_CHECK_EXTENSION", libc.ioctl(this.fd, KVM_CHECK_EXTENSION, cap));
  }

  /** KVM_GET_VCPU_MMAP_SIZE: bytes to mmap from a vCPU fd for its kvm_run page(s). */
  getVcpuMmapSize(): number {
    return check("KVM_GET_VCPU_MMAP_SIZE", libc.ioctl(this.fd, KVM_GET_VCPU_MMAP_SIZE, 0));
  }

  /** KVM_CREATE_VM (machine type 0): returns the new VM's fd. */
  createVm(): number {
    return check("KVM_CREATE_VM", libc.ioctl(this.fd, KVM_CREATE_VM, 0));
  }

  /** KVM_GET_SUPPORTED_CPUID: the CPUID leaves this host's KVM can expose to a guest. */
  getSupportedCpuid(): CpuidTable {
    const buf = new Uint8Array(KVM_CPUID2_LAYOUT.size + MAX_CPUID_ENTRIES * KVM_CPUID_ENTRY2_LAYOUT.size);
    new DataView(buf.buffer).setUint32(KVM_CPUID2_LAYOUT.fields.nent.offset, MAX_CPUID_ENTRIES, true);
    check("KVM_GET_SUPPORTED_CPUID", libc.ioctl(this.fd, KVM_GET_SUPPORTED_CPUID, addressOf(buf)));
    return CpuidTable.fromKvmCpuid2(buf);
  }

  /**
   * KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores for a guest (what a snapshot reads with
   * KVM_GET_MSRS). Asks once with no room to learn the count (E2BIG), then fetches the list.
   */
  getMsrIndexList(): number[] {
    const n = KVM_MSR_LIST_LAYOUT.fields.nmsrs.offset;
    const probe = new Uint32Array(KVM_MSR_LIST_LAYOUT.size / 4);
    if (libc.ioctl(this.fd, KVM_GET_MSR_INDEX_LIST, addressOf(probe)) === -1) {
      const e = errno();
      if (e !== E2BIG) throw new KvmError("KVM_GET_MSR_INDEX_LIST", e);
    }
    const count = probe[n / 4]!;
    const list = new Uint32Array(KVM_MSR_LIST_LAYOUT.size / 4 + count);
    list[n / 4] = count;
    check("KVM_GET_MSR_INDEX_LIST", libc.ioctl(this.fd, KVM_GET_MSR_INDEX_LIST, addressOf(list)));
    const got = list[n / 4]!;
    const first = KVM_MSR_LIST_LAYOUT.fields.indices.offset / 4;
    return [...list.subarray(first, first + got)];
  }

  close(): void {
    libc.close(this.fd);
  }
}
