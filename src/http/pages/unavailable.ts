import { html, page } from './layout.ts';

/** The 503 page of a request that could not reach the database: nothing is wrong with the request. */
export function unavailablePage(): string {
  return page(
    'Temporarily unavailable',
    html`<h1>Temporarily unavailable</h1>
      <p class="alert" role="alert">The sign-in service cannot reach its database right now.</p>
      <p>Nothing is wrong with your request. Try again in a few seconds.</p>`,
  );
}
