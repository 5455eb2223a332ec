/**
 * Our byte layouts, ioctl numbers and constants against the kernel's own headers: a C program generated
 * from ffi/ is compiled by gcc against <linux/kvm.h> and <signal.h> and prints what the headers say
 * (test/helpers/c-layout.ts).
 */
import { describe, expect, test } from "bun:test";
import { ERRNO } from "../../ffi/errno-names.ts";
import { IOCTL_NUMBERS } from "../../ffi/ioctl-numbers.ts";
import { ALL_LAYOUTS, CHECKED_CONSTANTS } from "../../ffi/kvm-structs.ts";
import { SA_RESTART, SIG_BLOCK, SIG_UNBLOCK } from "../../ffi/libc.ts";
import { SIGACTION_LAYOUT } from "../../ffi/libc-structs.ts";
import { cLayoutMismatches } from "../helpers/c-layout.ts";

describe("ffi layouts", () => {
  test("every struct size, field offset, ioctl number and constant matches <linux/kvm.h> and <signal.h>", () => {
    const mismatches = cLayoutMismatches({
      prelude: ["#include <signal.h>", "#include <errno.h>", "#include <linux/kvm.h>"],
      layouts: [...ALL_LAYOUTS, SIGACTION_LAYOUT],
      constants: {
        ...IOCTL_NUMBERS,
        ...CHECKED_CONSTANTS,
        ...Object.fromEntries(Object.entries(ERRNO).map(([name, [value]]) => [name, value])),
        SA_RESTART,
        SIG_BLOCK,
        SIG_UNBLOCK,
      },
    });
    expect(mismatches).toEqual([]);
  });
});
