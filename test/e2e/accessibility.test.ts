import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { signedInAgo } from '../helpers/console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { chromiumUnavailable, launchChromium } from '../helpers/e2e.ts';
import {
  PASSWORD,
  pkcePair,
  REDIRECT_URI,
  seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

// Skipped, with the reason shown by the runner, when Chromium is missing (a failure under AA_OIDC_REQUIRE_E2E=1).
const skip = chromiumUnavailable();

/**
 * What the page's structure lacks for a screen reader: a control without a label, not one `<h1>`, a
 * heading level skipped, no `<html lang>`, not one `<main>`, a `<nav>` without a name, a table
 * without a name or a header cell without a scope, an image without a text alternative, an id twice.
 */
const STRUCTURE_PROBLEMS = `(() => {
  const problems = [];
  for (const control of document.querySelectorAll('input:not([type=hidden]):not([hidden]),select,textarea')) {
    const named = control.labels.length > 0 || control.hasAttribute('aria-label') || control.hasAttribute('aria-labelledby');
    if (!named) problems.push('no label: ' + control.tagName + ' ' + control.name);
  }
  const h1 = document.querySelectorAll('h1').length;
  if (h1 !== 1) problems.push(h1 + ' h1');
  let level = 0;
  for (const heading of document.querySelectorAll('h1,h2,h3,h4,h5,h6')) {
    const next = Number(heading.tagName[1]);
    if (next > level + 1) problems.push('h' + next + ' after h' + level + ': ' + heading.textContent.trim());
    level = next;
  }
  if (!/^[a-z]{2}/.test(document.documentElement.lang)) problems.push('no html lang');
  if (document.querySelectorAll('main').length !== 1) problems.push('not one main');
  for (const nav of document.querySelectorAll('nav'))
    if (!nav.hasAttribute('aria-label') && !nav.hasAttribute('aria-labelledby')) problems.push('nav without a name');
  for (const table of document.querySelectorAll('table')) {
    if (!table.caption && !table.hasAttribute('aria-label') && !table.hasAttribute('aria-labelledby'))
      problems.push('table without a caption or name: ' + table.querySelector('th')?.textContent);
    for (const th of table.querySelectorAll('th'))
      if (!th.hasAttribute('scope')) problems.push('th without scope: ' + th.textContent.trim());
  }
  for (const image of document.querySelectorAll('img')) if (!image.hasAttribute('alt')) problems.push('img without alt');
  for (const svg of document.querySelectorAll('svg'))
    if (!svg.hasAttribute('aria-label') && svg.getAttribute('aria-hidden') !== 'true') problems.push('svg without a name');
  const ids = [...document.querySelectorAll('[id]')].map((element) => element.id);
  for (const id of new Set(ids.filter((id, index) => ids.indexOf(id) !== index))) problems.push('id twice: ' + id);
  return problems;
})()`;

/**
 * Text whose colour contrasts less than WCAG AA with the background it is drawn on (4.5:1, 3:1 for
 * large text), from the computed styles: the nearest ancestor with an opaque background is behind it.
 */
const CONTRAST_PROBLEMS = `(() => {
  const parse = (value) => { const m = value.match(/[\\d.]+/g).map(Number); return { rgb: m.slice(0, 3), alpha: m.length > 3 ? m[3] : 1 }; };
  const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const ratio = (a, b) => { const [l, d] = [luminance(a), luminance(b)].sort((x, y) => y - x); return (l + 0.05) / (d + 0.05); };
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const colour = parse(getComputedStyle(e).backgroundColor);
      if (colour.alpha === 1) return colour.rgb;
    }
    return [255, 255, 255];
  };
  const problems = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!node.textContent.trim() || seen.has(element) || element.getClientRects().length === 0) continue;
    seen.add(element);
    const style = getComputedStyle(element);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const measured = ratio(parse(style.color).rgb, background(element));
    if (measured < (large ? 3 : 4.5))
      problems.push(element.tagName.toLowerCase() + '.' + element.className + ' "' + node.textContent.trim().slice(0, 30) + '" ' + measured.toFixed(2));
  }
  // A button is told apart from the page by its edge or its fill (3:1, WCAG 1.4.11).
  for (const button of document.querySelectorAll('button:not(.link),a.button')) {
    if (button.getClientRects().length === 0) continue;
    const style = getComputedStyle(button);
    const behind = background(button.parentElement);
    const edge = style.borderTopStyle === 'none' || parseFloat(style.borderTopWidth) === 0 ? [0, 0, 0, 0] : parse(style.borderTopColor).rgb;
    const fill = parse(style.backgroundColor);
    const best = Math.max(parseFloat(style.borderTopWidth) > 0 ? ratio(edge, behind) : 1, fill.alpha === 1 ? ratio(fill.rgb, behind) : 1);
    if (best < 3) problems.push('button edge "' + button.textContent.trim().slice(0, 30) + '" ' + best.toFixed(2));
  }
  return problems;
})()`;

/**
 * The element with the focus: whether it shows a focus ring (an outline at least 2 px wide) on
 * screen, whether the Tab before reached it already, and whether it comes before the last one in the
 * document (the focus went round).
 */
const FOCUSED = `(() => {
  const element = document.activeElement;
  const style = getComputedStyle(element);
  const rect = element.getBoundingClientRect();
  const last = window.lastFocused;
  if (element === document.body) {
    // Leaving the page is only leaving after a stop on it: a page whose document has not yet taken
    // the focus (a loaded machine) can answer the first Tab with the body, then stop at the skip link.
    if (last !== undefined) window.leftThePage = true;
    return { body: true };
  }
  window.lastFocused = element;
  const leftThePage = window.leftThePage === true;
  window.leftThePage = false;
  const seen = element.hasAttribute('data-tabbed');
  element.setAttribute('data-tabbed', '');
  return {
    name: element.tagName.toLowerCase() + (element.id ? '#' + element.id : '') + ' ' + (element.textContent || element.getAttribute('name') || '').trim().replace(/\\s+/g, ' ').slice(0, 40),
    body: false,
    ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
    onScreen: rect.right > 0 && rect.bottom > 0 && rect.left < innerWidth,
    seen,
    wrapped: leftThePage || Boolean(last !== undefined && element.compareDocumentPosition(last) & Node.DOCUMENT_POSITION_FOLLOWING),
  };
})()`;

/**
 * Every page a member, an operator or a stranger meets, in Chromium, under accent colours an operator
 * may choose: a dark one, yellow, white and a mid grey (white text on it just fails 4.5:1, black just
 * passes). Forms are also sent wrong, to see how a refusal is told.
 */
for (const accentColor of ['#0b6e4f', '#ffd700', '#ffffff', '#777777'])
  describe(
    `accessibility of the pages with the accent ${accentColor} (${testDatabaseKind})`,
    { skip },
    () => {
      let server: TestServer;
      let browser: Browser;
      let page: Page;
      let forumId: string;
      let memberId: number;
      let directorId: number;
      const titles = new Map<string, string>();
      /** Every problem found on any page: the test reports them all at once. */
      const found: string[] = [];
      const expect = (ok: boolean, problem: string): void => {
        if (!ok) found.push(problem);
      };

      before(async () => {
        server = await startServer({ branding: { name: 'Northern Coalition', accentColor } });
        await server.app.directoryAdmin.createState('Member', 100, true);
        await server.app.directoryAdmin.createGroup('Fleet Commanders');
        forumId = (await seedApp(server, { name: 'Forum', states: ['Member'] })).clientId;
        directorId = (await seedUser(server, { username: 'director', superuser: true, state: 'Member' })).id;
        const rookie = await seedUser(server, { username: 'rookie', state: 'Member' });
        await server.app.database.db
          .updateTable('app_user')
          .set({ must_change_password: 1 })
          .where('id', '=', rookie.id)
          .execute();
        memberId = (
          await seedUser(server, { username: 'kaelen.voss', state: 'Member', groups: ['Fleet Commanders'] })
        ).id;
        browser = await launchChromium();
        page = await (await browser.newContext({ viewport: { width: 1024, height: 768 } })).newPage();
        await page.route(/^https:\/\//, (route) => route.abort());
      });
      after(async () => {
        await browser?.close();
        await server?.close();
      });

      /** The page now shown: its structure, contrast and focus rings, and a title no other page has. */
      async function audit(where: string): Promise<void> {
        for (const problem of (await page.evaluate(STRUCTURE_PROBLEMS)) as string[])
          found.push(`${where}: ${problem}`);
        for (const problem of (await page.evaluate(CONTRAST_PROBLEMS)) as string[])
          found.push(`${where}: contrast ${problem}`);
        const title = await page.title();
        const before = titles.get(title);
        expect(before === undefined || before === where, `${where}: the title "${title}" is ${before}'s too`);
        titles.set(title, where);
        await tabThrough(where);
      }

      /**
       * Tab round the whole page, from where the page put the focus: every stop shows a focus ring on
       * screen, the focus leaves the page after the last one (no trap), and the first stop after that is
       * the skip link.
       */
      async function tabThrough(where: string): Promise<void> {
        const focusable = (await page.evaluate(
          `document.querySelectorAll('a[href],button,input:not([type=hidden]),select,textarea,[tabindex]').length`,
        )) as number;
        let firstAfterWrapping: string | undefined;
        let wentRound = false;
        for (let step = 0; step < 2 * focusable + 4 && !wentRound; step += 1) {
          await page.keyboard.press('Tab');
          const focused = (await page.evaluate(FOCUSED)) as {
            name: string;
            body: boolean;
            ring: boolean;
            onScreen: boolean;
            seen: boolean;
            wrapped: boolean;
          };
          if (focused.body) continue;
          if (focused.wrapped) firstAfterWrapping ??= focused.name;
          wentRound = focused.seen && firstAfterWrapping !== undefined;
          expect(focused.ring, `${where}: ${focused.name} shows no focus ring`);
          expect(focused.onScreen, `${where}: ${focused.name} has the focus off screen`);
        }
        expect(wentRound, `${where}: Tab does not go round the page (a trap?)`);
        if ((await page.locator('.skip').count()) > 0)
          expect(
            /^a Skip to content/.test(firstAfterWrapping ?? ''),
            `${where}: the first Tab stop is ${firstAfterWrapping}, not the skip link`,
          );
      }

      /**
       * After a refused form: the title says so, the focus is on the first field marked invalid, and
       * that field is described by the error, which is shown.
       */
      async function refused(where: string): Promise<void> {
        expect(
          (await page.title()).startsWith('Error: '),
          `${where}: the title does not say the form was refused`,
        );
        // The browser moves the focus to an `autofocus` field when it next renders, which on a loaded
        // machine can come after 'load': wait for the focus to leave the body (or give up after 5 s
        // and let the checks below say where it is).
        await page
          .waitForFunction(
            'document.activeElement !== null && document.activeElement !== document.body',
            null,
            {
              timeout: 5_000,
            },
          )
          .catch(() => undefined);
        const focus = (await page.evaluate(`(() => {
      const focused = document.activeElement;
      const first = document.querySelector('[aria-invalid="true"]');
      const described = (focused.getAttribute('aria-describedby') ?? '').split(' ').map((id) => document.getElementById(id));
      return {
        first: focused === first || first?.contains(focused),
        invalid: first !== null,
        error: described.some((note) => note && note.getClientRects().length > 0 && note.textContent.trim() !== ''),
      };
    })()`)) as { first: boolean; invalid: boolean; error: boolean };
        expect(focus.invalid, `${where}: no field is marked invalid`);
        expect(focus.first, `${where}: the focus is not on the first field marked invalid`);
        expect(focus.error, `${where}: the focused field is not described by a shown error`);
      }

      /** Clicks the button, and waits for the page the form's answer is. */
      async function submit(name: string | RegExp): Promise<void> {
        const answer = page.waitForResponse((response) => response.request().method() === 'POST');
        await page.getByRole('button', { name }).click();
        await answer;
        await page.waitForLoadState('load');
      }

      it('gives every page labels, one h1, a language, its own title, focus rings and readable colours', async () => {
        await page.goto(`${server.origin}/account`);
        await audit('login');
        await page.getByLabel('Username').fill('director');
        await page.getByLabel('Password').fill('wrong');
        await submit('Sign in');
        await refused('login refused');
        expect(
          (await page.locator('#login-error[role=alert]').count()) === 1,
          'login refused: the error is not announced (role=alert)',
        );
        await audit('login refused');
        await page.getByLabel('Username').fill('director');
        await page.getByLabel('Password').fill(PASSWORD);
        await submit('Sign in');
        await page.waitForURL(`${server.origin}/account`);
        const paths = [
          '/account',
          '/admin',
          '/admin/apps',
          `/admin/apps/${forumId}`,
          '/admin/users',
          `/admin/users/${memberId}`,
          `/admin/users/${memberId}/remove-group?group=Fleet+Commanders`,
          '/admin/states',
          '/admin/groups',
          '/admin/keys',
          '/admin/audit',
          '/admin/deliveries',
          '/admin/code-reuse',
          '/admin/apps/new',
          `/admin/apps/${forumId}/edit`,
          '/admin/keys/rotate',
          '/no/such/page',
        ];
        for (const path of paths) {
          await page.goto(`${server.origin}${path}`);
          await audit(path);
        }
        await page.goto(`${server.origin}/admin/apps/new`);
        await submit('Create application');
        await refused('/admin/apps/new refused');
        await audit('/admin/apps/new refused');

        await page.goto(`${server.origin}/account`);
        await page.getByLabel('Current password').fill('not my password');
        await page.getByLabel('New password', { exact: true }).fill('a brand new passphrase');
        await page.getByLabel('New password again').fill('a brand new passphrase');
        await submit('Change password');
        await refused('/account password refused');
        await audit('/account password refused');

        // The key of the authenticator app as text beside its QR code, which has a name.
        await page.goto(`${server.origin}/account`);
        await submit('Set up two-factor sign-in');
        expect(
          /^[A-Z2-7 ]{16,}$/.test((await page.locator('#totp-secret').textContent()) ?? ''),
          'two-factor setup: the key is not shown as text',
        );
        expect(
          (await page.getByRole('img', { name: /QR code to add Northern Coalition/ }).count()) === 1,
          'two-factor setup: the QR code has no text alternative',
        );
        await audit('two-factor setup');
        await page.getByLabel('Code from your app').fill('000000');
        await submit(/Turn on/);
        await refused('two-factor setup refused');
        await audit('two-factor setup refused');

        // Signed in over ten minutes ago: the account page says the setup asks for a sign-in again,
        // and the setup answers with the page that asks for it.
        await signedInAgo(server.app.database.db, directorId, 11);
        await page.goto(`${server.origin}/account`);
        for (const problem of [
          ...((await page.evaluate(STRUCTURE_PROBLEMS)) as string[]),
          ...((await page.evaluate(CONTRAST_PROBLEMS)) as string[]),
        ])
          found.push(`/account signed in long ago: ${problem}`);
        expect(
          (await page
            .getByRole('button', { name: 'Set up two-factor sign-in' })
            .getAttribute('aria-describedby')) === 'two-factor-sign-in-again',
          '/account signed in long ago: the button is not described by the note that a sign-in is asked again',
        );
        await submit('Set up two-factor sign-in');
        await page.locator('h1', { hasText: 'Sign in again to turn on two-factor sign-in' }).waitFor();
        await audit('sign in again for two-factor setup');
        await signedInAgo(server.app.database.db, directorId, -11);

        const issuerPath = new URL(server.issuer).pathname;
        const params = new URLSearchParams({
          client_id: forumId,
          redirect_uri: REDIRECT_URI,
          response_type: 'code',
          scope: 'openid profile email',
          state: 'xyz',
          code_challenge: pkcePair().challenge,
          code_challenge_method: 'S256',
        });
        await page.goto(`${server.origin}${issuerPath}/authorize/?${params.toString()}`);
        await audit('consent');
        await page.goto(`${server.origin}${issuerPath}/authorize/?client_id=nope&response_type=code`);
        await audit('error');
        await page.goto(`${server.origin}${issuerPath}/logout/`);
        await audit('logout');

        // A logout with nobody signed in: the community's page, whose one script (allowed by its hash)
        // presses Continue; without script, the button is there to press.
        const fresh = await (await browser.newContext({ viewport: { width: 1024, height: 768 } })).newPage();
        const signedIn = page;
        page = await (
          await browser.newContext({ viewport: { width: 1024, height: 768 }, javaScriptEnabled: false })
        ).newPage();
        await page.goto(`${server.origin}${issuerPath}/logout/`);
        await page.locator('h1', { hasText: 'Signing out' }).waitFor();
        await audit('logout without a session');
        await submit('Continue');
        await page.locator('h1', { hasText: 'Signed out' }).waitFor();
        page = fresh;
        await page.goto(`${server.origin}${issuerPath}/logout/`);
        await page.locator('h1', { hasText: 'Signed out' }).waitFor();

        // The first sign-in of an account whose password someone else chose.
        await page.goto(`${server.origin}/account`);
        await page.getByLabel('Username').fill('rookie');
        await page.getByLabel('Password').fill(PASSWORD);
        await submit('Sign in');
        await page.locator('h1', { hasText: 'Choose a new password' }).waitFor();
        await audit('password change');
        await page.getByLabel('New password (at least 8 characters)').fill('short');
        await page.getByLabel('New password, again').fill('short');
        await submit('Set password and continue');
        await refused('password change refused');
        await audit('password change refused');
        page = signedIn;

        assert.deepEqual(found, []);
      });
    },
  );
