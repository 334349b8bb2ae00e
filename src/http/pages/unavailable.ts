import { assertNever } from '../../util/assert-never.ts';
import { html, type Html, page, type PageContext } from './layout.ts';

/**
 * Why a request is answered 503: the database is down, busy or unreachable (`outage`), or it could
 * not do what the request needed for another reason, a constraint, a trigger, a bug (`fault`), which
 * the next try may get past (a replayed code whose grant could not be revoked is revoked again).
 */
export type UnavailableCause = 'outage' | 'fault';

/**
 * The 503 page of a request the database failed: an outage (nothing is wrong with the request) or a
 * fault of the database that is no outage, each told as what it is. It carries the community's look
 * and the request id, as every other page does.
 */
export function unavailablePage(context: PageContext, cause: UnavailableCause): string {
  return page(
    'Temporarily unavailable',
    html`<h1>Temporarily unavailable</h1>
      ${explanationOf(cause)}`,
    { branding: context.branding, ...(context.requestId && { requestId: context.requestId }) },
  );
}

function explanationOf(cause: UnavailableCause): Html {
  switch (cause) {
    case 'outage':
      return html`<p class="alert" role="alert">The sign-in service cannot reach its database right now.</p>
        <p>Nothing is wrong with your request. Try again in a few seconds.</p>`;
    case 'fault':
      return html`<p class="alert" role="alert">The sign-in service could not complete the request.</p>
        <p>Try again in a few seconds. If it keeps happening, tell your community's administrators.</p>`;
    default:
      return assertNever(cause);
  }
}
