// Builds the bench's inputs into a scratch directory: the guests (GNU as, ld,
// objcopy) and the C floor (gcc).
import { join } from "node:path";
import { sh } from "../tools.ts";

const GUEST_DIR = join(import.meta.dir, "guests");

/** raw: flat binary for bunvmm and the floor; pvh: ELF with a PVH note for QEMU. */
export type Flavour = "raw" | "pvh";
export type GuestName = "pio" | "mmio" | "idle";

/** Assembles guests/NAME.S with the loop count N; returns the image path. */
export function buildGuest(outDir: string, name: GuestName, flavour: Flavour, n = 0): string {
  const stem = join(outDir, `${name}-${flavour}-${n}`);
  const defs = ["--defsym", `N=${n}`, ...(flavour === "pvh" ? ["--defsym", "QEMU=1"] : [])];
  // raw images load at 0x10000 (bunvmm's raw payload); PVH ELFs at 1 MiB.
  const base = flavour === "raw" ? "0x10000" : "0x100000";
  sh(["as", "--32", "-I", GUEST_DIR, ...defs, "-o", `${stem}.o`, join(GUEST_DIR, `${name}.S`)]);
  sh([
    "ld",
    "-m",
    "elf_i386",
    "-T",
    join(GUEST_DIR, "guest.ld"),
    `-Ttext=${base}`,
    "-o",
    `${stem}.elf`,
    `${stem}.o`,
  ]);
  if (flavour === "pvh") return `${stem}.elf`;
  sh(["objcopy", "-O", "binary", `${stem}.elf`, `${stem}.bin`]);
  return `${stem}.bin`;
}

/** Compiles floor.c; returns the executable's path. */
export function buildFloor(outDir: string): string {
  const exe = join(outDir, "floor");
  sh(["gcc", "-O2", "-Wall", "-o", exe, join(import.meta.dir, "floor.c")]);
  return exe;
}
