/**
 * The VM config schema: one TOML file per VM, with cloud-hypervisor's VmConfig names so that the REST API's
 * `vm.info` can return the same shape. Every valibot message here is the "expected …" part of a ConfigError.
 * @module
 */
import * as v from "valibot";
import { CPU_FEATURES } from "../arch/x86_64/cpuid.ts";
import { ConfigError, issueAt } from "./config-error.ts";
import {
  CMDLINE_MAX,
  DEFAULT_LIFECYCLE_TIMEOUT_MS,
  DEFAULT_MEMORY_SIZE,
  DEFAULT_VCPUS,
  LIFECYCLE_TIMEOUT_MAX_MS,
  LIFECYCLE_TIMEOUT_MIN_MS,
  MAX_VCPUS,
  MIN_VCPUS,
} from "./limits.ts";
import { checkMemorySize } from "./memory-size.ts";

/** Payload formats: a bzImage, a vmlinux ELF booted through PVH, or bunvmm's flat binary (docs/raw-payload.md). */
export const PAYLOAD_FORMATS = ["auto", "bzimage", "elf", "raw"] as const;
/** Where the guest's serial port goes: the terminal, a file, or nowhere. */
export const SERIAL_MODES = ["tty", "file", "off"] as const;
/** Where virtio-console output goes: stdout, a file, or no virtio-console device at all. */
export const CONSOLE_MODES = ["off", "tty", "file"] as const;
/** The longest disk serial: VIRTIO_BLK_ID_BYTES, what GET_ID returns. */
export const DISK_SERIAL_MAX = 20;
/** The entropy source of `[rng]` when `src` is not given. */
export const DEFAULT_RNG_SOURCE = "/dev/urandom";

/** One `[[disks]]` entry (cloud-hypervisor's DiskConfig names), resolved. */
export interface DiskConfig {
  path: string;
  readonly: boolean;
  /** Open the image with O_DIRECT (no host page cache). */
  direct: boolean;
  /** What GET_ID returns, at most DISK_SERIAL_MAX bytes. */
  serial?: string;
  /** The device's name in counters and messages; default "disk<index>". */
  id: string;
}

/** One `[[net]]` entry (cloud-hypervisor's NetConfig names), resolved. */
export interface NetConfig {
  /** An existing TAP to attach; absent: bunvmm creates `vmtapN` for the VM's lifetime. */
  tap?: string;
  /** The guest's MAC; a random locally administered one when not given (fixed for the VM's life). */
  mac: string;
  /** The host side's IPv4 address on the TAP, and its netmask (default 255.255.255.0 with `ip`). */
  ip?: string;
  mask?: string;
  /** The TAP's own MAC (the host side). */
  host_mac?: string;
  /** The MTU the guest is told (default 1500). */
  mtu?: number;
  /** The device's name in counters and messages; default "net<index>". */
  id: string;
}

/** The `[vsock]` table (cloud-hypervisor's VsockConfig names), resolved. */
export interface VsockConfig {
  /** The guest's context ID, 3 .. 2^32 - 2. */
  cid: number;
  /** The host-side Unix socket; guest connections to host port P go to `<socket>_P`. */
  socket: string;
  /** The device's name in counters and messages; default "vsock0". */
  id: string;
}

/** A VM config as the VMM uses it: validated, defaults applied, file paths absolute. */
export interface VmConfig {
  /** `hide_features`: CPUID features the guest must not see (bunvmm's own key; names as Linux's clearcpuid=). */
  cpus: { boot_vcpus: number; max_vcpus: number; hide_features: string[] };
  /** `size` in bytes; `thp`: back RAM with transparent huge pages (cloud-hypervisor's `thp`, default on). */
  memory: { size: number; thp: boolean };
  /** No `kernel` means the built-in demo guest. */
  payload: { kernel?: string; initramfs?: string; cmdline: string; format: (typeof PAYLOAD_FORMATS)[number] };
  serial: { mode: (typeof SERIAL_MODES)[number]; file?: string };
  api: { socket?: string };
  /** One virtio-blk device each, in this order. */
  disks: DiskConfig[];
  /** A virtio-rng device when present. */
  rng?: { src: string };
  /** A virtio-console device unless mode is "off". */
  console: { mode: (typeof CONSOLE_MODES)[number]; file?: string };
  /** One virtio-net device each, in this order. */
  net: NetConfig[];
  /** A virtio-vsock device when present. */
  vsock?: VsockConfig;
  /**
   * bunvmm itself rather than the guest's hardware (as the REST API splits vm.* from vmm.*).
   * `lifecycle_timeout_ms` bounds each wait of pause, resume and shutdown for the workers' acknowledgements.
   */
  vmm: { lifecycle_timeout_ms: number };
}

const TABLE = "a table";
const PATH = "a path";
const VCPUS = `an integer from ${MIN_VCPUS} to ${MAX_VCPUS}`;
const CMDLINE = `a string of at most ${CMDLINE_MAX} bytes`;
/** What `[vmm] lifecycle_timeout_ms` (and the CLI's `--lifecycle-timeout-ms`) accepts. */
export const LIFECYCLE_TIMEOUT = `an integer number of milliseconds from ${LIFECYCLE_TIMEOUT_MIN_MS} to ${LIFECYCLE_TIMEOUT_MAX_MS}`;
const oneOf = (options: readonly string[]) => `one of ${options.map((o) => JSON.stringify(o)).join(", ")}`;

/** Only plain objects are tables: valibot's object schemas would also take arrays, dates and class instances. */
function isTable(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** A TOML table whose keys are exactly `entries` (unknown keys are errors, to catch typos). */
function table<const TEntries extends v.ObjectEntries>(entries: TEntries) {
  return v.pipe(v.unknown(), v.check(isTable, TABLE), v.strictObject(entries, TABLE));
}

const path = v.pipe(v.string(PATH), v.nonEmpty(PATH), v.excludes("\0", PATH));
const vcpuCount = v.pipe(
  v.number(VCPUS),
  v.integer(VCPUS),
  v.minValue(MIN_VCPUS, VCPUS),
  v.maxValue(MAX_VCPUS, VCPUS),
);

const FEATURE_NAMES = Object.keys(CPU_FEATURES).sort();
const FEATURES = `a list of CPU feature names, each ${oneOf(FEATURE_NAMES)}`;
const cpusEntries = {
  boot_vcpus: v.optional(vcpuCount, DEFAULT_VCPUS),
  max_vcpus: v.optional(vcpuCount),
  hide_features: v.optional(v.array(v.picklist(FEATURE_NAMES, FEATURES), FEATURES), []),
};
const cpus = v.pipe(
  table(cpusEntries),
  v.forward(
    v.partialCheck(
      [["boot_vcpus"], ["max_vcpus"]],
      (c) => c.max_vcpus === undefined || c.max_vcpus >= c.boot_vcpus,
      (issue) =>
        `an integer from cpus.boot_vcpus (${issue.input.boot_vcpus}) to ${MAX_VCPUS} (max_vcpus may not be below boot_vcpus)`,
    ),
    ["max_vcpus"],
  ),
  v.transform((c) => ({
    boot_vcpus: c.boot_vcpus,
    max_vcpus: c.max_vcpus ?? c.boot_vcpus,
    hide_features: [...new Set(c.hide_features)],
  })),
);

const memoryEntries = {
  size: v.optional(
    v.pipe(
      v.unknown(),
      v.rawTransform(({ dataset, addIssue, NEVER }) => {
        const result = checkMemorySize(dataset.value);
        if ("bytes" in result) return result.bytes;
        addIssue({ message: result.expected });
        return NEVER;
      }),
    ),
    DEFAULT_MEMORY_SIZE,
  ),
  thp: v.optional(v.boolean("true or false"), true),
};

const payloadEntries = {
  kernel: v.optional(path),
  initramfs: v.optional(path),
  cmdline: v.optional(
    v.pipe(
      v.string(CMDLINE),
      v.maxBytes(CMDLINE_MAX, CMDLINE),
      v.excludes("\0", "a string without NUL characters"),
    ),
    "",
  ),
  format: v.optional(v.picklist(PAYLOAD_FORMATS, oneOf(PAYLOAD_FORMATS)), "auto"),
};
const payload = v.pipe(
  table(payloadEntries),
  v.forward(
    v.partialCheck(
      [["kernel"], ["initramfs"]],
      (p) => p.initramfs === undefined || p.kernel !== undefined,
      "a kernel to go with it (payload.kernel)",
    ),
    ["initramfs"],
  ),
  // A raw image is entered directly (docs/raw-payload.md): nothing would read a command line or an
  // initramfs, so they are refused rather than silently ignored.
  v.forward(
    v.partialCheck(
      [["format"], ["cmdline"]],
      (p) => p.format !== "raw" || p.cmdline === "",
      `no command line with payload.format = "raw" (a raw image reads none)`,
    ),
    ["cmdline"],
  ),
  v.forward(
    v.partialCheck(
      [["format"], ["initramfs"]],
      (p) => p.format !== "raw" || p.initramfs === undefined,
      `no initramfs with payload.format = "raw" (a raw image loads none)`,
    ),
    ["initramfs"],
  ),
);

const serialEntries = {
  // Any case, like cloud-hypervisor's "Tty"; stored lower case.
  mode: v.optional(
    v.pipe(v.string(oneOf(SERIAL_MODES)), v.toLowerCase(), v.picklist(SERIAL_MODES, oneOf(SERIAL_MODES))),
    "tty",
  ),
  file: v.optional(path),
};
const serial = v.pipe(
  table(serialEntries),
  v.forward(
    v.partialCheck(
      [["mode"], ["file"]],
      (s) => s.mode !== "file" || s.file !== undefined,
      `a path when serial.mode is "file"`,
    ),
    ["file"],
  ),
  v.forward(
    v.partialCheck(
      [["mode"], ["file"]],
      (s) => s.mode === "file" || s.file === undefined,
      `serial.mode = "file" to go with it`,
    ),
    ["file"],
  ),
);

const apiEntries = { socket: v.optional(path) };

const SERIAL_TEXT = `a string of at most ${DISK_SERIAL_MAX} bytes`;
const diskEntries = {
  path,
  readonly: v.optional(v.boolean("true or false"), false),
  direct: v.optional(v.boolean("true or false"), false),
  serial: v.optional(
    v.pipe(
      v.string(SERIAL_TEXT),
      v.maxBytes(DISK_SERIAL_MAX, SERIAL_TEXT),
      v.excludes("\0", "a string without NUL characters"),
    ),
  ),
  id: v.optional(
    v.pipe(v.string("a name"), v.regex(/^[A-Za-z0-9_-]{1,32}$/, "a name of 1-32 letters, digits, _ or -")),
  ),
};
const DISKS = "an array of tables ([[disks]])";
const disks = v.pipe(
  v.array(table(diskEntries), DISKS),
  v.transform((list) => list.map((d, index) => ({ ...d, id: d.id ?? `disk${index}` }))),
  v.check(
    (list) => new Set(list.map((d) => d.id)).size === list.length,
    "disks with distinct ids (disks[].id)",
  ),
);

const rngEntries = { src: v.optional(path, DEFAULT_RNG_SOURCE) };

const consoleEntries = {
  mode: v.optional(
    v.pipe(v.string(oneOf(CONSOLE_MODES)), v.toLowerCase(), v.picklist(CONSOLE_MODES, oneOf(CONSOLE_MODES))),
    "off",
  ),
  file: v.optional(path),
};
const consoleTable = v.pipe(
  table(consoleEntries),
  v.forward(
    v.partialCheck(
      [["mode"], ["file"]],
      (s) => s.mode !== "file" || s.file !== undefined,
      `a path when console.mode is "file"`,
    ),
    ["file"],
  ),
  v.forward(
    v.partialCheck(
      [["mode"], ["file"]],
      (s) => s.mode === "file" || s.file === undefined,
      `console.mode = "file" to go with it`,
    ),
    ["file"],
  ),
);
/** The lifecycle deadline, also checked alone for the CLI's flag. */
export const LifecycleTimeoutSchema = v.pipe(
  v.number(LIFECYCLE_TIMEOUT),
  v.integer(LIFECYCLE_TIMEOUT),
  v.minValue(LIFECYCLE_TIMEOUT_MIN_MS, LIFECYCLE_TIMEOUT),
  v.maxValue(LIFECYCLE_TIMEOUT_MAX_MS, LIFECYCLE_TIMEOUT),
);
/**
 * A lifecycle deadline given outside the config file (the CLI's flag, the library's `timeoutMs`), checked
 * like the key. @throws {ConfigError} naming `key`, the value and what is expected.
 */
export function checkLifecycleTimeout(value: unknown, key: string): number {
  const result = v.safeParse(LifecycleTimeoutSchema, value, { abortPipeEarly: true });
  if (result.success) return result.output;
  throw new ConfigError([issueAt(key, value, LIFECYCLE_TIMEOUT)]);
}

const vmmEntries = { lifecycle_timeout_ms: v.optional(LifecycleTimeoutSchema, DEFAULT_LIFECYCLE_TIMEOUT_MS) };

/** A unicast MAC written as six hex bytes (stored lower case), for `mac` and `host_mac`. */
const MAC_TEXT =
  "a unicast MAC address like 02:00:00:00:00:01 (six hex bytes, first byte even, not all zero)";
const MAC_MULTICAST_BIT = 0x01;
const MAC_LOCAL_BIT = 0x02;
const MAC_BYTES = 6;
const macAddress = v.pipe(
  v.string(MAC_TEXT),
  v.regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i, MAC_TEXT),
  v.check((m) => (Number.parseInt(m.slice(0, 2), 16) & MAC_MULTICAST_BIT) === 0, MAC_TEXT),
  v.check((m) => !/^(00:){5}00$/.test(m), MAC_TEXT),
  v.toLowerCase(),
);

/** A random locally administered unicast MAC, as cloud-hypervisor gives a guest without one. */
export function randomMacAddress(): string {
  const mac = crypto.getRandomValues(new Uint8Array(MAC_BYTES));
  mac[0] = (mac[0]! & ~MAC_MULTICAST_BIT) | MAC_LOCAL_BIT;
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

const IPV4 = "an IPv4 address like 192.0.2.1";
const isIpv4 = (text: string) =>
  /^\d{1,3}(\.\d{1,3}){3}$/.test(text) && text.split(".").every((b) => Number(b) <= 255);
const ipv4 = v.pipe(v.string(IPV4), v.check(isIpv4, IPV4));
const MASK = "an IPv4 netmask like 255.255.255.0 (contiguous ones)";
/** The prefix length of a contiguous IPv4 netmask, or -1 when it is not one. */
export function maskPrefixLength(mask: string): number {
  const n = mask.split(".").reduce((acc, b) => acc * 256 + Number(b), 0);
  for (let len = 0; len <= 32; len++) if (n === 2 ** 32 - 2 ** (32 - len)) return len;
  return -1;
}
const netmask = v.pipe(
  v.string(MASK),
  v.check(isIpv4, MASK),
  v.check((m) => maskPrefixLength(m) >= 0, MASK),
);
/** The netmask a host address without `mask` gets (cloud-hypervisor's default). */
export const DEFAULT_NET_MASK = "255.255.255.0";
const IFNAME = "an interface name of 1-15 bytes without /, : or spaces";
const ifname = v.pipe(
  v.string(IFNAME),
  v.check((n) => {
    const bytes = Buffer.byteLength(n);
    return bytes > 0 && bytes < 16 && n !== "." && n !== ".." && !/[/:\s]/.test(n);
  }, IFNAME),
);
/** The guest MTUs a virtio-net device can announce: IPv4's minimum to the config field's maximum. */
export const NET_MTU_MIN = 68;
export const NET_MTU_MAX = 65535;
const MTU = `an integer from ${NET_MTU_MIN} to ${NET_MTU_MAX}`;
const deviceId = v.pipe(
  v.string("a name"),
  v.regex(/^[A-Za-z0-9_-]{1,32}$/, "a name of 1-32 letters, digits, _ or -"),
);

const netEntries = {
  tap: v.optional(ifname),
  mac: v.optional(macAddress),
  ip: v.optional(ipv4),
  mask: v.optional(netmask),
  host_mac: v.optional(macAddress),
  mtu: v.optional(
    v.pipe(v.number(MTU), v.integer(MTU), v.minValue(NET_MTU_MIN, MTU), v.maxValue(NET_MTU_MAX, MTU)),
  ),
  id: v.optional(deviceId),
};
const netTable = v.pipe(
  table(netEntries),
  v.forward(
    v.partialCheck(
      [["ip"], ["mask"]],
      (n) => n.mask === undefined || n.ip !== undefined,
      "an ip to go with it (net[].ip)",
    ),
    ["mask"],
  ),
);
const NETS = "an array of tables ([[net]])";
const net = v.pipe(
  v.array(netTable, NETS),
  v.transform((list) =>
    list.map((n, index) => ({
      ...n,
      mac: n.mac ?? randomMacAddress(),
      ...(n.ip !== undefined ? { mask: n.mask ?? DEFAULT_NET_MASK } : {}),
      id: n.id ?? `net${index}`,
    })),
  ),
  v.check(
    (list) => new Set(list.map((n) => n.id)).size === list.length,
    "net devices with distinct ids (net[].id)",
  ),
);

/** VMADDR_CID_HOST + 1 .. VMADDR_CID_ANY - 1: the CIDs a guest may have. */
export const VSOCK_CID_MIN = 3;
export const VSOCK_CID_MAX = 2 ** 32 - 2;
const CID = `an integer from ${VSOCK_CID_MIN} to ${VSOCK_CID_MAX}`;
const vsockEntries = {
  cid: v.pipe(v.number(CID), v.integer(CID), v.minValue(VSOCK_CID_MIN, CID), v.maxValue(VSOCK_CID_MAX, CID)),
  socket: path,
  id: v.optional(deviceId, "vsock0"),
};

const vmEntries = {
  cpus: v.optional(cpus, {}),
  memory: v.optional(table(memoryEntries), {}),
  payload: v.optional(payload, {}),
  serial: v.optional(serial, {}),
  api: v.optional(table(apiEntries), {}),
  disks: v.optional(disks, []),
  rng: v.optional(table(rngEntries)),
  console: v.optional(consoleTable, {}),
  net: v.optional(net, []),
  vsock: v.optional(table(vsockEntries)),
  vmm: v.optional(table(vmmEntries), {}),
};

/** Every configured device's id: they name the devices in counters, so they must differ. */
function deviceIds(c: { disks: { id: string }[]; net: { id: string }[]; vsock?: { id: string } }): string[] {
  return [...c.disks.map((d) => d.id), ...c.net.map((n) => n.id), ...(c.vsock ? [c.vsock.id] : [])];
}

/** Validates a whole config and applies its defaults; file paths come out as written (load.ts resolves them). */
export const VmConfigSchema = v.pipe(
  table(vmEntries),
  v.check(
    (c) => new Set(deviceIds(c)).size === deviceIds(c).length,
    "distinct device ids across disks, net and vsock (id)",
  ),
);

/** The keys each table accepts, by dotted table name ("" is the top level), for did-you-mean hints. */
export const TABLE_KEYS: Readonly<Record<string, readonly string[]>> = {
  "": Object.keys(vmEntries),
  cpus: Object.keys(cpusEntries),
  memory: Object.keys(memoryEntries),
  payload: Object.keys(payloadEntries),
  serial: Object.keys(serialEntries),
  api: Object.keys(apiEntries),
  disks: Object.keys(diskEntries),
  rng: Object.keys(rngEntries),
  console: Object.keys(consoleEntries),
  net: Object.keys(netEntries),
  vsock: Object.keys(vsockEntries),
  vmm: Object.keys(vmmEntries),
};
