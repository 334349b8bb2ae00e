import { createHash } from 'node:crypto';

/**
 * A form is sent once: a second click while the answer is on its way sends it again, and the browser
 * shows the second answer alone — a code "not valid" as the first use of it just signed the person
 * in, a password "wrong" as it was just changed, recovery codes never seen. Back on the page (the
 * back button), the form can be sent again. Without script, forms work as before.
 */
export const SEND_ONCE_SCRIPT =
  "for (const form of document.forms) form.addEventListener('submit', (event) => { if (form.dataset.sent) event.preventDefault(); else form.dataset.sent = 'true'; });\n" +
  "addEventListener('pageshow', () => { for (const form of document.forms) delete form.dataset.sent; });";

/** The `script-src` source that allows the script inline, by its hash alone. */
export const SEND_ONCE_SCRIPT_SOURCE = `'sha256-${createHash('sha256').update(SEND_ONCE_SCRIPT).digest('base64')}'`;
