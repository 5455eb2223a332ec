/**
 * Network namespaces for the virtio-net tests: `withNetns(fn)` creates a namespace named
 * `bunvmm-test-<pid>-<n>` with `ip netns add`, runs `fn`, and deletes it afterwards whatever happened
 * (deleting the namespace also deletes every interface inside it, so a TAP made there cannot outlive
 * the test). Nothing is configured outside the namespace.
 *
 * `enter(fn)` runs a synchronous function with the calling thread switched into the namespace
 * (setns(2) on the thread only, through bun:ffi) and switches back before returning: a TAP created by
 * TUNSETIFF there belongs to the namespace, and its fd keeps working from any thread afterwards.
 *
 * Threads: the test's thread. Needs root.
 */
import { dlopen, FFIType } from "bun:ffi";
import { cString, errno, libc, O_CLOEXEC, O_RDONLY } from "../../ffi/libc.ts";
import { LibcError } from "../../src/sys/libc-error.ts";

/** setns(2)'s nstype for a network namespace (<sched.h>). */
const CLONE_NEWNET = 0x4000_0000;
export const NETNS_PREFIX = "bunvmm-test-";

const sched = dlopen("libc.so.6", {
  setns: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
}).symbols;

let created = 0;

export interface Netns {
  readonly name: string;
  /** Runs a command inside the namespace (`ip netns exec`); throws with its stderr when it fails. */
  run(argv: string[]): string;
  /** Spawns a long-running command inside the namespace. */
  spawn(argv: string[]): ReturnType<typeof Bun.spawn>;
  /** Runs `fn` with this thread in the namespace. */
  enter<T>(fn: () => T): T;
}

function openNs(path: string): number {
  const fd = libc.open(cString(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) throw new LibcError(`open ${path}`, errno());
  return fd;
}

function setns(fd: number, what: string): void {
  if (sched.setns(fd, CLONE_NEWNET) !== 0) throw new LibcError(`setns(${what})`, errno());
}

function sh(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

/** Names of namespaces this process created that still exist. */
export function leftoverNamespaces(): string[] {
  const mine = `${NETNS_PREFIX}${process.pid}-`;
  return sh(["ip", "netns", "list"])
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => n.startsWith(mine));
}

export async function withNetns<T>(fn: (ns: Netns) => T | Promise<T>): Promise<T> {
  const name = `${NETNS_PREFIX}${process.pid}-${created++}`;
  sh(["ip", "netns", "add", name]);
  try {
    const exec = (argv: string[]) => ["ip", "netns", "exec", name, ...argv];
    const ns: Netns = {
      name,
      run: (argv) => sh(exec(argv)),
      spawn: (argv) => Bun.spawn(exec(argv), { stdout: "pipe", stderr: "pipe" }),
      enter<R>(inner: () => R): R {
        const home = openNs("/proc/thread-self/ns/net");
        const target = openNs(`/var/run/netns/${name}`);
        try {
          setns(target, name);
          try {
            return inner();
          } finally {
            setns(home, "back to the test's namespace");
          }
        } finally {
          libc.close(target);
          libc.close(home);
        }
      },
    };
    return await fn(ns);
  } finally {
    sh(["ip", "netns", "delete", name]);
  }
}
