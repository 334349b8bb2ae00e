import type { ConsoleRoute } from '../console/http.ts';
import { html } from '../http/pages/layout.ts';

/** The account page of every signed-in user (`/account`). */
export function accountRoutes(): ConsoleRoute[] {
  return [
    {
      method: 'GET',
      path: '/account',
      access: 'signed_in',
      handle({ visitor, render }) {
        render(
          'Your account',
          html`<h1>Your account</h1>
            <p>Signed in as <strong>${visitor!.username}</strong>.</p>`,
        );
      },
    },
  ];
}
