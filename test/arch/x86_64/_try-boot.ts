import { readFileSync } from "node:fs";
import { TestMachine } from "./_kvm-harness.ts";
import { loadLinux } from "../../../src/arch/x86_64/linux-boot.ts";
import { cpuidForVcpu } from "../../../src/arch/x86_64/cpuid.ts";
import { bootMsrs } from "../../../src/arch/x86_64/msrs.ts";
import { lapicWithLint } from "../../../src/arch/x86_64/lapic.ts";
import { FPU_FCW_RESET, MXCSR_RESET } from "../../../src/arch/x86_64/cpu-state.ts";
const format = (process.argv[2] ?? "bzimage") as "bzimage" | "elf";
const secs = Number(process.argv[3] ?? 10);
const file = format === "bzimage" ? "/tmp/kern/vmlinuz" : "/tmp/kern/vmlinux";
const m = TestMachine.create(256 << 20);
const t0 = performance.now();
const boot = loadLinux(m.memory, { kernelImage: readFileSync(file), format, cmdline: "earlyprintk=ttyS0 console=ttyS0 noxsave clearcpuid=cx16", ramSize: 256 << 20 });
console.log(boot.entry, (performance.now() - t0).toFixed(0), "ms");
m.vcpu.setCpuid2(cpuidForVcpu(m.kvm.getSupportedCpuid(), 0, { maxVcpus: 2, hide: ["cx16", "xsave"] }));
console.log("msrs", m.vcpu.setMsrs(bootMsrs()), bootMsrs().length);
m.vcpu.setLapic(lapicWithLint(m.vcpu.getLapic()));
m.vcpu.setFpu(FPU_FCW_RESET, MXCSR_RESET);
m.vcpu.setSregs(boot.bootSregsFrom(m.vcpu.getSregs()));
m.vcpu.setRegs(boot.bootRegs);
const end = performance.now() + secs * 1000;
let exits = 0; const other: Record<string, number> = {};
while (performance.now() < end) {
  const e = m.run(); exits++;
  if (e.kind === "other") { other[e.name] = (other[e.name] ?? 0) + 1; if (e.name !== "KVM_EXIT_INTR") { console.log("exit", e, m.vcpu.getRegs().rip.toString(16)); break; } }
  if (e.kind === "errno" && e.errno !== 4) { console.log("errno", e); break; }
  if (m.serialText().includes("Kernel command line")) break;
}
console.log(((performance.now() - t0) / 1000).toFixed(1), "s", exits, "exits", other);
console.log(m.serialText());
