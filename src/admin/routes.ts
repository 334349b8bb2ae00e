import type { ConsoleRoute } from '../console/http.ts';
import { html } from '../http/pages/layout.ts';

/** The admin UI (`/admin`), for superusers only. */
export function adminRoutes(): ConsoleRoute[] {
  return [
    {
      method: 'GET',
      path: '/admin',
      access: 'superuser',
      handle({ render }) {
        render('Administration', html`<h1>Administration</h1>`);
      },
    },
  ];
}
