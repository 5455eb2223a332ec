/**
 * The route table: endpoint name (the path after /api/v1/) to its route. cloud-hypervisor's names;
 * docs/openapi.yaml describes exactly these (test/api/openapi.test.ts checks that both agree).
 * @module
 */
import type { Route } from "./route.ts";
import { vmRoutes } from "./vm.ts";
import { vmmRoutes } from "./vmm.ts";

export { type HttpMethod, noContent, type Route, type RouteContext } from "./route.ts";

/** Every path is API_ROOT + "/" + an endpoint name. */
export const API_ROOT = "/api/v1";

export const ROUTES: Readonly<Record<string, Route>> = { ...vmmRoutes, ...vmRoutes };
