import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { numberOption } from '../../bench/options.ts';

const run = promisify(execFile);

describe("the bench scripts' number options", () => {
  it('takes what fits and refuses the rest, naming the option and what would be valid', () => {
    const rounds = numberOption('--rounds', { integer: true, positive: true });
    assert.equal(rounds('3'), 3);
    for (const bad of ['0', '-1', '1.5', 'three', ''])
      assert.throws(
        () => rounds(bad),
        (error: unknown) =>
          error instanceof InvalidArgumentError &&
          error.message === `--rounds must be a whole number > 0 (got "${bad}")`,
        bad,
      );
    const warmup = numberOption('--warmup', { integer: false, positive: false });
    assert.equal(warmup('0'), 0);
    assert.equal(warmup('0.5'), 0.5);
    assert.throws(() => warmup('-0.5'), /--warmup must be a number ≥ 0/);
  });

  it('npm run bench refuses a run that would measure nothing, before it starts anything', async () => {
    for (const args of [
      ['--rounds', '0'],
      ['--seconds', '0'],
      ['--connections', '0'],
    ]) {
      const refused = await run(process.execPath, ['bench/run.ts', ...args]).then(
        () => assert.fail(`${args.join(' ')} was accepted`),
        (error: { code: number; stderr: string }) => error,
      );
      assert.equal(refused.code, 1, args.join(' '));
      assert.match(refused.stderr, new RegExp(`${args[0]} must be a (whole )?number > 0 \\(got "0"\\)`));
    }
  });
});
