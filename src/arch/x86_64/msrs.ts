/**
 * Model-specific registers every vCPU gets before it first runs (Intel SDM Vol. 4, "Model-Specific
 * Registers"; names as in Linux's msr-index.h). The set is the one Firecracker and cloud-hypervisor
 * write: the SYSENTER/SYSCALL MSRs, KERNEL_GS_BASE and the TSC zeroed, fast strings on, and MTRRs
 * enabled with write-back as the default type (without it a guest that reads MTRRs treats all of RAM
 * as uncached).
 */
import { hex } from "../../numbers.ts";

export const MSR_IA32_TSC = 0x0000_0010;
export const MSR_IA32_SYSENTER_CS = 0x0000_0174;
export const MSR_IA32_SYSENTER_ESP = 0x0000_0175;
export const MSR_IA32_SYSENTER_EIP = 0x0000_0176;
export const MSR_IA32_MISC_ENABLE = 0x0000_01a0;
export const MSR_MTRRdefType = 0x0000_02ff;
export const MSR_STAR = 0xc000_0081;
export const MSR_LSTAR = 0xc000_0082;
export const MSR_CSTAR = 0xc000_0083;
export const MSR_SYSCALL_MASK = 0xc000_0084;
export const MSR_KERNEL_GS_BASE = 0xc000_0102;
/** AMD's hardware configuration register. */
export const MSR_K7_HWCR = 0xc001_0015;

/** IA32_MISC_ENABLE bit 0: fast-string operations (REP MOVS/STOS) enabled. */
export const MSR_IA32_MISC_ENABLE_FAST_STRING = 1n << 0n;
/** IA32_MTRR_DEF_TYPE bit 11 (E): MTRRs enabled; bits 7:0 the default memory type. */
export const MTRR_DEF_TYPE_ENABLE = 1n << 11n;
export const MTRR_TYPE_WRBACK = 6n;
/**
 * HWCR bit 24, TscFreqSel: the TSC counts at the P0 frequency. Firmware sets it on AMD; Linux warns
 * "[Firmware Bug]: TSC doesn't count with P0 frequency!" when it is clear (arch/x86/kernel/cpu/amd.c).
 */
export const HWCR_TSC_FREQ_SEL = 1n << 24n;

/** Names for messages ("KVM refused MSR_MTRRdefType (0x2ff)"). */
export const MSR_NAMES: Readonly<Record<number, string>> = {
  [MSR_IA32_TSC]: "MSR_IA32_TSC",
  [MSR_IA32_SYSENTER_CS]: "MSR_IA32_SYSENTER_CS",
  [MSR_IA32_SYSENTER_ESP]: "MSR_IA32_SYSENTER_ESP",
  [MSR_IA32_SYSENTER_EIP]: "MSR_IA32_SYSENTER_EIP",
  [MSR_IA32_MISC_ENABLE]: "MSR_IA32_MISC_ENABLE",
  [MSR_MTRRdefType]: "MSR_MTRRdefType",
  [MSR_STAR]: "MSR_STAR",
  [MSR_LSTAR]: "MSR_LSTAR",
  [MSR_CSTAR]: "MSR_CSTAR",
  [MSR_SYSCALL_MASK]: "MSR_SYSCALL_MASK",
  [MSR_KERNEL_GS_BASE]: "MSR_KERNEL_GS_BASE",
  [MSR_K7_HWCR]: "MSR_K7_HWCR",
};

/** "MSR_STAR (0xc0000081)", or just the number for an MSR not named here. */
export function describeMsr(index: number): string {
  const name = MSR_NAMES[index];
  return name ? `${name} (${hex(index)})` : hex(index);
}

/** The boot MSRs as KVM_SET_MSRS entries: [index, value], in the order they are written. */
export function bootMsrs(options: { amd?: boolean } = {}): Array<readonly [index: number, value: bigint]> {
  const amd: Array<readonly [number, bigint]> = options.amd ? [[MSR_K7_HWCR, HWCR_TSC_FREQ_SEL]] : [];
  return [
    ...amd,
    [MSR_IA32_SYSENTER_CS, 0n],
    [MSR_IA32_SYSENTER_ESP, 0n],
    [MSR_IA32_SYSENTER_EIP, 0n],
    [MSR_STAR, 0n],
    [MSR_CSTAR, 0n],
    [MSR_KERNEL_GS_BASE, 0n],
    [MSR_SYSCALL_MASK, 0n],
    [MSR_LSTAR, 0n],
    [MSR_IA32_TSC, 0n],
    [MSR_IA32_MISC_ENABLE, MSR_IA32_MISC_ENABLE_FAST_STRING],
    [MSR_MTRRdefType, MTRR_DEF_TYPE_ENABLE | MTRR_TYPE_WRBACK],
  ];
}
