/**
 * virtio-net wired into a bunvmm VM, on real KVM and a real TAP, driven by the C test guest
 * (test/guests/virtio/net-driver.c, which finds its transport through the DSDT). Every test runs inside a
 * network namespace it creates; addresses (192.0.2.0/24) exist only on the TAP inside it. The VM is built
 * with the test's thread switched into the namespace (Vm.create builds the machine synchronously, so
 * the TAP bunvmm creates, and its `ip` configuration, land there), or, for the CLI, `bunvmm run` is
 * started with `ip netns exec`.
 *  - a TAP bunvmm creates, with the host address set: the guest's UDP datagram goes out, the answer
 *    comes in, the guest echoes it; a frame longer than the MTU is refused and counted; the counters
 *    agree; the TAP is gone once the VM ends;
 *  - no receive buffers posted while datagrams arrive, then posted: the queued datagrams arrive;
 *  - while the VM is paused no frame moves (they wait in the TAP); after resume they arrive;
 *  - the TAP is gone after a guest crash, after SIGTERM to `bunvmm run`, and after SIGKILL to a library
 *    process whose VM runs;
 *  - a named TAP that is missing or busy, and an invalid MAC, stop the VM with one line naming the key;
 *  - afterwards no namespace of this process is left.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tap } from "../../devices/virtio/tap.ts";
import { Vm } from "../../src/index.ts";
import { cGuestElf } from "../helpers/c-guest.ts";
import { BUN, REPO, runCli, SOURCE_CLI } from "../helpers/cli.ts";
import { observationWindow, waitUntil } from "../helpers/guests.ts";
import { leftoverNamespaces, type Netns, withNetns } from "../helpers/netns.ts";
import { LineReader, macBytes } from "../helpers/virtio-net-frames.ts";

const HOST_IP = "192.0.2.1";
const GUEST_IP = "192.0.2.2";
const GUEST_MAC = "02:00:5e:00:02:02";
const HOST_PORT = 5000;
const GUEST_PORT = 4000;
const TIMEOUT_MS = 10_000;
/** Datagrams the late-buffers guest receives after it posts its buffers. */
const LATE_COUNT = 3;
const HELLO = "hello from the C guest";

/** A UDP socket on the TAP's address: prints what it gets, answers "pong:" + it, prints the echo. */
const ECHO_SERVER = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("${HOST_IP}", ${HOST_PORT}))
s.settimeout(60)
print("ready", flush=True)
d, a = s.recvfrom(65535)
print("got", d.decode(), a[0], a[1], flush=True)
s.sendto(b"pong:" + d, a)
while True:
    d, a = s.recvfrom(65535)
    print("echo", d.decode(), flush=True)
`;

/** Waits for the guest's datagram, then sends argv's words to the guest, and says so. */
const LATE_SENDER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("${HOST_IP}", ${HOST_PORT}))
s.settimeout(60)
print("ready", flush=True)
d, a = s.recvfrom(65535)
for w in sys.argv[1:]:
    s.sendto(w.encode(), ("${GUEST_IP}", ${GUEST_PORT}))
print("sent", flush=True)
`;

/** Sends each argv word as one datagram to the guest. */
const SENDER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for w in sys.argv[1:]:
    s.sendto(w.encode(), ("${GUEST_IP}", ${GUEST_PORT}))
`;
/** How long a paused VM is watched for frames that should not move. */
const PAUSED_WINDOW_MS = 200;

const ipv4Number = (ip: string) => ip.split(".").reduce((n, b) => n * 256 + Number(b), 0);

/** The net guest with `extra` defines. */
function netGuest(extra: Record<string, number> = {}): string {
  const mac = macBytes(GUEST_MAC);
  return cGuestElf(["acpi.c", "net-driver.c"], {
    HOST_IP: ipv4Number(HOST_IP),
    GUEST_IP: ipv4Number(GUEST_IP),
    HOST_PORT,
    GUEST_PORT,
    GUEST_MAC_HI: (mac[0]! << 8) | mac[1]!,
    GUEST_MAC_LO: ((mac[2]! << 24) | (mac[3]! << 16) | (mac[4]! << 8) | mac[5]!) >>> 0,
    RX_POLL_LIMIT: 2_000_000,
    ...extra,
  });
}

function config(kernel: string, net: object[]): object {
  return { memory: { size: "32M" }, payload: { kernel, format: "elf" }, serial: { mode: "off" }, net };
}

/** Builds the VM with this thread in the namespace, so the TAP bunvmm creates is made there. */
function createIn(ns: Netns, kernel: string, net: object[] = [{ ip: HOST_IP, mac: GUEST_MAC }]): Promise<Vm> {
  return ns.enter(() =>
    Vm.create(config(kernel, net), { serial: { kind: "none" }, logLevel: "warn", timeoutMs: TIMEOUT_MS }),
  );
}

/** No IPv6 chatter on the namespace's links; a permanent neighbour entry so the host's answer needs no ARP. */
function quietNamespace(ns: Netns): void {
  ns.run(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
  ns.run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
}
function addNeighbour(ns: Netns, tap: string): void {
  ns.run(["ip", "neigh", "replace", GUEST_IP, "lladdr", GUEST_MAC, "dev", tap, "nud", "permanent"]);
}
const links = (ns: Netns) => ns.run(["ip", "-o", "link", "show"]);
const tapOf = (vm: Vm, id = "net0") => String(vm.counters().devices[id]!.tap);

/** What `fn` throws, as text. */
async function failure(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("no error thrown");
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bunvmm-net-vm-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  expect(leftoverNamespaces()).toEqual([]);
});

describe("virtio-net in a VM, on a TAP in a namespace", () => {
  test("a created TAP: UDP out and back, the echo, an oversized frame refused and counted, the TAP gone after", async () => {
    await withNetns(async (ns) => {
      quietNamespace(ns);
      const server = ns.spawn(["python3", "-c", ECHO_SERVER]);
      const out = new LineReader(server.stdout as ReadableStream<Uint8Array>);
      try {
        await out.line(/^ready/, "the UDP server in the namespace");
        let tap: string;
        {
          await using vm = await createIn(ns, netGuest({ VM_OVERSIZE: 1 }));
          tap = tapOf(vm);
          expect(tap).toMatch(/^vmtap\d+$/);
          // Created, addressed and up, inside the namespace only.
          expect(ns.run(["ip", "-o", "-4", "addr", "show", "dev", tap])).toContain(`inet ${HOST_IP}/24`);
          expect(ns.run(["ip", "-o", "link", "show", "dev", tap])).toMatch(/[<,]UP[,>]/);
          addNeighbour(ns, tap);
          await vm.boot();
          const exit = await vm.exited;
          const text = vm.serial.text;
          expect(exit.reason).toBe("poweroff");
          for (const step of ["probe", "features", "mac", "queues", "tx", "rx", "echo", "oversize", "after"])
            expect(text).toContain(`${step} ok\n`);
          expect(text).toContain(`reply: pong:${HELLO}\n`);
          expect(text).toEndWith("DONE 0\n");
          expect(await out.line(/^got /, "the guest's datagram")).toBe(
            `got ${HELLO} ${GUEST_IP} ${GUEST_PORT}`,
          );
          await out.line(/^echo .*/, "the guest's echo");
          expect(out.lines.filter((l) => l.startsWith("echo "))).toEqual([
            `echo pong:${HELLO}`,
            `echo pong:${HELLO}`,
          ]);
          const c = vm.counters().devices.net0!;
          expect(c.kind).toBe("virtio-net");
          // hello, echo, after: sent; the oversized frame dropped and counted.
          expect(c.tx_frames).toBe(3);
          expect(c.tx_dropped).toBe(1);
          expect(c.tx_oversized).toBe(1);
          const udpFrame = (payload: number) => 14 + 20 + 8 + payload;
          expect(c.tx_bytes).toBe(udpFrame(HELLO.length) + 2 * udpFrame(`pong:${HELLO}`.length));
          expect(c.rx_frames).toBeGreaterThanOrEqual(1);
          expect(c.rx_bytes).toBeGreaterThanOrEqual(udpFrame(`pong:${HELLO}`.length));
          expect(c.rx_dropped).toBe(0);
          expect(c.bad_requests).toBe(0);
          expect(c.needs_reset).toBe(0);
          expect(c.tap_failed).toBe(0);
          expect(vm.info().config.net).toEqual([
            { ip: HOST_IP, mask: "255.255.255.0", mac: GUEST_MAC, id: "net0" },
          ]);
        }
        // The VM is gone, and so is the TAP it created (its fd was the only one).
        await waitUntil(() => !links(ns).includes(`${tap}:`), `${tap} to disappear`);
      } finally {
        server.kill();
        await server.exited;
      }
    });
  });

  test("no receive buffers while datagrams arrive: they wait in the TAP and arrive once buffers are posted", async () => {
    await withNetns(async (ns) => {
      quietNamespace(ns);
      const words = Array.from({ length: LATE_COUNT }, (_, i) => `late-${i}`);
      const sender = ns.spawn(["python3", "-c", LATE_SENDER, ...words]);
      const out = new LineReader(sender.stdout as ReadableStream<Uint8Array>);
      try {
        await out.line(/^ready/, "the sender in the namespace");
        await using vm = await createIn(ns, netGuest({ VM_LATE_RX: 1, LATE_COUNT }));
        addNeighbour(ns, tapOf(vm));
        await vm.boot();
        await vm.serial.waitFor(/waiting\n/, TIMEOUT_MS);
        // Every datagram is in the TAP's queue once the sender says so (sendto returns after the TAP
        // queued it); the guest has posted no buffer yet.
        await out.line(/^sent/, "the datagrams to the guest");
        expect(vm.counters().devices.net0!.rx_frames).toBe(0);
        expect(vm.serial.write("g")).toBe(1);
        const exit = await vm.exited;
        expect(exit.reason).toBe("poweroff");
        const text = vm.serial.text;
        for (const w of words) expect(text).toContain(`late ${w}\n`);
        expect(text).toEndWith("DONE 0\n");
        const c = vm.counters().devices.net0!;
        expect(c.rx_frames).toBeGreaterThanOrEqual(LATE_COUNT);
        expect(c.rx_dropped).toBe(0);
      } finally {
        sender.kill();
        await sender.exited;
      }
    });
  });

  test("while paused no frame reaches the guest (they wait in the TAP); after resume they arrive", async () => {
    await withNetns(async (ns) => {
      quietNamespace(ns);
      await using vm = await createIn(ns, netGuest({ VM_HOLD: 1 }));
      addNeighbour(ns, tapOf(vm));
      await vm.boot();
      await vm.serial.waitFor(/tx ok\n/, TIMEOUT_MS);
      await vm.pause();
      const before = vm.counters().devices.net0!;
      ns.run(["python3", "-c", SENDER, "while-paused-0", "while-paused-1"]);
      await observationWindow(PAUSED_WINDOW_MS);
      expect(vm.counters().devices.net0!).toEqual(before);
      await vm.resume();
      const received = () => Number(vm.counters().devices.net0!.rx_frames);
      await waitUntil(() => received() >= Number(before.rx_frames) + 2, "the two datagrams after resume");
      expect(vm.counters().devices.net0!.rx_dropped).toBe(0);
    });
  });

  test("the created TAP is gone after a guest crash", async () => {
    await withNetns(async (ns) => {
      quietNamespace(ns);
      const vm = await createIn(ns, netGuest({ VM_CRASH: 1 }), [{ mac: GUEST_MAC }]);
      const tap = tapOf(vm);
      try {
        expect(links(ns)).toContain(`${tap}:`);
        await vm.boot();
        const exit = await vm.exited;
        expect(exit.reason).toBe("crash");
        expect(vm.serial.text).toContain("tx ok\n");
      } finally {
        await vm.shutdown();
      }
      await waitUntil(() => !links(ns).includes(`${tap}:`), `${tap} to disappear after the crash`);
    });
  });

  test("the created TAP is gone after SIGTERM to bunvmm run", async () => {
    await withNetns(async (ns) => {
      quietNamespace(ns);
      const toml = join(dir, "hold.toml");
      writeFileSync(
        toml,
        [
          "[memory]",
          'size = "32M"',
          "[payload]",
          `kernel = "${netGuest({ VM_HOLD: 1 })}"`,
          'format = "elf"',
          "[[net]]",
          `mac = "${GUEST_MAC}"`,
          `ip = "${HOST_IP}"`,
        ].join("\n"),
      );
      const proc = Bun.spawn(["ip", "netns", "exec", ns.name, ...SOURCE_CLI, "run", toml], {
        stdout: "pipe",
        stderr: "pipe",
        stdin: "ignore",
      });
      const out = new LineReader(proc.stdout as ReadableStream<Uint8Array>);
      const deadline = setTimeout(() => proc.kill("SIGKILL"), 60_000); // the child's whole life
      try {
        await out.line(/^tx ok/, "the guest's first datagram", 30_000);
        const tap = /(vmtap\d+):/.exec(links(ns))?.[1];
        expect(tap).toBeDefined();
        proc.kill("SIGTERM");
        expect(await proc.exited).toBe(0);
        expect(links(ns)).not.toContain(`${tap}:`);
      } finally {
        clearTimeout(deadline);
        proc.kill("SIGKILL");
        await proc.exited;
      }
    });
  });

  test("the created TAP is gone when a library process is SIGKILLed with its VM running (it goes with its fd)", async () => {
    await withNetns(async (ns) => {
      const script = `
        import { writeSync } from "node:fs";
        import { Vm } from ${JSON.stringify(join(REPO, "src", "index.ts"))};
        const vm = await Vm.create(
          { memory: { size: "32M" }, payload: { kernel: ${JSON.stringify(netGuest({ VM_HOLD: 1 }))}, format: "elf" },
            serial: { mode: "off" }, net: [{ mac: "${GUEST_MAC}" }] },
          { serial: { kind: "none" }, logLevel: "silent" },
        );
        await vm.boot();
        writeSync(1, "tap " + vm.counters().devices.net0.tap + "\\n"); // written before the kill
        process.kill(process.pid, "SIGKILL");
      `;
      const r = await runCli(["ip", "netns", "exec", ns.name, BUN, "-e", script], { timeoutMs: 30_000 });
      const tap = /^tap (vmtap\d+)$/m.exec(r.stdout)?.[1];
      expect(tap).toBeDefined();
      expect(r.signal ?? r.exitCode).toBeOneOf(["SIGKILL", 137]);
      await waitUntil(() => !links(ns).includes(`${tap}:`), `${tap} to disappear after SIGKILL`);
    });
  });

  test("a missing or busy TAP, an invalid MAC: one line naming the key and the value", async () => {
    const guest = netGuest();
    await withNetns(async (ns) => {
      const missing = await failure(() => createIn(ns, guest, [{ tap: "vmtapnone" }]));
      expect(missing).toBe(
        'net.0.tap = "vmtapnone": tap vmtapnone does not exist (create it first, e.g. ip tuntap add vmtapnone mode tap)',
      );
      const holder = ns.enter(() => Tap.open("vmtapheld"));
      try {
        const busy = await failure(() => createIn(ns, guest, [{ tap: "vmtapheld" }]));
        expect(busy).toBe('net.0.tap = "vmtapheld": tap vmtapheld is busy: another process has it open');
      } finally {
        holder.close();
      }
    });
    const mac = await failure(() => Vm.create(config(guest, [{ mac: "01:00:00:00:00:01" }])));
    expect(mac).toContain('net.0.mac = "01:00:00:00:00:01"');
    expect(mac).not.toContain("\n");
  });
});
