/*
 * Entry, PVH note and runtime of the C test guests. bunvmm (or any PVH loader) jumps to _start in flat
 * 32-bit protected mode with paging off, EBX pointing at hvm_start_info; we only need a stack.
 */
#include "runtime.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define UART_LSR 5
#define UART_LSR_THRE 0x20
#define UART_SPINS 100000
#define BOOT_STACK_BYTES 16384

/* Global and used: only the entry (assembly) refers to it. */
u8 boot_stack[BOOT_STACK_BYTES] __attribute__((aligned(16), used));

/* The entry, and the note that names it: namesz 4 ("Xen\0"), descsz 4, type 18, then the address. */
__asm__(
    ".pushsection .text.entry, \"ax\"\n"
    ".globl _start\n"
    "_start:\n"
    "  cli\n"
    "  movl $boot_stack + " "16384" ", %esp\n"
    "  call guest_main\n"
    "  pushl $0xff\n"
    "  call power_off\n"
    ".popsection\n"
    ".pushsection .note.Xen, \"a\", @note\n"
    "  .balign 4\n"
    "  .long 4, 4, 18\n"
    "  .asciz \"Xen\"\n"
    "  .balign 4\n"
    "  .long _start\n"
    ".popsection\n");

_Static_assert(BOOT_STACK_BYTES == 16384, "the entry above hard-codes the stack size");
_Static_assert(XEN_ELFNOTE_PHYS32_ENTRY == 18, "the note above hard-codes its type");

void *memcpy(void *dst, const void *src, u32 n) {
  u8 *d = dst;
  const u8 *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void *memset(void *dst, int c, u32 n) {
  u8 *d = dst;
  while (n--) *d++ = (u8)c;
  return dst;
}

void putc(char c) {
  for (int i = 0; i < UART_SPINS && !(inb(COM1_PORT + UART_LSR) & UART_LSR_THRE); i++) {
  }
  outb(COM1_PORT, (u8)c);
}

void puts(const char *s) {
  while (*s) putc(*s++);
}

void put_hex(u32 v, int digits) {
  for (int i = digits - 1; i >= 0; i--) putc("0123456789abcdef"[(v >> (4 * i)) & 0xf]);
}

void put_dec(u32 v) {
  char buf[11];
  int n = 0;
  do {
    buf[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) putc(buf[--n]);
}

void power_off(u32 code) {
  puts("DONE ");
  put_dec(code);
  putc('\n');
  outb(ACPI_SLEEP_CONTROL, S5_SLEEP_VALUE);
  for (;;) __asm__ volatile("hlt");
}
