/**
 * The `vm.*` endpoints. Each lifecycle operation goes straight onto the Vm's serialised state machine
 * ([serialised-lifecycle]): no lock here, no queue of our own, and the answer is sent when the operation has finished,
 * so the state a client is told is the state the vCPUs are in.
 * @module
 */
import { jsonResponse } from "../api-error.ts";
import { parseJsonBody } from "../request-body.ts";
import { vmCounters, vmInfo, vmResizeSchema } from "../wire.ts";
import { noContent, type Route, type RouteContext } from "./route.ts";

/** A PUT that runs one Vm operation and answers 204. */
function action(op: (ctx: RouteContext) => Promise<unknown>): Route {
  return {
    method: "PUT",
    async handle(ctx) {
      await op(ctx);
      return noContent();
    },
  };
}

export const vmRoutes: Readonly<Record<string, Route>> = {
  "vm.info": { method: "GET", handle: ({ vm }) => jsonResponse(200, vmInfo(vm)) },
  "vm.counters": { method: "GET", handle: ({ vm }) => jsonResponse(200, vmCounters(vm.counters())) },
  "vm.pause": action(({ vm }) => vm.pause()),
  "vm.resume": action(({ vm }) => vm.resume()),
  "vm.reboot": action(({ vm }) => vm.reboot()),
  "vm.power-button": action(({ vm }) => vm.powerButton()),
  // Idempotent: shutting down a VM that already stopped answers 204, like the library's shutdown().
  "vm.shutdown": action(({ vm }) => vm.shutdown()),
  "vm.resize": {
    method: "PUT",
    takesBody: true,
    async handle({ vm }, body) {
      const { desired_vcpus } = parseJsonBody(body, vmResizeSchema(vm.config.cpus.max_vcpus), "VmResize");
      await vm.resize(desired_vcpus);
      return noContent();
    },
  },
};
