import { assertNever } from '../../util/assert-never.ts';
import {
  BIDI_CONTROL,
  BIDI_FORMATTING,
  codePoint,
  INVISIBLE_CHARACTER,
} from '../../util/hidden-characters.ts';
import { wellFormed } from '../../util/well-formed.ts';
import type { Branding } from './branding.ts';

/**
 * Server-rendered pages (login, consent, denied, logout, errors): plain HTML, no script (but the
 * logout page that follows the console's own sign-out, which confirms by itself: logout.ts), one
 * inline style sheet. Every interpolated value goes through `escapeHtml`.
 */

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * What `escapeHtml` escapes, and the characters an HTML document must not hold, which become U+FFFD:
 * the control characters but tab, line feed, form feed and carriage return (C0 with NUL, DEL, C1; a
 * character reference would not do, `&#x80;` reads as €) and the noncharacters U+FDD0–U+FDEF, U+FFFE
 * and U+FFFF. A lone surrogate becomes U+FFFD too (`wellFormed`), as UTF-8 would make it.
 */
const NOT_IN_A_DOCUMENT = '\\u0000-\\u0008\\u000b\\u000e-\\u001f\\u007f-\\u009f\\ufdd0-\\ufdef\\ufffe\\uffff';
const ESCAPED = new RegExp(`[&<>"'${NOT_IN_A_DOCUMENT}]`, 'g');
/** The characters of `ESCAPED` that become U+FFFD. */
const REPLACED = new RegExp(`[${NOT_IN_A_DOCUMENT}]`, 'g');

export function escapeHtml(value: unknown): string {
  const text = String(value ?? '');
  return wellFormed(text).replace(ESCAPED, (char) => ESCAPES[char] ?? '\uFFFD');
}

/**
 * What a one-line form field (`<input value="…">`) that shows `value` sends back when left as it
 * is: each character `escapeHtml` writes as U+FFFD as U+FFFD, without the line breaks a browser
 * strips from such a field's value. A form compares it with the stored value it showed: equal, the
 * field was not touched, and the stored value, which the page could not hold, is kept as it is.
 */
export function sentBackUntouched(value: string): string {
  return wellFormed(value)
    .replace(REPLACED, '\uFFFD')
    .replace(/[\r\n]/g, '');
}

/**
 * What a text shown to the reader shows as `[U+202E]`: the bidirectional embeddings, overrides and
 * isolates (U+202A–U+202E, U+2066–U+2069), which within a name make it show as something else (U+202E
 * shows `evil` as `live`), and the invisible characters (`INVISIBLE_CHARACTER`: U+200B, U+00AD, the
 * Hangul fillers, U+2800, the tag characters outside a flag…), which make two names look the same
 * (`admin`, `adm\u200bin`). The marks (U+200E, U+200F, U+061C) stay: right-to-left text needs them,
 * and they reorder nothing; so do the zero-width joiner and non-joiner, which emoji sequences and
 * several scripts need, and the tags of a flag (U+1F3F4 and tags: Scotland's), which draw it.
 */
const SHOWN_AS_CODE_POINT = new RegExp(`${BIDI_FORMATTING.source}|${INVISIBLE_CHARACTER.source}`, 'gu');

/** A text shown to the reader with each of `SHOWN_AS_CODE_POINT` as `[U+202E]`. */
export function showHiddenCharacters(text: string): string {
  return text.replace(SHOWN_AS_CODE_POINT, (char) => `[${codePoint(char)}]`);
}

/**
 * Right-to-left letters (Hebrew, Arabic, Syriac, Thaana, N'Ko and the other right-to-left blocks) and
 * bidirectional controls: a text holding one, shown inline, could move the page's own words and
 * punctuation around it (`<strong>NAME</strong> asks to use…`), so it is isolated in a `<bdi>`.
 */
const NEEDS_ISOLATION = new RegExp(
  `[\\u0590-\\u08ff\\ufb1d-\\ufdff\\ufe70-\\ufefc${BIDI_CONTROL.source.slice(1, -1)}\\u{10800}-\\u{10fff}\\u{1e800}-\\u{1efff}]`,
  'u',
);

/** What a text shown to the reader is changed for: `NEEDS_ISOLATION` or `SHOWN_AS_CODE_POINT`. */
const NEEDS_CARE = new RegExp(`${NEEDS_ISOLATION.source}|${INVISIBLE_CHARACTER.source}`, 'u');

/** A trusted HTML fragment, built only by the helpers in this folder. */
export interface Html {
  readonly html: string;
}

/**
 * Where a value is interpolated: in an element's text (`text`), in the text of an element that holds
 * no other element but that is shown (`title`, `option`: `plain`), in an attribute shown to the reader
 * (`title=`, `alt=`, `aria-label=`, `placeholder=`: `shown`), or where the text is data kept as it is
 * (any other attribute, a `textarea`'s value, `script`, `style`: `data`).
 */
type Slot = 'text' | 'plain' | 'shown' | 'data';

const SHOWN_ATTRIBUTES: ReadonlySet<string> = new Set(['title', 'alt', 'aria-label', 'placeholder']);
const ATTRIBUTE_NAME_CHARACTER = /[^\s"'=<>/]/;
const TEXT_ONLY_ELEMENT = /^<(textarea|script|style|title|option)[\s>]/i;

/**
 * The slot after `out`, the HTML written so far: every `<` and `>` in it is markup (an escaped value
 * holds neither, and an `Html` fragment is whole elements or whole attributes).
 */
function slotAfter(out: string): Slot {
  const open = out.lastIndexOf('<');
  const close = out.lastIndexOf('>');
  if (open > close || close === -1) {
    const attribute = openAttributeName(out, open);
    if (attribute !== undefined) return SHOWN_ATTRIBUTES.has(attribute.toLowerCase()) ? 'shown' : 'data';
    if (open > close) return 'data';
    return 'text';
  }
  const element = TEXT_ONLY_ELEMENT.exec(out.slice(open, close + 1))?.[1]?.toLowerCase();
  if (element === undefined) return 'text';
  return element === 'title' || element === 'option' ? 'plain' : 'data';
}

/**
 * The name of the double-quoted attribute value `out` ends in, after `from` (`title` of `<a title="x`),
 * or undefined. What `/([^\s"'=<>/]+)="[^"]*$/` finds, read back from the last `"` once: that
 * expression tried each character of a long run of such characters before a text needing care (a
 * value without spaces earlier in the tag) again over the rest of the run, about 6 s for 56 KiB.
 */
function openAttributeName(out: string, from: number): string | undefined {
  const quote = out.lastIndexOf('"');
  const equals = quote - 1;
  if (quote <= from || out[equals] !== '=') return undefined;
  let start = equals;
  while (start > from + 1 && ATTRIBUTE_NAME_CHARACTER.test(out[start - 1]!)) start -= 1;
  return start === equals ? undefined : out.slice(start, equals);
}

/**
 * Tagged template: interpolations are escaped unless they are `Html` fragments (or arrays of them).
 * A text shown to the reader has its bidirectional embeddings, overrides and isolates and its
 * invisible characters shown as `[U+202E]`, `[U+200B]`; in an element's text, one with right-to-left
 * letters or bidirectional controls is isolated in a `<bdi>`, so that a name from Alliance Auth, EVE or
 * an operator neither shows as another nor reorders the page's words around it. Attribute values and
 * a textarea's text are kept as they are (escaped): a form sent back unchanged sends the same value.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((value, index) => {
    out += render(value, out) + strings[index + 1]!;
  });
  return { html: out };
}

function render(value: unknown, before: string): string {
  if (Array.isArray(value)) return value.map((item) => render(item, before)).join('');
  if (value && typeof value === 'object' && 'html' in value) return (value as Html).html;
  if (value === false || value === null || value === undefined) return '';
  const text = String(value);
  // Most text holds no right-to-left letter, bidirectional control or invisible character: escaped,
  // wherever it is, after this one test.
  if (!NEEDS_CARE.test(text)) return escapeHtml(text);
  const slot = slotAfter(before);
  switch (slot) {
    case 'data':
      return escapeHtml(text);
    case 'plain':
    case 'shown':
      return escapeHtml(showHiddenCharacters(text));
    case 'text': {
      const shown = escapeHtml(showHiddenCharacters(text));
      return NEEDS_ISOLATION.test(text) ? `<bdi>${shown}</bdi>` : shown;
    }
    default:
      return assertNever(slot);
  }
}

/**
 * The one style sheet of the provider's pages (sign-in, consent, logout, errors, landing, account,
 * admin). Colours from the branding arrive as custom properties; everything reflows down to 375 px,
 * and a long name without spaces wraps (in a table's name column, past 18rem) rather than widening it.
 * A table's sentence (an audit event, a delivery's detail) wraps anywhere past 14rem. An identifier in
 * a table (kid, client_id) breaks anywhere but keeps 16 characters a line, so that a narrow table
 * scrolls in its box rather than squeezing it to a column of letters. A listing's filters are a grid
 * (two columns on a phone) whose fields share rows (label, control, hint, error), so that the controls
 * of a row line up whatever their labels and hints.
 */
const STYLE = `
:root{--accent:#2459d4;--accent-text:#fff;--accent-edge:#2459d4;--link:#1f4fbf}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330;line-height:1.45}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5rem;z-index:1}
.skip:focus{left:.5rem}
header.site{background:#fff;border-top:4px solid var(--accent);box-shadow:0 1px 2px rgba(0,0,0,.08)}
.brand{max-width:64rem;margin:0 auto;padding:.6rem 1rem;display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:.5rem}
.brand>a{display:flex;align-items:center;gap:.6rem;color:inherit;text-decoration:none;font-weight:700;font-size:1.1rem}
.brand img{height:2rem;width:auto;max-width:8rem}
.brand nav ul{display:flex;flex-wrap:wrap;gap:.25rem 1rem;list-style:none;margin:0;padding:0}
main{max-width:26rem;margin:2rem auto;padding:1.5rem 2rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}
main.wide{max-width:64rem}
main{overflow-wrap:anywhere}
main table{overflow-wrap:normal}
td.name a{display:inline-block;max-width:18rem;overflow-wrap:anywhere}
td.prose{min-width:14rem;overflow-wrap:anywhere}
h1{font-size:1.4rem;margin-top:0}
h2{font-size:1.15rem;margin-top:1.75rem}
h3{font-size:1rem}
a{color:var(--link)}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
label.inline{display:inline-flex;gap:.4rem;align-items:center;font-weight:400;margin:.25rem 1rem .25rem 0}
input[type=text],input[type=password],input[type=url],input[type=number],input[type=search],input[type=datetime-local],select,textarea{width:100%;padding:.55rem;font-size:1rem;border:1px solid #6b7588;border-radius:.25rem;background:#fff;color:inherit;font-family:inherit}
textarea{min-height:5rem}
button,.button{display:inline-block;margin-top:1rem;padding:.6rem 1.1rem;font-size:1rem;border-radius:.25rem;border:1px solid var(--accent-edge);background:var(--accent);color:var(--accent-text);cursor:pointer;text-decoration:none;font-family:inherit}
button.secondary,.button.secondary{background:#fff;color:var(--link);border-color:currentColor}
button.danger,.button.danger{background:#b3261e;border-color:#b3261e;color:#fff}
button.link{background:none;border:none;color:var(--link);text-decoration:underline;padding:0;margin:0}
:focus-visible{outline:3px solid var(--link);outline-offset:2px}
.alert{padding:.75rem;border-radius:.25rem;background:#fdecea;color:#7a1a12;border:1px solid #e0a39c}
.ok{padding:.75rem;border-radius:.25rem;background:#e8f5ec;color:#174d2a;border:1px solid #9ccfae}
.warn{padding:.75rem;border-radius:.25rem;background:#fff6e0;color:#5c4400;border:1px solid #e5c46b}
.note,.hint{color:#4a5468;font-size:.9rem}
.field-error{color:#7a1a12;font-size:.9rem;margin:.25rem 0 0}
.actions{display:flex;gap:.75rem;flex-wrap:wrap;align-items:center}
.actions>a:not(.button){margin-top:1rem}
.inline-form{display:inline}
ul{padding-left:1.25rem}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;vertical-align:top;padding:.4rem .5rem;border-bottom:1px solid #e1e4ea}
th{white-space:nowrap;font-weight:600}
caption{text-align:left;font-weight:600;padding:.25rem 0}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88rem;word-break:break-all}
td code{display:inline-block;min-width:16ch}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:1rem}
.card{border:1px solid #e1e4ea;border-radius:.4rem;padding:.75rem 1rem}
.card h2,.card h3{margin:.1rem 0 .5rem}
.big{font-size:1.6rem;font-weight:700}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:1rem;font-size:.8rem;border:1px solid #6b7588}
.logo{width:4rem;height:4rem;object-fit:contain;float:right;margin:0 0 .5rem .75rem}
.portrait{width:4rem;height:4rem;border-radius:.25rem;float:left;margin:0 .75rem .5rem 0}
.filters{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,9.5rem),1fr));gap:0 1rem;margin-bottom:.5rem}
.filters>div{display:grid;grid-row:span 4;grid-template-rows:subgrid;min-width:0;padding-bottom:.5rem}
.filters label{margin:.5rem 0 .25rem;align-self:end}
.filters button{grid-row:2;margin-top:0;align-self:start;justify-self:start}
.filters .hint,.filters .field-error{margin:.25rem 0 0}
.pager{display:flex;gap:1rem;margin-top:1rem}
.secret{font-size:1rem;padding:.6rem;border:1px dashed #6b7588;background:#f7f8fa}
.qr svg{width:13rem;height:13rem;background:#fff}
.codes{columns:2;font-family:ui-monospace,monospace}
fieldset{border:1px solid #d5d9e0;border-radius:.25rem;margin:.75rem 0;padding:.5rem .75rem}
legend{font-weight:600;padding:0 .25rem}
.admin-nav ul{display:flex;flex-wrap:wrap;gap:.25rem .5rem;list-style:none;padding:0;margin:0 0 1.25rem;border-bottom:1px solid #e1e4ea;padding-bottom:.75rem}
.admin-nav a{display:inline-block;padding:.2rem .5rem;border-radius:.25rem}
.admin-nav a[aria-current=page]{background:var(--accent);color:var(--accent-text);box-shadow:inset 0 0 0 1px var(--accent-edge);text-decoration:none}
dl.facts{display:grid;grid-template-columns:minmax(8rem,max-content) 1fr;gap:.35rem 1rem;margin:0}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0;word-break:break-word}
@media (max-width:30rem){dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:.5rem}}
footer.site{max-width:64rem;margin:1rem auto 2rem;padding:0 1rem;color:#4a5468;font-size:.875rem;text-align:center}
@media (max-width:30rem){main{margin:0;border-radius:0;box-shadow:none;padding:1rem}h1{font-size:1.25rem}}
`;

/** What every provider page is rendered with: the community's look and the request it answers. */
export interface PageContext {
  branding: Branding;
  requestId?: string;
}

/** The page context of a request: the branding, and the request id its error pages show. */
export function pageContext(branding: Branding, request?: { state?: unknown }): PageContext {
  const requestId = (request?.state as { requestId?: unknown } | undefined)?.requestId;
  return typeof requestId === 'string' ? { branding, requestId } : { branding };
}

export interface PageOptions {
  lang?: string;
  /** A stylesheet used instead of the provider pages' own (the demo relying party has its own look). */
  style?: string;
  /** The community's look: header, title suffix, colours, help link. Absent for the demo's pages. */
  branding?: Branding;
  /** Shown in the footer of error pages, for support. */
  requestId?: string;
  /** The admin and account pages use the full width. */
  wide?: boolean;
  /** Links in the header (account and admin pages). */
  nav?: Html;
  /**
   * A path of this site the browser goes on to at once (`<meta http-equiv="refresh">`, no script): a
   * hop page, whose next request starts on this site.
   */
  refreshTo?: string;
}

function brandingStyle(branding: Branding): string {
  return `:root{--accent:${branding.accentColor};--accent-text:${branding.accentTextColor};--accent-edge:${branding.accentEdgeColor};--link:${branding.linkColor}}`;
}

export function page(title: string, body: Html, options: PageOptions = {}): string {
  const { lang = 'en', style = STYLE, branding } = options;
  // The landing page's title is the community's name already: not "Name · Name". A form sent back
  // with a field marked invalid says so in the title, the first thing a screen reader reads of it.
  const refused = body.html.includes('aria-invalid="true"') ? 'Error: ' : '';
  const fullTitle = refused + (branding && title !== branding.name ? `${title} · ${branding.name}` : title);
  const header = branding
    ? html`<a class="skip" href="#content">Skip to content</a>
        <header class="site">
          <div class="brand">
            <a href="/"
              >${branding.logoUrl ? html`<img src="${branding.logoUrl}" alt="" />` : ''}<span
                >${branding.name}</span
              ></a
            >
            ${options.nav ?? ''}
          </div>
        </header>`
    : html``;
  const footer =
    branding && (branding.supportUrl || options.requestId)
      ? html`<footer class="site">
          ${branding.supportUrl ? html`<p><a href="${branding.supportUrl}">Help and support</a></p>` : ''}
          ${
            options.requestId
              ? html`<p>
                  Request id <code id="request-id">${options.requestId}</code> (quote it when you ask for
                  help)
                </p>`
              : ''
          }
        </footer>`
      : html``;
  return `<!DOCTYPE html>
<html lang="${escapeHtml(lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
${options.refreshTo === undefined ? '' : `<meta http-equiv="refresh" content="0; url=${escapeHtml(options.refreshTo)}">\n`}<title>${escapeHtml(showHiddenCharacters(fullTitle))}</title>
<style>${style}${branding ? brandingStyle(branding) : ''}</style>
</head>
<body>
${header.html}
<main id="content"${options.wide ? ' class="wide"' : ''}>
${body.html}
</main>
${footer.html}
</body>
</html>
`;
}
