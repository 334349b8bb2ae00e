import type { ConsoleRoute } from '../console/http.ts';
import { applicationRoutes } from './applications.ts';
import { catalogRoutes } from './catalog.ts';
import type { AdminDependencies } from './context.ts';
import { dashboardRoutes } from './dashboard.ts';
import { keyRoutes } from './keys.ts';
import { logRoutes } from './logs.ts';
import { userRoutes } from './users.ts';

export type { AdminDependencies } from './context.ts';

/** Every route of the admin UI (`/admin…`): each one for superusers only. */
export function adminRoutes(deps: AdminDependencies): ConsoleRoute[] {
  const routes = [
    ...dashboardRoutes(deps),
    ...applicationRoutes(deps),
    ...userRoutes(deps),
    ...catalogRoutes(deps),
    ...keyRoutes(deps),
    ...logRoutes(deps),
  ];
  const open = routes.find((route) => route.access !== 'superuser' || !route.path.startsWith('/admin'));
  if (open) throw new Error(`admin route ${open.method} ${open.path} must be for superusers under /admin`);
  return routes;
}
