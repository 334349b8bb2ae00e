import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandOf, instructionsOf } from '../../bench/instruction-counter.ts';

// The head and tail of a dump written by `callgrind_control --dump` of a process started with
// `--instr-atstart=no` (valgrind 3.19): its summary stays 0, its totals hold the count.
const dump = [
  '# callgrind format',
  'version: 1',
  'creator: callgrind-3.19.0',
  'pid: 12345',
  'cmd:  /usr/bin/node --single-threaded /srv/aa-oidc/bin/aa-oidc.js serve',
  'part: 1',
  'desc: I1 cache: ',
  'events: Ir',
  'summary: 0',
  'fl=(1) ???',
  'fn=(1) 0x0000000004b2c3e0',
  '0 3',
  'totals: 158222916',
  '',
].join('\n');

describe('the bench reading a callgrind dump', () => {
  it('takes the instructions from the totals line', () => {
    assert.equal(instructionsOf(dump), 158_222_916);
  });

  it('names the command the dump is of, to check the engine was counted', () => {
    assert.match(commandOf(dump), /aa-oidc\.js serve$/);
  });

  it('refuses a dump without totals, saying so', () => {
    assert.throws(() => instructionsOf('events: Ir\nsummary: 0\n'), /no totals: line/);
  });
});
