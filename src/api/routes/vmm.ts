/**
 * The `vmm.*` endpoints: ping, and shutdown (the VM, then the API server itself; in `bunvmm run` the
 * process then exits 0).
 * @module
 */
import { jsonResponse } from "../api-error.ts";
import { vmmPing } from "../wire.ts";
import { noContent, type Route } from "./route.ts";

export const vmmRoutes: Readonly<Record<string, Route>> = {
  "vmm.ping": { method: "GET", handle: () => jsonResponse(200, vmmPing()) },
  "vmm.shutdown": {
    method: "PUT",
    async handle({ vm, log, closeServer }) {
      await vm.shutdown();
      log.info("API vmm.shutdown: the VM is shut down; the API server stops");
      closeServer(); // graceful: this answer is sent before the socket goes away
      return noContent();
    },
  },
};
