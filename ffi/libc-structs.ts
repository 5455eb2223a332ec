/**
 * glibc struct layouts we pass to libc (x86_64), checked against the C headers by
 * test/ffi/kvm-structs.test.ts like the KVM ones.
 */
import type { CLayout } from "./layout.ts";

/** struct sigaction as glibc declares it (not the kernel's): handler, 1024-bit mask, flags, restorer. */
export const SIGACTION_LAYOUT: CLayout<"sa_handler" | "sa_mask" | "sa_flags" | "sa_restorer"> = {
  cType: "struct sigaction",
  size: 152,
  fields: {
    sa_handler: { offset: 0, size: 8 },
    sa_mask: { offset: 8, size: 128 },
    sa_flags: { offset: 136, size: 4 },
    sa_restorer: { offset: 144, size: 8 },
  },
};
