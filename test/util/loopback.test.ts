import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackHost } from '../../src/util/loopback.ts';

/** Hosts as a URL's `hostname` gives them (and bare addresses), and whether each is loopback. */
const HOSTS: ReadonlyArray<[host: string, loopback: boolean]> = [
  ['127.0.0.1', true],
  ['127.255.1.2', true],
  ['[::1]', true],
  ['::1', true],
  ['[0:0:0:0:0:0:0:1]', true],
  // IPv4-mapped: the system sends it to 127.0.0.1.
  ['[::ffff:7f00:1]', true],
  ['::ffff:127.0.0.1', true],
  ['[::ffff:127.9.8.7]', true],
  ['localhost', true],
  ['LOCALHOST', true],
  ['localhost.', true],
  // RFC 6761 §6.3: names under localhost are loopback too.
  ['app.localhost', true],
  ['a.b.LocalHost.', true],
  ['126.255.255.255', false],
  ['128.0.0.1', false],
  ['0.0.0.0', false],
  ['[::]', false],
  ['[::2]', false],
  // IPv4-compatible, not mapped: nothing routes it to loopback.
  ['::127.0.0.1', false],
  ['[::7f00:1]', false],
  ['[::ffff:10.0.0.1]', false],
  ['fe80::1%eth0', false],
  ['notlocalhost', false],
  ['localhost.example.org', false],
  ['localhost-dev', false],
  ['example.org', false],
  ['', false],
];

describe('isLoopbackHost', () => {
  it('takes every spelling of 127.0.0.0/8, ::1 and localhost as loopback, and nothing else', () => {
    for (const [host, loopback] of HOSTS) assert.equal(isLoopbackHost(host), loopback, host);
  });

  it("judges a URL's hostname as WHATWG URL spells it", () => {
    for (const [uri, loopback] of [
      ['http://127.1:8000/cb', true],
      ['http://0x7f.0.0.1/cb', true],
      ['http://2130706433/cb', true],
      ['http://[::ffff:127.0.0.1]:8000/cb', true],
      ['http://[0:0:0:0:0:0:0:1]/cb', true],
      ['https://App.Localhost./cb', true],
      ['http://[::127.0.0.1]/cb', false],
      ['https://wiki.example.org/cb', false],
    ] as const)
      assert.equal(isLoopbackHost(new URL(uri).hostname), loopback, uri);
  });
});
