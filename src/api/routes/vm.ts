/**
 * The `vm.*` endpoints. Each lifecycle operation goes straight onto the Vm's serialised state machine
 * ([serialised-lifecycle]): no lock here, no queue of our own, and the answer is sent when the operation
 * has finished, so the state a client is told is the state the vCPUs are in. Each one that succeeds is
 * logged at info ("API vm.pause: paused"), like a reboot or a power-off, so the log says who changed the VM.
 * @module
 */
import { fileURLToPath } from "node:url";
import * as v from "valibot";
import { SnapshotError } from "../../snapshot/snapshot-error.ts";
import { ApiError, jsonResponse } from "../api-error.ts";
import { parseJsonBody } from "../request-body.ts";
import { vmCounters, vmInfo, vmResizeSchema } from "../wire.ts";
import { noContent, type Route, type RouteContext } from "./route.ts";

/** A PUT that runs one Vm operation, logs `outcome` at info, and answers 204. */
function action(endpoint: string, outcome: string, op: (ctx: RouteContext) => Promise<unknown>): Route {
  return {
    method: "PUT",
    async handle(ctx) {
      await op(ctx);
      ctx.log.info(`API ${endpoint}: ${outcome}`);
      return noContent();
    },
  };
}

/** HTTP 400: a request the server understood and will not carry out as given. */
const STATUS_BAD_REQUEST = 400;

/** cloud-hypervisor's VmSnapshotConfig: `{"destination_url": "file:///dir"}`. */
const vmSnapshotSchema = v.strictObject({
  destination_url: v.pipe(
    v.string(`a file:// URL naming a new or empty directory, like "file:///var/snap"`),
    v.startsWith("file://", `a file:// URL naming a new or empty directory, like "file:///var/snap"`),
  ),
});

export const vmRoutes: Readonly<Record<string, Route>> = {
  "vm.info": { method: "GET", handle: ({ vm }) => jsonResponse(200, vmInfo(vm)) },
  "vm.counters": { method: "GET", handle: ({ vm }) => jsonResponse(200, vmCounters(vm.counters())) },
  "vm.pause": action("vm.pause", "paused", ({ vm }) => vm.pause()),
  "vm.resume": action("vm.resume", "resumed", ({ vm }) => vm.resume()),
  "vm.reboot": action("vm.reboot", "rebooted", ({ vm }) => vm.reboot()),
  "vm.power-button": action("vm.power-button", "power button pressed", ({ vm }) => vm.powerButton()),
  // Idempotent: shutting down a VM that already stopped answers 204, like the library's shutdown().
  "vm.shutdown": action("vm.shutdown", "shut down", ({ vm }) => vm.shutdown()),
  // Only a Paused VM is snapshotted (405 otherwise, as cloud-hypervisor); the answer comes when the
  // snapshot directory is complete on disk. A destination in use is a 400.
  "vm.snapshot": {
    method: "PUT",
    takesBody: true,
    async handle({ vm, log }, body) {
      const { destination_url } = parseJsonBody(body, vmSnapshotSchema, "VmSnapshotConfig");
      try {
        const stats = await vm.snapshot(fileURLToPath(destination_url));
        log.info(`API vm.snapshot: written to ${stats.dir} in ${stats.ms.toFixed(0)} ms`);
      } catch (e) {
        if (e instanceof SnapshotError) throw new ApiError(STATUS_BAD_REQUEST, e.message);
        throw e;
      }
      return noContent();
    },
  },
  "vm.resize": {
    method: "PUT",
    takesBody: true,
    async handle({ vm, log }, body) {
      const { desired_vcpus } = parseJsonBody(body, vmResizeSchema(vm.config.cpus.max_vcpus), "VmResize");
      const before = vm.vcpuCount;
      await vm.resize(desired_vcpus);
      log.info(
        desired_vcpus < before
          ? `API vm.resize: ${before} -> ${desired_vcpus} vCPUs, removal pending until the guest ejects`
          : `API vm.resize: ${before} -> ${desired_vcpus} vCPUs`,
      );
      return noContent();
    },
  },
};
