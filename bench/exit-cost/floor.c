/*
 * The floor: the least a VMM can do per guest exit. One VM, one memory region,
 * the in-kernel irqchip, V vCPUs (only vCPU 0 runs), the raw payload's 32-bit
 * flat protected-mode entry state, then KVM_RUN in a loop that looks at
 * kvm_run and nothing else.
 *
 *   floor IMAGE [VCPUS]
 *
 * Serial bytes (port 0x3f8) go to stdout. The first one starts a clock, the
 * second stops it; at the power-off write (port 0x600) the program prints
 * "floor: EXITS exits in MS ms = US us/exit" on stderr and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE (64ul << 20)
#define LOAD_ADDR 0x10000ul
#define LOAD_END 0x9f000ul
#define MAX_VCPUS 64

static void die(const char *what) {
    perror(what);
    exit(2);
}

static int xioctl(int fd, unsigned long req, void *arg, const char *what) {
    int r = ioctl(fd, req, arg);
    if (r < 0) die(what);
    return r;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void flat(struct kvm_segment *s, uint16_t selector, uint8_t type) {
    memset(s, 0, sizeof *s);
    s->base = 0;
    s->limit = 0xffffffff;
    s->selector = selector;
    s->type = type;
    s->present = 1;
    s->s = 1;  /* code/data */
    s->db = 1; /* 32-bit */
    s->g = 1;  /* 4 KiB granularity */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s IMAGE [VCPUS]\n", argv[0]);
        return 2;
    }
    int nvcpus = argc > 2 ? atoi(argv[2]) : 1;
    if (nvcpus < 1 || nvcpus > MAX_VCPUS) nvcpus = 1;

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("open /dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");

    uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) die("mmap guest memory");
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
        .userspace_addr = (uintptr_t)mem,
    };
    xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
    if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) die("KVM_SET_TSS_ADDR");
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");

    FILE *f = fopen(argv[1], "rb");
    if (!f) die(argv[1]);
    size_t n = fread(mem + LOAD_ADDR, 1, LOAD_END - LOAD_ADDR, f);
    fclose(f);
    if (n == 0) die("empty image");

    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < 0) die("KVM_GET_VCPU_MMAP_SIZE");
    int vcpu[MAX_VCPUS];
    struct kvm_run *run0 = NULL;
    for (int i = 0; i < nvcpus; i++) {
        vcpu[i] = ioctl(vm, KVM_CREATE_VCPU, (unsigned long)i);
        if (vcpu[i] < 0) die("KVM_CREATE_VCPU");
        void *r = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu[i], 0);
        if (r == MAP_FAILED) die("mmap kvm_run");
        if (i == 0) run0 = r;
    }

    struct kvm_sregs sregs;
    xioctl(vcpu[0], KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    flat(&sregs.cs, 0x10, 0xb); /* execute/read, accessed */
    flat(&sregs.ds, 0x18, 0x3); /* read/write, accessed */
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    sregs.cr0 |= 1; /* PE */
    xioctl(vcpu[0], KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
    struct kvm_regs regs = {
        .rflags = 2, .rip = LOAD_ADDR, .rsp = LOAD_ADDR,
        .rax = nvcpus, .rbx = nvcpus, .rcx = MEM_SIZE >> 20,
    };
    xioctl(vcpu[0], KVM_SET_REGS, &regs, "KVM_SET_REGS");

    /* The clock runs from the first serial byte (start marker) to the second
       (end marker); every exit in between, the end marker's included, counts. */
    double t0 = 0, t1 = 0;
    unsigned long exits = 0, serial = 0;
    for (;;) {
        if (ioctl(vcpu[0], KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("KVM_RUN");
        }
        struct kvm_run *r = run0;
        if (serial == 1) exits++;
        if (r->exit_reason == KVM_EXIT_IO) {
            uint8_t *data = (uint8_t *)r + r->io.data_offset;
            if (r->io.direction == KVM_EXIT_IO_OUT && r->io.port == 0x3f8) {
                if (write(1, data, 1) < 0) die("write stdout");
                serial++;
                if (serial == 1) t0 = now_ms();
                if (serial == 2) t1 = now_ms();
            } else if (r->io.direction == KVM_EXIT_IO_OUT && r->io.port == 0x600) {
                break;
            } else if (r->io.direction == KVM_EXIT_IO_IN) {
                memset(data, 0xff, (size_t)r->io.size * r->io.count);
            }
        } else if (r->exit_reason == KVM_EXIT_MMIO) {
            if (!r->mmio.is_write) memset(r->mmio.data, 0xff, sizeof r->mmio.data);
        } else {
            fprintf(stderr, "floor: unexpected exit reason %u\n", r->exit_reason);
            return 3;
        }
    }
    if (serial >= 2)
        fprintf(stderr, "floor: %lu exits in %.3f ms = %.3f us/exit\n",
                exits, t1 - t0, (t1 - t0) * 1e3 / exits);
    return 0;
}
