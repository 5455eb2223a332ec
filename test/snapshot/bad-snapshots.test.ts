/**
 * Every kind of bad snapshot is refused with one line that names the file and what is wrong, before
 * anything is created, and the snapshot directory is left exactly as it was; so is a disk image the
 * VM needs that is missing, locked by another VM, or changed since the snapshot.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  closeSync,
  cpSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Vm } from "../../src/index.ts";
import { checksum, type DiskImageEntry, diskImageEntry, type Manifest } from "../../src/snapshot/format.ts";
import { SnapshotError } from "../../src/snapshot/snapshot-error.ts";
import { rawGuestConfig, waitUntil } from "../helpers/guests.ts";

const QUIET = { logLevel: "silent" } as const;
const IMAGE_BYTES = 1 << 20;
const work = mkdtempSync(join(tmpdir(), "bunvmm-bad-snapshot-test-"));
const good = join(work, "good");
let n = 0;
afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(async () => {
  await using vm = await Vm.create(rawGuestConfig("counter", { boot: 1 }), QUIET);
  await vm.boot();
  await waitUntil(() => vm.memory.readU32(0x9000) > 0, "the guest counting");
  await vm.pause();
  await vm.snapshot(good);
});

/** A copy of the good snapshot, damaged by `damage`. */
function damaged(damage: (dir: string) => void): string {
  const dir = join(work, `bad-${n++}`);
  cpSync(good, dir, { recursive: true });
  damage(dir);
  return dir;
}

/**
 * A copy of the good snapshot whose config names `disks` (its checksum fixed), and whose manifest
 * records `images` as the disk images at the snapshot.
 */
function withDisks(disks: object[], images?: DiskImageEntry[]): string {
  return damaged((d) => {
    const path = join(d, "config.json");
    const config = JSON.parse(readFileSync(path, "utf8"));
    config.disks = disks;
    const bytes = new TextEncoder().encode(JSON.stringify(config));
    writeFileSync(path, bytes);
    editManifest(d, (m) => {
      m.files["config.json"] = { bytes: bytes.length, checksum: checksum(bytes) };
      if (images) m.disks = images;
    });
  });
}

/** Every file in `dir` with its bytes' checksum: what "nothing changed on disk" compares. */
function contents(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, checksum(new Uint8Array(readFileSync(join(dir, f))))]),
  );
}

const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
/** Rewrites the manifest (and keeps it valid JSON): for the version and CPUID cases. */
const editManifest = (dir: string, edit: (m: Manifest) => void) => {
  const m = manifestOf(dir);
  edit(m);
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(m));
};

/** Restoring `dir` fails with exactly one line matching `expected`, and leaves `dir` as it was. */
async function refused(dir: string, expected: RegExp): Promise<void> {
  const before = contents(dir);
  const e = await Vm.restore(dir, QUIET).then(
    async (vm) => {
      await vm.shutdown();
      return undefined;
    },
    (err: unknown) => err as Error,
  );
  expect(e).toBeInstanceOf(SnapshotError);
  expect(e!.message).toMatch(expected);
  expect(e!.message).not.toContain("\n");
  expect(contents(dir)).toEqual(before);
}

describe("a bad snapshot is refused with one line and nothing changes", () => {
  test("the good snapshot restores, from a path and from a file:// URL", async () => {
    await using a = await Vm.restore(good, QUIET);
    await using b = await Vm.restore(pathToFileURL(good).href, QUIET);
    expect(a.state).toBe("Paused");
    expect(b.state).toBe("Paused");
  });

  test("a directory that does not exist", async () => {
    await expect(Vm.restore(join(work, "nowhere"), QUIET)).rejects.toThrow(/nowhere does not exist$/);
  });

  test("no manifest: not a snapshot, or its writing did not finish", async () => {
    const dir = damaged((d) => rmSync(join(d, "manifest.json")));
    await refused(dir, /manifest\.json is missing \(not a snapshot, or one whose writing did not finish\)$/);
  });

  test("a missing state file", async () => {
    await refused(
      damaged((d) => rmSync(join(d, "state.json"))),
      /: state\.json is missing$/,
    );
  });

  test("a truncated memory file", async () => {
    const dir = damaged((d) => truncateSync(join(d, "memory.bin"), 4096));
    await refused(dir, /memory\.bin is 4096 bytes; the manifest says 16777216 \(truncated or replaced\)$/);
  });

  test("a checksum mismatch in the config (same length)", async () => {
    const dir = damaged((d) => {
      const path = join(d, "config.json");
      writeFileSync(path, readFileSync(path, "utf8").replace('"boot_vcpus":1', '"boot_vcpus":2'));
    });
    await refused(dir, /config\.json checksum mismatch \(manifest [0-9a-f]{16}, file [0-9a-f]{16}\)/);
  });

  test("a checksum mismatch in guest RAM", async () => {
    const dir = damaged((d) => {
      const [offset] = manifestOf(d).files["memory.bin"]!.extents![0]!;
      const fd = openSync(join(d, "memory.bin"), "r+");
      writeSync(fd, new Uint8Array([0xa5, 0x5a]), 0, 2, offset);
      closeSync(fd);
    });
    await refused(dir, /memory\.bin checksum mismatch/);
  });

  test("another format version", async () => {
    const dir = damaged((d) => editManifest(d, (m) => (m.format_version = 99)));
    await refused(dir, /format version 99; this bunvmm reads version 1$/);
  });

  test("a host that lacks a CPU feature the guest saw", async () => {
    const dir = damaged((d) =>
      editManifest(d, (m) => {
        const leaf7 = m.guest_cpuid.find((e) => e.function === 7 && e.index === 0);
        if (!leaf7) throw new Error("the guest's CPUID has no leaf 7");
        leaf7.ebx = 0xffff_ffff; // every structured-extended feature: no host has them all
      }),
    );
    await refused(
      dir,
      /this host lacks a CPU feature the guest saw \(CPUID\.\(EAX=0x7,ECX=0\):EBX bit \d+\)/,
    );
  });

  test("a host of another CPU vendor", async () => {
    const dir = damaged((d) =>
      editManifest(d, (m) => {
        m.host.cpu_vendor = m.host.cpu_vendor === "AuthenticAMD" ? "GenuineIntel" : "AuthenticAMD";
      }),
    );
    await refused(dir, /: taken on a (AuthenticAMD|GenuineIntel) host; this host is \w+$/);
  });

  test("a disk image the VM needs is missing", async () => {
    const dir = withDisks([{ path: join(work, "gone.img") }]);
    await refused(dir, /disk image .*gone\.img the VM needs is not usable: ENOENT$/);
  });

  test("a disk image another VM holds locked: refused, the image unchanged", async () => {
    const image = join(work, "held.img");
    writeFileSync(image, new Uint8Array(IMAGE_BYTES));
    await using holder = await Vm.create({ ...rawGuestConfig("counter"), disks: [{ path: image }] }, QUIET);
    const dir = withDisks(holder.config.disks);
    const before = readFileSync(image);
    await refused(
      dir,
      new RegExp(
        `^snapshot ${dir}: disks\\.0\\.path = "${image}": disk image ${image} is locked by another process \\(a write lock\\): is another VM using it\\?$`,
      ),
    );
    expect(readFileSync(image).equals(before)).toBe(true);
    expect(holder.state).toBe("Created");
  });

  test("a disk image changed since the snapshot (its mtime or size differs from the manifest's)", async () => {
    const image = join(work, "changed.img");
    writeFileSync(image, new Uint8Array(IMAGE_BYTES));
    const now = diskImageEntry(image);
    const older = withDisks(
      [{ path: image }],
      [{ ...now, mtime_ns: (BigInt(now.mtime_ns) - 1n).toString() }],
    );
    await refused(
      older,
      new RegExp(
        `^snapshot ${older}: disk image ${image} changed since the snapshot \\(${IMAGE_BYTES} bytes modified .*; now ${IMAGE_BYTES} bytes modified .*\\): restore needs the image as the snapshot left it$`,
      ),
    );
    const smaller = withDisks([{ path: image }], [{ ...now, bytes: IMAGE_BYTES / 2 }]);
    await refused(smaller, /disk image .*changed\.img changed since the snapshot \(524288 bytes modified/);
  });

  test("a URL that is not file://", async () => {
    await expect(Vm.restore("http://example.com/snap", QUIET)).rejects.toThrow(
      "snapshot http://example.com/snap: only file:// URLs and paths are supported",
    );
  });
});

test("a snapshot into a non-empty directory is refused and the VM stays paused", async () => {
  await using vm = await Vm.create(rawGuestConfig("counter", { boot: 1 }), QUIET);
  await vm.boot();
  await vm.pause();
  await expect(vm.snapshot(good)).rejects.toThrow(`snapshot destination ${good} is not empty`);
  expect(vm.state).toBe("Paused");
  expect(readdirSync(work).filter((f) => f.includes("partial"))).toEqual([]);
});
