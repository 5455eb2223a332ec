import { describe, expect, test } from "bun:test";
import { didYouMean, editDistance } from "../../src/config/_did-you-mean.ts";

describe("editDistance", () => {
  test.each([
    ["", "", 0],
    ["abc", "abc", 0],
    ["abc", "", 3],
    ["", "abc", 3],
    ["kitten", "sitting", 3],
    ["boot_vcpu", "boot_vcpus", 1], // deletion
    ["kernal", "kernel", 1], // substitution
    ["mdoe", "mode", 1], // adjacent swap counts once
    ["ca", "abc", 3], // optimal string alignment: a swapped pair is not edited again
  ] as const)("editDistance(%p, %p) is %p", (a, b, distance) => {
    expect(editDistance(a, b)).toBe(distance);
    expect(editDistance(b, a)).toBe(distance);
  });
});

describe("didYouMean", () => {
  const CPUS = ["boot_vcpus", "max_vcpus", "hide_features"];
  const SERIAL = ["mode", "file"];
  const TOP = ["cpus", "memory", "payload", "serial", "api"];
  test.each([
    ["boot_vcpu", CPUS, "boot_vcpus"],
    ["BOOT_VCPUS", CPUS, "boot_vcpus"],
    ["boot-vcpus", CPUS, "boot_vcpus"],
    ["max_cpus", CPUS, "max_vcpus"],
    ["mdoe", SERIAL, "mode"],
    ["fil", SERIAL, "file"],
    ["cpu", TOP, "cpus"],
    ["memroy", TOP, "memory"],
    ["vcpus", CPUS, undefined], // too far from both
    ["fi", SERIAL, undefined], // short keys allow one edit only
    ["xyz", TOP, undefined],
    ["anything", [], undefined],
  ] as const)("didYouMean(%p) among %p is %p", (word, candidates, expected) => {
    expect(didYouMean(word, candidates)).toBe(expected);
  });
});
