import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openDatabase } from '../../src/db/connect.ts';
import { decryptPrivateJwk, deriveKeyEncryptionKey } from '../../src/keys/crypto.ts';
import { cli, type CliResult } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

function aaOidc(database: TestDatabase, ...args: string[]): Promise<CliResult> {
  return cli(args, testEnv(database));
}

interface KeyJson {
  kid: string;
  alg: string;
  status: string;
  created_at: string;
  activated_at: string | null;
  retired_at: string | null;
  publish_until: string | null;
  removed_at: string | null;
  withdrawn_at: string | null;
}

describe(`aa-oidc keys (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('lists, rotates and refuses bad retirements as an operator runs it', async () => {
    assert.equal((await aaOidc(database, 'migrate')).code, 0);
    const empty = await aaOidc(database, 'keys', 'list', '--format', 'json');
    assert.equal(empty.code, 0, empty.stderr);
    assert.deepEqual(JSON.parse(empty.stdout), []);

    const first = await aaOidc(database, 'keys', 'rotate');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^active: [A-Za-z0-9_-]{43} \(new key\)$/m);
    assert.match(first.stdout, /^retired: nothing \(there was no active key\)$/m);

    // The next key was published a moment ago: relying parties caching the JWKS may not hold it.
    const early = await aaOidc(database, 'keys', 'rotate');
    assert.equal(early.code, 1);
    assert.equal(early.stdout, '');
    assert.match(
      early.stderr,
      /^aa-oidc: the next key \S{43} was published only \d+ s ago \(.*\); relying parties may keep a copy of the JWKS for up to 24 h \(keys\.jwksCacheSeconds\), .* Rotating is safe from \d{4}-\d\d-\d\dT[\d:.]+Z; nothing was rotated\. To rotate now anyway: aa-oidc keys rotate --force\n$/,
    );
    // A dry run of a rotation that would be refused fails as the rotation does, writing nothing.
    const keysBefore = (await aaOidc(database, 'keys', 'list', '--format', 'json')).stdout;
    const earlyDryRun = await aaOidc(database, 'keys', 'rotate', '--dry-run');
    assert.equal(earlyDryRun.code, 1, earlyDryRun.stderr);
    assert.match(earlyDryRun.stdout, /^dry run: nothing changed\nwould activate: \S{43} \(the next key\)$/m);
    assert.match(
      earlyDryRun.stderr,
      /^aa-oidc: dry run: the rotation would be refused: the next key \S{43} was published only .* Rotating is safe from \S+\. To rotate now anyway: aa-oidc keys rotate --force\n$/,
    );
    assert.equal((await aaOidc(database, 'keys', 'list', '--format', 'json')).stdout, keysBefore);

    const rotated = await aaOidc(database, 'keys', 'rotate', '--force');
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(
      rotated.stdout,
      /^forced: the next key \S{43} was published only .* Rotating is safe from /m,
    );
    const activeKid = /^active: (\S+) \(was the next key\)$/m.exec(rotated.stdout)?.[1];
    const retiredKid = /^retired: (\S+) \(published until \d{4}-\d\d-\d\dT[\d:.]+Z\)$/m.exec(
      rotated.stdout,
    )?.[1];
    const nextKid = /^next: (\S+) /m.exec(rotated.stdout)?.[1];
    assert.ok(activeKid && retiredKid && nextKid, rotated.stdout);
    assert.equal(
      retiredKid,
      /^active: (\S+)/m.exec(first.stdout)?.[1],
      'the first active key is the one retired',
    );

    const json = await aaOidc(database, 'keys', 'list', '--format', 'json');
    const listed = JSON.parse(json.stdout) as KeyJson[];
    assert.deepEqual(
      listed.map((key) => [key.kid, key.status, key.alg]),
      [
        [activeKid, 'active', 'RS256'],
        [nextKid, 'next', 'RS256'],
        [retiredKid, 'retired', 'RS256'],
      ],
    );
    assert.deepEqual(Object.keys(listed[0]!).sort(), [
      'activated_at',
      'alg',
      'created_at',
      'kid',
      'publish_until',
      'removed_at',
      'retired_at',
      'status',
      'withdrawn_at',
    ]);
    const retired = listed[2]!;
    assert.ok(retired.retired_at && retired.publish_until);
    assert.ok(Date.parse(retired.publish_until) > Date.parse(retired.retired_at));

    const csv = await aaOidc(database, 'keys', 'list', '--format', 'csv');
    const csvLines = csv.stdout.trimEnd().split('\r\n');
    assert.equal(csvLines[0], 'kid,alg,status,created,activated,retired,publish until,removed,withdrawn');
    assert.equal(csvLines.length, 4);
    // A kid is base64url: one in 64 starts with "-", which CSV writes as `"'-…"` (a spreadsheet
    // would read it as a formula).
    const csvKid = retiredKid.startsWith('-') ? `"'${retiredKid}"` : retiredKid;
    assert.ok(csvLines[3]!.startsWith(`${csvKid},RS256,retired,`), csvLines[3]);
    assert.equal(csvLines[3]!.split(',')[6], retired.publish_until);

    const table = await aaOidc(database, 'keys', 'list');
    const tableLines = table.stdout.trimEnd().split('\n');
    assert.match(
      tableLines[0]!,
      /^KID\s+ALG\s+STATUS\s+CREATED\s+ACTIVATED\s+RETIRED\s+PUBLISH UNTIL\s+REMOVED\s+WITHDRAWN$/,
    );
    assert.match(tableLines[1]!, new RegExp(`^${activeKid}\\s+RS256\\s+active\\s`));

    // Never private material, in any format.
    const config = testConfig(database);
    const handle = openDatabase(config.database);
    try {
      const row = await handle.db
        .selectFrom('signing_key')
        .select(['private_jwk_encrypted'])
        .where('kid', '=', activeKid!)
        .executeTakeFirstOrThrow();
      const { d } = decryptPrivateJwk(
        row.private_jwk_encrypted!,
        activeKid!,
        deriveKeyEncryptionKey(config.secretKey),
      );
      assert.ok(d && d.length > 40);
      for (const output of [json.stdout, csv.stdout, table.stdout, rotated.stdout])
        assert.ok(!output.includes(d));
    } finally {
      await handle.close();
    }

    const dryRun = await aaOidc(database, 'keys', 'rotate', '--dry-run', '--force');
    assert.equal(dryRun.code, 0, dryRun.stderr);
    assert.match(dryRun.stdout, new RegExp(`^would activate: ${nextKid} \\(the next key\\)$`, 'm'));
    assert.match(dryRun.stdout, new RegExp(`^would retire: ${activeKid} `, 'm'));
    assert.match(
      dryRun.stdout,
      /^would rotate only because of --force: the next key \S{43} was published only /m,
    );

    const retireActive = await aaOidc(database, 'keys', 'retire', activeKid!);
    assert.equal(retireActive.code, 1);
    assert.equal(retireActive.stdout, '');
    assert.match(
      retireActive.stderr,
      /^aa-oidc: signing key \S+ is the active key; .*aa-oidc keys rotate.*\n$/,
    );
    assert.equal(retireActive.stderr.split('\n').length, 2, 'one line');

    const retireUnknown = await aaOidc(database, 'keys', 'retire', 'no-such-key');
    assert.equal(retireUnknown.code, 1);
    assert.match(retireUnknown.stderr, /^aa-oidc: "no-such-key" is not a key id: .*aa-oidc keys list.*\n$/);

    // A thumbprint starts with "-" once in 64 keys: it is still the key id, not an option; nor the
    // program's `-V` (version) when it starts with "-V".
    for (const dashKid of [`-${'A'.repeat(42)}`, `-V${'A'.repeat(41)}`])
      for (const args of [[dashKid], [dashKid, '--dry-run'], ['--dry-run', dashKid]]) {
        const retireDash = await aaOidc(database, 'keys', 'retire', ...args);
        assert.equal(retireDash.code, 1, args.join(' '));
        assert.match(
          retireDash.stderr,
          new RegExp(`^aa-oidc: no signing key has kid ${dashKid}; `),
          args.join(' '),
        );
      }

    const retireNextDry = await aaOidc(database, 'keys', 'retire', nextKid!, '--dry-run');
    assert.equal(retireNextDry.code, 0, retireNextDry.stderr);
    assert.match(retireNextDry.stdout, new RegExp(`would retire: ${nextKid}`));

    const unchanged = JSON.parse(
      (await aaOidc(database, 'keys', 'list', '--format', 'json')).stdout,
    ) as KeyJson[];
    assert.deepEqual(unchanged, listed, 'dry runs and refusals changed nothing');
  });

  it('prepares a next key after the next key is retired, so that rotating needs no --force once it is published', async () => {
    const list = async () =>
      JSON.parse((await aaOidc(database, 'keys', 'list', '--format', 'json')).stdout) as KeyJson[];
    const before = await list();
    const next = before.find((key) => key.status === 'next')!.kid;
    const retired = await aaOidc(database, 'keys', 'retire', next);
    assert.equal(retired.code, 0, retired.stderr);
    assert.match(
      retired.stdout,
      /^note: there is no next key; `aa-oidc keys prepare-next` publishes a new one, which `aa-oidc keys rotate` activates once it has been published for keys\.jwksCacheSeconds$/m,
    );
    const unseen = await aaOidc(database, 'keys', 'rotate');
    assert.equal(unseen.code, 1);
    assert.match(
      unseen.stderr,
      /^aa-oidc: there is no next key \(it was retired or withdrawn\), .* Prepare a next key instead \(aa-oidc keys prepare-next\) and rotate once it has been published for 24 h; nothing was rotated\. To rotate now anyway: aa-oidc keys rotate --force\n$/,
    );

    const dryRun = await aaOidc(database, 'keys', 'prepare-next', '--dry-run');
    assert.equal(dryRun.code, 0, dryRun.stderr);
    assert.match(
      dryRun.stdout,
      /^dry run: nothing changed\nwould create: a new next key \(published at once; `aa-oidc keys rotate` activates it from about \d{4}-\d\d-\d\dT[\d:.]+Z\)\n$/,
    );
    assert.ok(!(await list()).some((key) => key.status === 'next'), 'a dry run changes nothing');

    const prepared = await aaOidc(database, 'keys', 'prepare-next');
    assert.equal(prepared.code, 0, prepared.stderr);
    const kid = /^next: (\S{43}) \(published now; `aa-oidc keys rotate` activates it from (\S+), /m.exec(
      prepared.stdout,
    );
    assert.ok(kid, prepared.stdout);
    const after = await list();
    assert.equal(after.find((key) => key.status === 'next')?.kid, kid[1]);
    assert.equal(
      after.find((key) => key.status === 'active')?.kid,
      before.find((key) => key.status === 'active')?.kid,
      'nothing was activated',
    );

    const again = await aaOidc(database, 'keys', 'prepare-next');
    assert.equal(again.code, 1);
    assert.match(
      again.stderr,
      new RegExp(
        `^aa-oidc: there is already a next key, ${kid[1]}, published since \\S+: a rotation activates it \\(without --force from ${kid[2]!.replaceAll('.', '\\.')}\\); nothing was prepared\\. To replace it, retire it first \\(aa-oidc keys retire ${kid[1]}\\)\n$`,
      ),
    );
    // Published a moment ago: the rotation waits as for any next key, saying until when.
    const early = await aaOidc(database, 'keys', 'rotate');
    assert.equal(early.code, 1);
    assert.match(
      early.stderr,
      new RegExp(
        `^aa-oidc: the next key ${kid[1]} was published only .* Rotating is safe from ${kid[2]!.replaceAll('.', '\\.')}; `,
      ),
    );
  });
  it('withdraws a leaked key at once, saying what that means beyond this database, and audits it', async () => {
    const list = async () =>
      JSON.parse((await aaOidc(database, 'keys', 'list', '--format', 'json')).stdout) as KeyJson[];
    const before = await list();
    const retired = before.find((key) => key.status === 'retired')!.kid;
    const active = before.find((key) => key.status === 'active')!.kid;
    const next = before.find((key) => key.status === 'next')!.kid;
    const consequences = [
      /^note: every aa-oidc instance (stops|would stop) publishing it and accepting what it signed \(an id_token_hint at logout or authorization\) at its next key reload \(keys\.reloadIntervalMs\)$/m,
      /^note: relying parties holding a copy of the JWKS fetched before now keep trusting it until they fetch the JWKS again: up to 86400 s \(keys\.jwksCacheSeconds\), depending on their library$/m,
      /^note: tokens it signed (will|would) no longer verify wherever the JWKS is fetched afresh .*aa-oidc's introspection and userinfo find access tokens by their stored value, not by signature/m,
      /^note: if its private part leaked, relying parties may have accepted tokens forged with it: tell their operators; `aa-oidc tokens revoke-user --username U` /m,
    ];

    const dryRun = await aaOidc(database, 'keys', 'withdraw', retired, '--dry-run');
    assert.equal(dryRun.code, 0, dryRun.stderr);
    assert.match(
      dryRun.stdout,
      new RegExp(
        `^dry run: nothing changed\nwould withdraw: ${retired} \\(was the retired key; it would leave JWKS at once and its private part would be erased\\)\n`,
      ),
    );
    for (const line of consequences) assert.match(dryRun.stdout, line);
    assert.deepEqual(await list(), before, 'a dry run changes nothing');

    const done = await aaOidc(database, 'keys', 'withdraw', retired);
    assert.equal(done.code, 0, done.stderr);
    assert.match(
      done.stdout,
      new RegExp(
        `^withdrawn: ${retired} \\(was the retired key; no longer published, private part erased\\)\n`,
      ),
    );
    for (const line of consequences) assert.match(done.stdout, line);
    const withdrawn = (await list()).find((key) => key.kid === retired)!;
    assert.equal(withdrawn.status, 'removed');
    assert.ok(withdrawn.withdrawn_at && withdrawn.withdrawn_at === withdrawn.removed_at);

    const again = await aaOidc(database, 'keys', 'withdraw', retired);
    assert.equal(again.code, 1);
    assert.equal(
      again.stderr,
      `aa-oidc: signing key ${retired} was already withdrawn at ${withdrawn.withdrawn_at}: JWKS no longer lists it and its private part is erased; nothing to withdraw\n`,
    );

    // The active key: its replacement, the next key, was published a moment ago.
    const early = await aaOidc(database, 'keys', 'withdraw', active);
    assert.equal(early.code, 1);
    assert.equal(early.stdout, '');
    assert.match(
      early.stderr,
      new RegExp(
        `^aa-oidc: ${active} is the active key and withdrawing it activates another in its place, but the next key ${next} was published only .*; nothing was withdrawn\\. A leaked key is the greater risk; to withdraw it now anyway: aa-oidc keys withdraw ${active} --force\n$`,
      ),
    );
    const beforeEarly = await list();
    const earlyDryRun = await aaOidc(database, 'keys', 'withdraw', active, '--dry-run');
    assert.equal(earlyDryRun.code, 1, earlyDryRun.stderr);
    assert.match(earlyDryRun.stdout, new RegExp(`^would activate: ${next} \\(the next key\\)$`, 'm'));
    assert.match(
      earlyDryRun.stderr,
      new RegExp(
        `^aa-oidc: dry run: the withdrawal would be refused: ${active} is the active key and withdrawing it activates another in its place, but the next key ${next} was published only .*\\. A leaked key is the greater risk; to withdraw it now anyway: aa-oidc keys withdraw ${active} --force\n$`,
      ),
    );
    assert.deepEqual(await list(), beforeEarly, 'a refused dry run changes nothing either');
    const forcedDryRun = await aaOidc(database, 'keys', 'withdraw', active, '--dry-run', '--force');
    assert.equal(forcedDryRun.code, 0, forcedDryRun.stderr);
    assert.match(forcedDryRun.stdout, /^would withdraw only because of --force: the next key /m);

    const forced = await aaOidc(database, 'keys', 'withdraw', active, '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, new RegExp(`^withdrawn: ${active} \\(was the active key; `, 'm'));
    assert.match(forced.stdout, new RegExp(`^active: ${next} \\(was the next key\\)$`, 'm'));
    const newNext = /^next: (\S{43}) \(published now, signs after the next rotation\)$/m.exec(
      forced.stdout,
    )?.[1];
    assert.ok(newNext, forced.stdout);
    assert.match(forced.stdout, new RegExp(`^forced: the next key ${next} was published only `, 'm'));
    const after = await list();
    assert.equal(after.find((key) => key.status === 'active')?.kid, next);
    assert.equal(after.find((key) => key.kid === active)?.status, 'removed');

    const events = JSON.parse(
      (await aaOidc(database, 'audit', 'list', '--kind', 'admin_change', '--format', 'json')).stdout,
    ) as Array<Record<string, unknown>>;
    assert.deepEqual(
      events
        .filter((event) => event.entity === 'signing_key' && event.action === 'withdrawn')
        .map((event) => {
          const details = event.details as Record<string, unknown>;
          return [
            event.action,
            event.entity_id,
            details.from_status,
            details.activated_kid,
            details.next_kid,
          ];
        }),
      [
        // The event names the keys that took the withdrawn active key's place, as the output does.
        ['withdrawn', active, 'active', next, newNext],
        ['withdrawn', retired, 'retired', null, null],
      ],
    );
    for (const event of events) assert.match(String(event.actor), /^cli/);
  });
  it('keeps every key change in the audit log with who made it and what was forced, as `audit list` shows', async () => {
    const file = path.join(database.dataDir, 'plugin-key.pem');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
    writeFileSync(file, pem, { mode: 0o600 });
    const formerActive = (
      JSON.parse((await aaOidc(database, 'keys', 'list', '--format', 'json')).stdout) as KeyJson[]
    ).find((key) => key.status === 'active')!.kid;
    assert.equal((await aaOidc(database, 'keys', 'import', '--pem', file, '--dry-run')).code, 0);
    const imported = await aaOidc(database, 'keys', 'import', '--pem', file);
    assert.equal(imported.code, 0, imported.stderr);
    const kid = /^imported: (\S{43}) as active$/m.exec(imported.stdout)?.[1];
    assert.ok(kid, imported.stdout);

    const listed = await aaOidc(database, 'audit', 'list', '--kind', 'admin_change', '--format', 'json');
    assert.equal(listed.code, 0, listed.stderr);
    // Newest first; every change of this file's commands since `migrate`, dry runs and refusals not.
    const events = (JSON.parse(listed.stdout) as Array<Record<string, unknown>>)
      .filter((event) => event.entity === 'signing_key')
      .reverse();
    const details = (event: Record<string, unknown> | undefined) => event?.details as Record<string, unknown>;
    assert.deepEqual(
      events.map((event) => [
        event.action,
        details(event).from_status,
        details(event).to_status,
        details(event).forced,
      ]),
      [
        ['rotated', null, 'active', null],
        ['rotated', 'next', 'active', 'recent_next_key'],
        ['retired', 'next', 'retired', undefined],
        ['prepared', null, 'next', undefined],
        ['withdrawn', 'retired', 'removed', null],
        ['withdrawn', 'active', 'removed', 'recent_next_key'],
        ['imported', null, 'active', undefined],
      ],
    );
    // Each names the keys it moved, so that one key's history can be followed from event to event.
    const [first, forced, retired, prepared] = events;
    assert.equal(details(forced).retired_kid, first!.entity_id);
    assert.equal(retired!.entity_id, details(forced).next_kid);
    assert.deepEqual(
      [events.at(-1)!.entity_id, events.at(-1)!.name, details(events.at(-1)).retired_kid],
      [kid, kid, formerActive],
    );
    assert.ok(prepared!.entity_id !== retired!.entity_id);
    const actor = String(first!.actor);
    assert.match(actor, /^cli/);
    for (const event of events) assert.equal(event.actor, actor, String(event.action));
    // Key ids only: no private part, whichever way it is written.
    const jwk = privateKey.export({ format: 'jwk' });
    for (const secret of [jwk.d!, jwk.p!, jwk.q!, 'PRIVATE KEY']) assert.ok(!listed.stdout.includes(secret));

    const table = await aaOidc(database, 'audit', 'list', '--kind', 'admin_change', '--limit', '1');
    assert.match(table.stdout, new RegExp(`admin_change\\s+signing_key ${kid} imported by cli`));
  });
});

describe(`aa-oidc administrative commands without an active signing key (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('log no warning about the missing key before their own output (they sign nothing)', async () => {
    // Only a next key: nothing is active.
    assert.equal((await aaOidc(database, 'keys', 'prepare-next')).code, 0);
    const users = await aaOidc(database, 'user', 'list');
    assert.equal(users.code, 0, users.stderr);
    assert.equal(users.stderr, '');
    const retire = await aaOidc(database, 'keys', 'retire', 'nope');
    assert.equal(retire.code, 1);
    assert.match(retire.stderr, /^aa-oidc: [^\n]*nope[^\n]*\n$/);
    const withdraw = await aaOidc(database, 'keys', 'withdraw', 'nope');
    assert.equal(withdraw.code, 1);
    assert.match(withdraw.stderr, /^aa-oidc: [^\n]*nope[^\n]*\n$/);
  });
});
