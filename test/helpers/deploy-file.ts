import assert from 'node:assert/strict';

/**
 * A file of deploy/ as a test runs it: each edit puts the test's own value (a port, a path, a name)
 * where the file says the operator's, and fails the test when the file no longer says it, so that the
 * file tested stays the file shipped.
 */
export function adaptDeployFile(
  text: string,
  file: string,
  edits: ReadonlyArray<readonly [from: string | RegExp, to: string]>,
): string {
  return edits.reduce((adapted, [from, to]) => {
    const next = adapted.replace(from, to);
    assert.notEqual(next, adapted, `${file} no longer contains ${String(from)}`);
    return next;
  }, text);
}
