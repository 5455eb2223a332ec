/**
 * A pause/resume storm while numbered UDP datagrams stream both ways through virtio-net on a real TAP
 * (test/guests/virtio/netbench-storm.c): the guest sends G2H_COUNT datagrams to a UDP socket in the
 * test's namespace, the host sends H2G_COUNT to the guest, and the test pauses and resumes the VM (over
 * the REST API of a `bunvmm run` child inside the namespace) at random throughout.
 *
 * What may be lost, and only where it is counted: bunvmm itself must lose and duplicate nothing. Guest
 * to host, the kernel may drop a datagram when the UDP socket's buffer is full (counted in the
 * namespace's Udp RcvbufErrors; the buffer is made large so it should not happen). Host to guest, a
 * TAP's queue is finite (txqueuelen frames): while the VM is paused nobody reads it, and a frame that
 * finds it full is dropped and counted in the TAP's tx_dropped. So: host received + RcvbufErrors =
 * G2H_COUNT, guest received + tx_dropped = datagrams the host sent, and no duplicate anywhere.
 *
 * Skipped, with the reason, only while the config schema rejects `[[net]]`. Every namespace it makes
 * is deleted, also on failure, and the test checks none is left. BUNVMM_STRESS_SEED seeds the storm.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { cGuestElf } from "../helpers/c-guest.ts";
import { leftoverNamespaces, withNetns } from "../helpers/netns.ts";
import { Rng, randomGap } from "../helpers/rng.ts";
import { keyUnsupported, makeTap, startChildVm, stormStep } from "./virtio-net-support.ts";

const SEED = Number(process.env.BUNVMM_STRESS_SEED ?? 0x5eed) + 0x4e37;
const TAP = "stormtap0";
const HOST_IP = "10.78.0.1";
const GUEST_IP = "10.78.0.2";
const GUEST_MAC = "52:54:00:6e:73:01";
const NET_PORT = 7100;
const G2H_COUNT = 20_000;
const H2G_COUNT = 20_000;
/** Host datagrams a millisecond: about 4 s for the whole stream, so the storm spans all of it. */
const H2G_PER_MS = 5;
const BOOT_DEADLINE_MS = 30_000;
const STREAM_DEADLINE_MS = 240_000;
const MAX_GAP_MS = 20;
const ip = (s: string) => s.split(".").reduce((a, b) => (a * 256 + Number(b)) >>> 0, 0);

/** The host side, in the namespace: a UDP socket counting the guest's datagrams, a sender of ours. */
const HOST_PY = String.raw`
import json, os, select, socket, struct, sys, threading, time
host_ip, guest_ip, port, g2h, h2g, per_ms, tap = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE
s.bind((host_ip, port))
seen = bytearray(g2h)
stats = {"received": 0, "dup": 0, "bogus": 0}
lock = threading.Lock()
def receive():
    while True:
        d = s.recv(64)
        seq = struct.unpack("!I", d[:4])[0] if len(d) >= 4 else None
        with lock:
            if seq is None or seq >= g2h: stats["bogus"] += 1
            elif seen[seq]: stats["dup"] += 1
            else:
                seen[seq] = 1
                stats["received"] += 1
threading.Thread(target=receive, daemon=True).start()
def tx_dropped():
    return int(open(f"/sys/class/net/{tap}/statistics/tx_dropped").read())
def rcvbuf_errors():
    rows = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])
pending = b""
def line():
    global pending
    while b"\n" not in pending:
        c = os.read(0, 4096)
        if not c: return None
        pending += c
    l, pending = pending.split(b"\n", 1)
    return l.decode().strip()
dropped0, errors0 = tx_dropped(), rcvbuf_errors()
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = 0
print(json.dumps({"ready": True}), flush=True)
while (cmd := line()) is not None:
    if cmd == "go":
        for i in range(h2g):
            try:
                out.sendto(struct.pack("!I", i), (guest_ip, port))
                sent += 1
            except OSError:
                pass
            if i % per_ms == per_ms - 1: time.sleep(0.001)
        while not (b"\n" in pending or select.select([0], [], [], 0.005)[0]):
            out.sendto(struct.pack("!I", 0xffffffff), (guest_ip, port))
    elif cmd == "report":
        with lock:
            print(json.dumps({**stats, "sent": sent, "tx_dropped": tx_dropped() - dropped0, "rcvbuf_errors": rcvbuf_errors() - errors0}), flush=True)
`;

const unsupported = keyUnsupported("net");
if (unsupported) console.warn(`virtio-net pause storm skipped: ${unsupported}`);

afterAll(() => {
  expect(leftoverNamespaces()).toEqual([]);
});

describe("virtio-net pause storm", () => {
  test.skipIf(unsupported !== null)(
    "numbered datagrams both ways under pause/resume: nothing duplicated, nothing lost that the host did not count",
    async () => {
      const elf = cGuestElf(["acpi.c", "netbench-net.c", "netbench-vsock.c", "netbench-storm.c"], {
        HOST_IP: ip(HOST_IP),
        GUEST_IP: ip(GUEST_IP),
        NET_PORT,
        G2H_COUNT,
        H2G_COUNT,
        VSOCK_PORT: 0,
        VSOCK_BYTES: 0,
      });
      await withNetns(async (ns) => {
        makeTap(ns, TAP, `${HOST_IP}/24`);
        ns.run(["ip", "neigh", "replace", GUEST_IP, "lladdr", GUEST_MAC, "dev", TAP, "nud", "permanent"]);
        const host = Bun.spawn(
          [
            "ip",
            "netns",
            "exec",
            ns.name,
            "python3",
            "-c",
            HOST_PY,
            HOST_IP,
            GUEST_IP,
            String(NET_PORT),
            String(G2H_COUNT),
            String(H2G_COUNT),
            String(H2G_PER_MS),
            TAP,
          ],
          { stdin: "pipe", stdout: "pipe", stderr: "pipe" },
        );
        const answers = host.stdout.getReader();
        const decoder = new TextDecoder();
        let buffered = "";
        const answer = async <T>(): Promise<T> => {
          const deadline = setTimeout(() => host.kill("SIGKILL"), 30_000); // a helper that hangs ends the read
          try {
            while (!buffered.includes("\n")) {
              const r = await answers.read();
              if (r.done) throw new Error(`the host helper ended: ${await new Response(host.stderr).text()}`);
              buffered += decoder.decode(r.value, { stream: true });
            }
          } finally {
            clearTimeout(deadline);
          }
          const [first, ...rest] = buffered.split("\n");
          buffered = rest.join("\n");
          return JSON.parse(first!) as T;
        };
        const tell = (cmd: string) => {
          host.stdin.write(`${cmd}\n`);
          host.stdin.flush();
        };
        try {
          await answer(); // ready
          const vm = await startChildVm(
            [
              "[memory]",
              'size = "64M"',
              "[payload]",
              `kernel = ${JSON.stringify(elf)}`,
              'format = "elf"',
              "[serial]",
              'mode = "tty"',
              "[[net]]",
              `tap = "${TAP}"`,
              `mac = "${GUEST_MAC}"`,
              'id = "net0"',
              "",
            ].join("\n"),
            ns,
          );
          try {
            await vm.waitLine(/^READY net$/, "the guest's driver up", BOOT_DEADLINE_MS);
            tell("go");
            const rng = new Rng(SEED);
            const deadline = performance.now() + STREAM_DEADLINE_MS;
            let pairs = 0;
            const finished = () => vm.lines.some((l) => l.startsWith("net sent "));
            const step = async () => {
              await vm.pause();
              const state = await vm.state();
              if (state !== "Paused") throw new Error(`vm.info says ${state} after vm.pause`);
              await randomGap(rng, MAX_GAP_MS);
              await vm.resume();
            };
            while (!finished() && performance.now() < deadline && (await stormStep(vm, finished, step))) {
              pairs++;
              await randomGap(rng, MAX_GAP_MS);
            }
            const [, sent, received, dup, bogus] = (await vm.waitLine(
              /^net sent (\d+) received (\d+) dup (\d+) bogus (\d+)$/,
              "the guest's report",
              STREAM_DEADLINE_MS,
            )) as unknown as [string, string, string, string, string];
            tell("stop");
            tell("report");
            const h = await answer<{
              received: number;
              dup: number;
              bogus: number;
              sent: number;
              tx_dropped: number;
              rcvbuf_errors: number;
            }>();
            console.info(
              `seed ${SEED}: ${pairs} pause/resume pairs; guest -> host: guest sent ${sent}, host received ${h.received}, ` +
                `dropped by the host's full socket buffer ${h.rcvbuf_errors}, duplicates ${h.dup}; host -> guest: host sent ` +
                `${h.sent}, guest received ${received}, dropped by the TAP's full queue ${h.tx_dropped}, duplicates ${dup}`,
            );
            expect(pairs).toBeGreaterThan(0);
            expect(Number(sent)).toBe(G2H_COUNT);
            expect(h.dup).toBe(0);
            expect(h.bogus).toBe(0);
            expect(h.received + h.rcvbuf_errors).toBe(G2H_COUNT);
            expect(Number(dup)).toBe(0);
            expect(Number(bogus)).toBe(0);
            // Every datagram the guest missed was dropped by the TAP's full queue while the VM was paused.
            // The TAP's drop counter also counts the host stack's own frames to the TAP (IPv6 router
            // solicitations, MLD reports) dropped at the same time, so it bounds the loss from above.
            expect(Number(received)).toBeLessThanOrEqual(h.sent);
            expect(h.sent - Number(received)).toBeLessThanOrEqual(h.tx_dropped);
            expect(vm.lines).toContain("DONE 0");
            expect(await vm.exited).toBe(0);
          } finally {
            await vm.stop();
          }
        } finally {
          host.kill("SIGKILL");
          await host.exited;
        }
      });
    },
    600_000,
  );
});
