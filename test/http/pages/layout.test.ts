import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { html } from '../../../src/http/pages/layout.ts';

/** `Wiki admin` to the eye, were the override left to act. */
const OVERRIDE = 'Wiki \u202enimda';
const SHOWN = 'Wiki [U+202E]nimda';

describe('html template slots', () => {
  it('shows a hidden character in a shown attribute, keeps it in a data attribute, isolates it in text', () => {
    const long = 'a'.repeat(1_000);
    assert.equal(
      html`<a href="${long}" title="${OVERRIDE}"></a>`.html,
      `<a href="${long}" title="${SHOWN}"></a>`,
    );
    assert.equal(html`<img alt="${OVERRIDE}" />`.html, `<img alt="${SHOWN}" />`);
    assert.equal(
      html`<input value="${long}" data-name="${OVERRIDE}" />`.html,
      `<input value="${long}" data-name="${OVERRIDE}" />`,
    );
    assert.equal(html`title="${OVERRIDE}`.html, `title="${SHOWN}`, 'no tag yet: the attribute it ends in');
    assert.equal(html`${long}="${OVERRIDE}`.html, `${long}="${OVERRIDE}`, 'no tag yet: another attribute');
    assert.equal(html`${long} ${OVERRIDE}`.html, `${long} <bdi>${SHOWN}</bdi>`);
    assert.equal(
      html`<p>${long}="${OVERRIDE}</p>`.html,
      `<p>${long}="<bdi>${SHOWN}</bdi></p>`,
      'text after a tag',
    );
    assert.equal(html`<title>${OVERRIDE}</title>`.html, `<title>${SHOWN}</title>`);
  });

  // A hang guard, not a measure of speed: the slot of a text needing care (a right-to-left letter, a
  // bidirectional control) was found by a pattern that tried each character of a run before it (no
  // space, quote, `=`, `<`, `>` or `/`) again over the rest of the run: about 6 s for 56 KiB, two
  // minutes for each of these 256 KiB; read back from the last quote, milliseconds. Synchronous work
  // cannot be interrupted in this process, so it runs in a child stopped after 20 s.
  it('places a text needing care after a long run of name characters without rescanning the run', () => {
    const script = `
      import { html } from ${JSON.stringify(new URL('../../../src/http/pages/layout.ts', import.meta.url).href)};
      const run = 'a'.repeat(262_144);
      if (html\`<a href="\${run}" title="\${'\\u202e'}">\`.html !== '<a href="' + run + '" title="[U+202E]">') throw new Error('in a tag');
      if (html\`\${run} \${'\\u202e'}\`.html !== run + ' <bdi>[U+202E]</bdi>') throw new Error('in text');`;
    const child = spawnSync(process.execPath, ['--input-type=module', '--eval', script], {
      timeout: 20_000,
      encoding: 'utf8',
    });
    assert.equal(child.signal, null, 'rendering after a 256 KiB run did not end within 20 s');
    assert.equal(child.status, 0, child.stderr);
  });
});
