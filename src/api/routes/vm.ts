/**
 * The `vm.*` endpoints. Each lifecycle operation goes straight onto the Vm's serialised state machine
 * ([serialised-lifecycle]): no lock here, no queue of our own, and the answer is sent when the operation
 * has finished, so the state a client is told is the state the vCPUs are in. Each one that succeeds is
 * logged at info ("API vm.pause: paused"), like a reboot or a power-off, so the log says who changed the VM.
 * @module
 */
import { jsonResponse } from "../api-error.ts";
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

export const vmRoutes: Readonly<Record<string, Route>> = {
  "vm.info": { method: "GET", handle: ({ vm }) => jsonResponse(200, vmInfo(vm)) },
  "vm.counters": { method: "GET", handle: ({ vm }) => jsonResponse(200, vmCounters(vm.counters())) },
  "vm.pause": action("vm.pause", "paused", ({ vm }) => vm.pause()),
  "vm.resume": action("vm.resume", "resumed", ({ vm }) => vm.resume()),
  "vm.reboot": action("vm.reboot", "rebooted", ({ vm }) => vm.reboot()),
  "vm.power-button": action("vm.power-button", "power button pressed", ({ vm }) => vm.powerButton()),
  // Idempotent: shutting down a VM that already stopped answers 204, like the library's shutdown().
  "vm.shutdown": action("vm.shutdown", "shut down", ({ vm }) => vm.shutdown()),
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
