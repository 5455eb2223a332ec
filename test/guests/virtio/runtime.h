/*
 * The freestanding runtime of the C test guests: port I/O, MMIO, COM1 output, memcpy/memset (gcc may
 * emit calls to them even with -ffreestanding), and the exit. Compiled with -mgeneral-regs-only: no
 * x87 or SSE anywhere (the nested KVM these tests run on cannot execute them in an emulated guest).
 */
#ifndef BUNVMM_GUEST_RUNTIME_H
#define BUNVMM_GUEST_RUNTIME_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#ifndef COM1_PORT
#error "COM1_PORT must be defined by the build (test/helpers/c-guest.ts)"
#endif
#ifndef ACPI_SLEEP_CONTROL
#error "ACPI_SLEEP_CONTROL must be defined by the build"
#endif
#ifndef S5_SLEEP_VALUE
#error "S5_SLEEP_VALUE must be defined by the build"
#endif

/* The compiler must not move memory accesses across this (x86 keeps stores in order by itself). */
#define barrier() __asm__ volatile("" ::: "memory")

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline u32 mmio_read32(u32 addr) { return *(volatile u32 *)addr; }
static inline u8 mmio_read8(u32 addr) { return *(volatile u8 *)addr; }
static inline void mmio_write32(u32 addr, u32 v) { *(volatile u32 *)addr = v; }

void *memcpy(void *dst, const void *src, u32 n);
void *memset(void *dst, int c, u32 n);
void putc(char c);
void puts(const char *s);
void put_hex(u32 v, int digits);
void put_dec(u32 v);
/* Prints "DONE <code>" and powers the machine off through the ACPI sleep register (S5). */
void power_off(u32 code) __attribute__((noreturn));
/* The guest's main, called on the boot stack by the PVH entry. */
void guest_main(void);

#endif
