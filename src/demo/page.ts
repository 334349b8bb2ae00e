import { html, type Html, page } from '../http/pages/layout.ts';

export { html, type Html };

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:52rem;margin:2rem auto;padding:2rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.4rem;margin-top:0}
h2{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid #e1e4ea}
th{white-space:nowrap;font-weight:600}
td code{white-space:pre-wrap;word-break:break-all}
.note{color:#4a5468;font-size:.9rem}
.alert{padding:.75rem;border-radius:.25rem;background:#fdecea;color:#7a1a12;border:1px solid #e0a39c}
.ok{padding:.75rem;border-radius:.25rem;background:#e8f5ec;color:#174d2a;border:1px solid #9ccfae}
a{color:#1f4fbf}
`;

/** The demo relying party's pages: plain HTML, no script, every value escaped. */
export function demoPage(title: string, body: Html): string {
  return page(
    title,
    html`<p class="note">aa-oidc demo relying party (development mode)</p>
      ${body}`,
    {
      style: STYLE,
    },
  );
}

/** A claim value as shown in a table cell: strings as they are, everything else as JSON. */
function claimText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 1);
}

const TIME_CLAIMS = new Set(['exp', 'iat', 'auth_time', 'nbf', 'updated_at']);

export function claimsTable(claims: Record<string, unknown>): Html {
  const rows = Object.keys(claims)
    .sort()
    .map((name) => {
      const value = claims[name];
      const when =
        TIME_CLAIMS.has(name) && typeof value === 'number'
          ? html` <span class="note">(${new Date(value * 1000).toISOString()})</span>`
          : '';
      return html`<tr>
        <th scope="row">${name}</th>
        <td><code>${claimText(value)}</code>${when}</td>
      </tr>`;
    });
  return html`<table>
    <tbody>
      ${rows}
    </tbody>
  </table>`;
}
