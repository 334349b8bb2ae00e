import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import type { LoadedSigningKey } from '../../src/keys/types.ts';
import { jobFactory, logoutSigningKey } from '../../src/logout/jobs.ts';
import { temporaryFolders } from '../helpers/temporary-folders.ts';

const cwd = temporaryFolders('aa-oidc-job-factory-');

/** A loaded key as the key store lists it; only its kid and status matter here. */
function key(kid: string, status: LoadedSigningKey['status']): LoadedSigningKey {
  return { kid, status } as LoadedSigningKey;
}

/** The kid the jobs of one logout name when the key store holds `keys` (in `loadedKeys()` order). */
function kidOfJobsWith(keys: LoadedSigningKey[]): string[] {
  const newJobs = jobFactory({
    config: loadConfig({ env: {}, cwd: cwd() }),
    keyStore: { loadedKeys: () => keys },
    now: () => 1_800_000_000_000,
  });
  return newJobs(42, '42', 'user_deactivated', [
    { clientId: 'rp1', sid: null },
    { clientId: 'rp2', sid: 'session-1' },
  ]).map((job) => job.kid);
}

describe('the signing key a new logout job names', () => {
  const cases: Array<{ loaded: string; keys: LoadedSigningKey[]; kid: string }> = [
    {
      loaded: 'an active key',
      keys: [key('active-1', 'active'), key('next-1', 'next'), key('retired-1', 'retired')],
      kid: 'active-1',
    },
    {
      loaded: 'no active key, a next key and a retired one',
      keys: [key('next-1', 'next'), key('retired-1', 'retired')],
      kid: 'next-1',
    },
    {
      loaded: 'retired keys only (the one published longest first)',
      keys: [key('retired-2', 'retired'), key('retired-1', 'retired')],
      kid: 'retired-2',
    },
    { loaded: 'no key at all', keys: [], kid: '' },
  ];
  for (const { loaded, keys, kid } of cases) {
    it(`with ${loaded}: ${kid === '' ? 'none' : kid}, and the jobs are built all the same`, () => {
      assert.deepEqual(kidOfJobsWith(keys), [kid, kid]);
    });
  }
});

describe('the key an attempt signs a logout token with', () => {
  const active = key('active-1', 'active');
  const next = key('next-1', 'next');
  const [retiredNewer, retiredOlder] = [key('retired-2', 'retired'), key('retired-1', 'retired')];
  const cases: Array<{
    loaded: string;
    keys: LoadedSigningKey[];
    jobKid: string;
    signs: string | undefined;
  }> = [
    { loaded: 'an active key', keys: [active, next, retiredNewer], jobKid: 'retired-2', signs: 'active-1' },
    {
      loaded: 'no active key, the job’s own (retired) key still loaded',
      keys: [next, retiredNewer, retiredOlder],
      jobKid: 'retired-1',
      signs: 'retired-1',
    },
    {
      loaded: 'no active key, the job’s own no longer loaded, a next key',
      keys: [next, retiredNewer],
      jobKid: 'gone-1',
      signs: 'next-1',
    },
    { loaded: 'no active key, a job that names none, a next key', keys: [next], jobKid: '', signs: 'next-1' },
    {
      loaded: 'retired keys only, the job’s own gone (the one published longest first)',
      keys: [retiredNewer, retiredOlder],
      jobKid: 'gone-1',
      signs: 'retired-2',
    },
    { loaded: 'no key at all', keys: [], jobKid: 'active-1', signs: undefined },
  ];
  for (const { loaded, keys, jobKid, signs } of cases) {
    it(`with ${loaded}: ${signs ?? 'none (signing_kid_retired)'}`, () => {
      assert.equal(logoutSigningKey(keys, jobKid)?.kid, signs);
    });
  }

  it('is the key a new job names, for the same keys', () => {
    for (const { keys } of cases)
      assert.deepEqual(kidOfJobsWith(keys), Array(2).fill(logoutSigningKey(keys)?.kid ?? ''));
  });
});
