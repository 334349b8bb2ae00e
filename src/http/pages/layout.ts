/**
 * Server-rendered pages (login, consent, denied, logout, errors): plain HTML, no script, one inline
 * style sheet. Every interpolated value goes through `escapeHtml`.
 */

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (char) => ESCAPES[char]!);
}

/** A trusted HTML fragment, built only by the helpers in this folder. */
export interface Html {
  readonly html: string;
}

/** Tagged template: interpolations are escaped unless they are `Html` fragments (or arrays of them). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((value, index) => {
    out += render(value) + strings[index + 1]!;
  });
  return { html: out };
}

function render(value: unknown): string {
  if (Array.isArray(value)) return value.map(render).join('');
  if (value && typeof value === 'object' && 'html' in value) return (value as Html).html;
  if (value === false || value === null || value === undefined) return '';
  return escapeHtml(value);
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:26rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.4rem;margin-top:0}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.55rem;font-size:1rem;border:1px solid #8a94a6;border-radius:.25rem}
button{margin-top:1rem;padding:.6rem 1.1rem;font-size:1rem;border-radius:.25rem;border:1px solid #1f4fbf;background:#2459d4;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1f4fbf}
button:focus,input:focus{outline:3px solid #f0b400;outline-offset:1px}
.alert{padding:.75rem;border-radius:.25rem;background:#fdecea;color:#7a1a12;border:1px solid #e0a39c}
.actions{display:flex;gap:.75rem;flex-wrap:wrap}
ul{padding-left:1.25rem}
`;

export interface PageOptions {
  lang?: string;
  /** A stylesheet used instead of the provider pages' own (the demo relying party has its own look). */
  style?: string;
}

export function page(title: string, body: Html, options: PageOptions = {}): string {
  const { lang = 'en', style = STYLE } = options;
  return `<!DOCTYPE html>
<html lang="${escapeHtml(lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${style}</style>
</head>
<body>
<main>
${body.html}
</main>
</body>
</html>
`;
}
