import { html, type Html, sentBackUntouched } from '../http/pages/layout.ts';
import { CSRF_FIELD, type ConsoleSession } from './session.ts';

/**
 * Small HTML pieces the account and admin pages share. Every field has a label bound to it; an error
 * is shown at its field, referenced by `aria-describedby`, and the field is marked invalid.
 */

export function csrfField(session: ConsoleSession | undefined): Html {
  return html`<input type="hidden" name="${CSRF_FIELD}" value="${session?.csrfToken ?? ''}" />`;
}

/** `2024-05-01 12:00:07 UTC`, or an em dash for nothing. */
export function formatTime(epochMs: number | null | undefined): string {
  if (epochMs === null || epochMs === undefined || !Number.isFinite(epochMs)) return '—';
  return `${new Date(epochMs).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

export interface FieldOptions {
  type?: 'text' | 'password' | 'url' | 'number' | 'search';
  hint?: string;
  error?: string;
  required?: boolean;
  autocomplete?: string;
  inputmode?: string;
  maxlength?: number;
  pattern?: string;
  /** The bounds and step of a number field, those the server's validation enforces. */
  min?: number;
  max?: number;
  step?: number;
  /**
   * Takes the focus when the page loads: the field a refused form is about, so that the error beside
   * it is in view and read, wherever on a long page the form is.
   */
  autofocus?: boolean;
}

function describedBy(name: string, options: { hint?: string; error?: string }): Html | '' {
  const ids = [options.hint ? `${name}-hint` : '', options.error ? `${name}-error` : ''].filter(Boolean);
  return ids.length > 0 ? html` aria-describedby="${ids.join(' ')}"` : '';
}

function fieldNotes(name: string, options: { hint?: string; error?: string }): Html {
  return html`${options.hint ? html`<p class="hint" id="${name}-hint">${options.hint}</p>` : ''}${
    options.error ? html`<p class="field-error" id="${name}-error">${options.error}</p>` : ''
  }`;
}

/**
 * A refusal about a form as a whole (no field of it is at fault: the record changed meanwhile, the
 * change is not possible). With `focus`, it takes the focus as a field at fault would, so that a
 * keyboard or screen-reader user learns of it; without, another element of the page has the focus.
 */
export function formAlert(message: Html | string, options: { focus?: boolean; id?: string } = {}): Html {
  const id = options.id ? html` id="${options.id}"` : '';
  const focus = options.focus === false ? '' : html` tabindex="-1" autofocus`;
  return html`<p class="alert" role="alert" ${id}${focus}>${message}</p>`;
}

export function textField(
  label: string,
  name: string,
  value: string | number | null,
  options: FieldOptions = {},
): Html {
  return html`<label for="${name}">${label}</label>
    <input
      type="${options.type ?? 'text'}"
      id="${name}"
      name="${name}"
      value="${value ?? ''}"
      ${options.required ? html`required` : ''}
      ${options.autocomplete ? html`autocomplete="${options.autocomplete}"` : ''}
      ${options.inputmode ? html`inputmode="${options.inputmode}"` : ''}
      ${options.maxlength ? html`maxlength="${options.maxlength}"` : ''}
      ${options.pattern ? html`pattern="${options.pattern}"` : ''}
      ${options.min === undefined ? '' : html`min="${options.min}"`}
      ${options.max === undefined ? '' : html`max="${options.max}"`}
      ${options.step === undefined ? '' : html`step="${options.step}"`}
      ${options.autofocus ? html`autofocus` : ''}
      ${options.error ? html`aria-invalid="true"` : ''}${describedBy(name, options)}
    />
    ${fieldNotes(name, options)}`;
}

/** One value per line. */
export function linesField(
  label: string,
  name: string,
  values: readonly string[],
  options: { hint?: string; error?: string; autofocus?: boolean } = {},
): Html {
  return html`<label for="${name}">${label}</label>
    <textarea
      id="${name}"
      name="${name}"
      rows="${Math.max(2, values.length + 1)}"
      spellcheck="false"
      ${options.autofocus ? html`autofocus` : ''}
      ${options.error ? html`aria-invalid="true"` : ''}${describedBy(name, options)}
    >
${values.join('\n')}</textarea>
    ${fieldNotes(name, options)}`;
}

/**
 * `text` as the tail of an element id, a different one for every text: letters, digits and `-` stay,
 * every other character becomes its code point in hex between two `_` (`A B` is `A_20_B`, `A_B` is
 * `A_5f_B`), so that names differing only in punctuation or spacing never share a checkbox's id.
 */
function idPart(text: string): string {
  let id = '';
  for (const char of text)
    id += /^[A-Za-z0-9-]$/.test(char) ? char : `_${char.codePointAt(0)!.toString(16)}_`;
  return id;
}

export function checkbox(
  label: string,
  name: string,
  checked: boolean,
  options: { value?: string; error?: string; autofocus?: boolean } = {},
): Html {
  const id = `${name}-${idPart(options.value ?? 'on')}`;
  return html`<label class="inline" for="${id}"
    ><input
      type="checkbox"
      id="${id}"
      name="${name}"
      value="${options.value ?? 'on'}"
      ${checked ? html`checked` : ''}
      ${options.autofocus ? html`autofocus` : ''}
      ${options.error ? html`aria-invalid="true"` : ''}${describedBy(name, options)}
    />
    ${label}</label
  >`;
}

/**
 * The field a box of `checkboxGroup` whose value a browser would not send back as it is posts under
 * (`states` → `states_escaped`), its value escaped (`escapedChoice`): a name from Alliance Auth, or
 * stored before such names were refused, may hold a character a page cannot hold (a control
 * character, which the browser sends as U+FFFD) or a line break (sent as CR LF). Its own field, so
 * that no name posted as it is (`states=A\u0001`, typed so) is ever read as an escape.
 */
function escapedField(name: string): string {
  return `${name}_escaped`;
}

/** Whether a browser sends `value`, a box's value, back as it is: nothing `sentBackUntouched` changes. */
function sentBackAsIs(value: string): boolean {
  return sentBackUntouched(value) === value;
}

/**
 * `value` with each UTF-16 unit of a character a browser would not send back as it is (and each
 * backslash) as a `\uXXXX` escape, so that the escape is all characters it sends back unchanged and
 * `unescapedChoice` gives `value` back exactly (a lone surrogate too).
 */
function escapedChoice(value: string): string {
  let escaped = '';
  for (const char of value) {
    if (char !== '\\' && sentBackAsIs(char)) escaped += char;
    else
      for (let index = 0; index < char.length; index += 1)
        escaped += `\\u${char.charCodeAt(index).toString(16).padStart(4, '0')}`;
  }
  return escaped;
}

const ESCAPED_CHOICE = /^(?:[^\\]|\\u[0-9a-f]{4})*$/;

/**
 * The value `escapedChoice` escaped; a text it cannot have written (not sent by the form) is taken as
 * it is, as a value of the plain field is.
 */
function unescapedChoice(escaped: string): string {
  if (!ESCAPED_CHOICE.test(escaped)) return escaped;
  return escaped.replace(/\\u([0-9a-f]{4})/g, (_escape, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
}

/**
 * The fields a `checkboxGroup` named `name` posts, each possibly more than once: a route taking the
 * form lists them among the fields it lets repeat (`ConsoleRoute.multiValued`).
 */
export function choiceFields(name: string): [string, string] {
  return [name, escapedField(name)];
}

/** The values ticked in a `checkboxGroup` named `name`, as they were given to it. */
export function checkedChoices(form: URLSearchParams, name: string): string[] {
  return [...form.getAll(name), ...form.getAll(escapedField(name)).map(unescapedChoice)];
}

/**
 * A group of checkboxes (a picker of existing states or groups). With `missing`, a selected value that
 * is no choice is offered too, ticked and labelled with it: a form sent back unchanged keeps it (or is
 * refused for it), never drops it unseen. A value a browser would not send back as it is (a control
 * character, a line break) is posted escaped, in its own field (`escapedField`): read the ticked
 * values with `checkedChoices`. Its label says that the page shows such a character as U+FFFD.
 */
export function checkboxGroup(
  legend: string,
  name: string,
  choices: readonly string[],
  selected: readonly string[],
  options: { hint?: string; error?: string; empty?: string; missing?: string; autofocus?: boolean } = {},
): Html {
  // Sets, not `includes`: thousands of values posted against thousands of choices took a second.
  const offered = new Set(choices);
  const ticked = new Set(selected);
  const extra = options.missing === undefined ? [] : selected.filter((value) => !offered.has(value));
  // A fieldset takes no focus: its first box does.
  const focus = (index: number) => (options.autofocus && index === 0 ? { autofocus: true } : {});
  return html`<fieldset ${options.error ? html`aria-invalid="true"` : ''}${describedBy(name, options)}>
    <legend>${legend}</legend>
    ${
      choices.length + extra.length === 0
        ? html`<p class="note">${options.empty ?? 'None exist yet.'}</p>`
        : [
            ...choices.map((choice, index) =>
              choiceBox(choice, choice, name, ticked.has(choice), focus(index)),
            ),
            ...extra.map((value, index) =>
              choiceBox(`${value} (${options.missing!})`, value, name, true, focus(choices.length + index)),
            ),
          ]
    }
    ${fieldNotes(name, options)}
  </fieldset>`;
}

/** One box of `checkboxGroup`: `value` as it is, or escaped in its own field (`escapedField`). */
function choiceBox(
  label: string,
  value: string,
  name: string,
  checked: boolean,
  options: { autofocus?: boolean },
): Html {
  if (sentBackAsIs(value)) return checkbox(label, name, checked, { value, ...options });
  return checkbox(`${label} (\uFFFD: a character this page cannot show)`, escapedField(name), checked, {
    value: escapedChoice(value),
    ...options,
  });
}

export function select(
  label: string,
  name: string,
  choices: ReadonlyArray<readonly [value: string, text: string]>,
  selected: string,
  options: { hint?: string; error?: string; autofocus?: boolean } = {},
): Html {
  return html`<label for="${name}">${label}</label>
    <select
      id="${name}"
      name="${name}"
      ${options.autofocus ? html`autofocus` : ''}
      ${options.error ? html`aria-invalid="true"` : ''}${describedBy(name, options)}
    >
      ${choices.map(
        ([value, text]) =>
          html`<option value="${value}" ${value === selected ? html`selected` : ''}>${text}</option>`,
      )}
    </select>
    ${fieldNotes(name, options)}`;
}

/** A message after a redirect (`?done=…`), from a fixed list: the query never carries text shown as is. */
export function doneMessage(messages: Readonly<Record<string, string>>, done: unknown): Html {
  // Own keys only: `?done=constructor` names no message.
  const text = typeof done === 'string' && Object.hasOwn(messages, done) ? messages[done] : undefined;
  return text ? html`<p class="ok" role="status">${text}</p>` : html``;
}

/** A query parameter as one trimmed string ('' when absent or repeated). */
export function queryText(
  query: Record<string, string | string[] | undefined>,
  name: string,
  max = 200,
): string {
  const value = query[name];
  return typeof value === 'string' ? value.trim().slice(0, max) : '';
}

/** The next-page link of a newest-first listing paged by id. */
export function olderLink(
  path: string,
  query: Record<string, string>,
  lastId: number | undefined,
  full: boolean,
): Html {
  if (!full || lastId === undefined) return html``;
  const params = new URLSearchParams({ ...query, before: String(lastId) });
  return html`<nav class="pager" aria-label="Pages">
    <a href="${path}?${params.toString()}">Older entries</a>
  </nav>`;
}

/** A form with one button that POSTs to `action` (with the CSRF token). */
export function postButton(
  session: ConsoleSession | undefined,
  action: string,
  text: string,
  options: {
    kind?: 'secondary' | 'danger';
    fields?: Record<string, string>;
    /** The id of a note that says more of what the button does (its `aria-describedby`). */
    describedBy?: string;
  } = {},
): Html {
  const attributes = [
    options.kind ? html`class="${options.kind}"` : undefined,
    options.describedBy ? html`aria-describedby="${options.describedBy}"` : undefined,
  ]
    .filter((attribute) => attribute !== undefined)
    .map((attribute) => attribute.html)
    .join(' ');
  return html`<form method="post" action="${action}" class="inline-form">
    ${csrfField(session)}
    ${Object.entries(options.fields ?? {}).map(
      ([name, value]) => html`<input type="hidden" name="${name}" value="${value}" />`,
    )}
    <button type="submit" ${{ html: attributes }}>${text}</button>
  </form>`;
}
