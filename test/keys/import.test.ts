import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { calculateJwkThumbprint, createLocalJWKSet, importPKCS8, jwtVerify, SignJWT } from 'jose';
import { cli, type CliResult } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { craftedPem } from './helpers.ts';

/** The Python plugin's key, as its settings hold it (`OIDC_RSA_PRIVATE_KEY`, PKCS#1 PEM). */
function pluginKey(bits = 2048) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    pkcs1: privateKey.export({ format: 'pem', type: 'pkcs1' }).toString(),
    pkcs8: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicJwk: publicKey.export({ format: 'jwk' }),
  };
}

describe('aa-oidc keys import --pem FILE', () => {
  let server: TestServer;
  const run = (...args: string[]): Promise<CliResult> => cli(args, testEnv(server.database));
  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  it("makes the plugin's key the signing key, so id_tokens it signed before the switch still verify", async () => {
    const key = pluginKey();
    const kid = await calculateJwkThumbprint({ kty: 'RSA', n: key.publicJwk.n!, e: key.publicJwk.e! });
    const file = path.join(server.database.dataDir, 'plugin-key.pem');
    writeFileSync(file, key.pkcs1, { mode: 0o600 });
    const previous = server.app.keyStore.activeKid();

    const dry = await run('keys', 'import', '--pem', file, '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^dry run, nothing changed; would import: ${kid} as active$`, 'm'));

    const imported = await run('keys', 'import', '--pem', file);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, new RegExp(`^imported: ${kid} as active$`, 'm'));
    assert.match(imported.stdout, new RegExp(`^retired: ${previous} \\(published until `, 'm'));
    // Unlike a rotation's, the key was not published here before it signs.
    assert.match(
      imported.stdout,
      new RegExp(
        `^note: ${kid} signs at once; relying parties know it only if they fetched it before .*keys\\.jwksCacheSeconds`,
        'm',
      ),
    );
    assert.doesNotMatch(imported.stdout + imported.stderr, /PRIVATE KEY|MII/);

    // A token the plugin signed (DOT puts the RFC 7638 thumbprint in `kid`), checked against our JWKS.
    const oldToken = await new SignJWT({ sub: '2' })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuer(server.issuer)
      .setAudience('wiki')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(await importPKCS8(key.pkcs8, 'RS256'));
    await server.app.keyStore.reload();
    const jwks = (await (await fetch(`${server.issuer}/.well-known/jwks.json`)).json()) as {
      keys: Array<{ kid: string }>;
    };
    assert.ok(jwks.keys.some((entry) => entry.kid === kid));
    assert.ok(
      jwks.keys.some((entry) => entry.kid === previous),
      'the former active key stays published',
    );
    const { payload } = await jwtVerify(oldToken, createLocalJWKSet(jwks as never), {
      issuer: server.issuer,
    });
    assert.equal(payload.sub, '2');
    assert.equal(server.app.keyStore.activeKid(), kid);

    const again = await run('keys', 'import', '--pem', file);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, new RegExp(`already known as ${kid} \\(status active\\)`));
  });

  it('only publishes the key with --as retired', async () => {
    const key = pluginKey();
    const file = path.join(server.database.dataDir, 'retired.pem');
    writeFileSync(file, key.pkcs8);
    const active = server.app.keyStore.activeKid();
    const result = await run('keys', 'import', '--pem', file, '--as', 'retired');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^imported: \S+ as retired \(published until \d{4}-/m);
    const list = JSON.parse((await run('keys', 'list', '--format', 'json')).stdout) as Array<{
      kid: string;
      status: string;
    }>;
    assert.equal(list.find((entry) => entry.status === 'active')?.kid, active);
  });

  it('refuses what is not a usable RSA private key, saying why, and a file it cannot read', async () => {
    const dir = server.database.dataDir;
    const cases: Array<[string, string, RegExp]> = [
      [
        'public.pem',
        generateKeyPairSync('rsa', { modulusLength: 2048 })
          .publicKey.export({ format: 'pem', type: 'spki' })
          .toString(),
        /expected an RSA private key in PEM form/,
      ],
      [
        'ec.pem',
        generateKeyPairSync('ec', { namedCurve: 'P-256' })
          .privateKey.export({ format: 'pem', type: 'pkcs8' })
          .toString(),
        /expected an RSA key for RS256 \(got ec\)/,
      ],
      ['small.pem', pluginKey(1024).pkcs8, /has 1024 bits; at least 2048 are needed/],
      // Every token is signed with the active key: a huge one makes each signature slow.
      ['huge.pem', craftedPem(16384, 65537), /has 16384 bits; at most 4096 are accepted .*2048 to 4096 bits/],
      [
        'exponent-3.pem',
        generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 })
          .privateKey.export({ format: 'pem', type: 'pkcs8' })
          .toString(),
        /public exponent is 3; a signing key must have 65537/,
      ],
      [
        // Private parts that are not this modulus's: every signature would fail to verify.
        'inconsistent.pem',
        (() => {
          const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
            format: 'jwk',
          });
          const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
            format: 'jwk',
          });
          return createPrivateKey({ key: { ...jwk, d: other.d, dp: other.dp }, format: 'jwk' })
            .export({ format: 'pem', type: 'pkcs1' })
            .toString();
        })(),
        /the RSA private key is inconsistent: a signature made with it does not verify with its public key/,
      ],
      [
        'encrypted.pem',
        generateKeyPairSync('rsa', { modulusLength: 2048 })
          .privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'x' })
          .toString(),
        /encrypted; decrypt it first/,
      ],
      [
        // Concatenated keys: the parser would silently take the first.
        'two-keys.pem',
        pluginKey().pkcs1 + pluginKey().pkcs8,
        /the PEM holds 2 private keys; import one key per file/,
      ],
      [
        'garbage.pem',
        '-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n',
        /cannot be parsed/,
      ],
    ];
    for (const [name, content, message] of cases) {
      writeFileSync(path.join(dir, name), content);
      const result = await run('keys', 'import', '--pem', path.join(dir, name));
      assert.notEqual(result.code, 0, name);
      assert.match(result.stderr, message, name);
    }
    const missing = await run('keys', 'import', '--pem', path.join(dir, 'absent.pem'));
    assert.match(
      missing.stderr,
      /--pem .*absent\.pem: cannot read it: no such file; name the PEM file of the private key to import \(a relative path starts from the working directory\)\n$/,
    );
    assert.doesNotMatch(missing.stderr, /ENOENT|\n\s+at /);
    // A folder named instead of the file is said in words too.
    const folder = await run('keys', 'import', '--pem', dir);
    assert.notEqual(folder.code, 0);
    assert.match(
      folder.stderr,
      /--pem .*: cannot read it: it is a directory; name the PEM file of the private key to import\n$/,
    );
  });

  it('reads a relative --pem in the working folder of the command, as backup --to writes one', async () => {
    const folder = path.join(server.database.dataDir, 'plugin-keys');
    mkdirSync(folder);
    writeFileSync(path.join(folder, 'plugin.pem'), pluginKey().pkcs1);
    const env = testEnv(server.database);
    // The command's folder is not the test process's: a name read from the latter is not found.
    assert.notEqual(process.cwd(), folder);
    const dry = await cli(['keys', 'import', '--pem', 'plugin.pem', '--dry-run'], env, { cwd: folder });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^dry run, nothing changed; would import: \S+ as active$/m);

    // One that is not there is named with the file it stands for.
    const missing = await cli(['keys', 'import', '--pem', 'absent.pem', '--dry-run'], env, { cwd: folder });
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      `aa-oidc: --pem absent.pem (${path.join(folder, 'absent.pem')}): cannot read it: no such file; name the PEM file of the private key to import (a relative path starts from the working directory)\n`,
    );
    // An empty or blank name (a script's unset variable) is no file, nor the working folder.
    for (const name of ['', '  ']) {
      const blank = await cli(['keys', 'import', '--pem', name, '--dry-run'], env, { cwd: folder });
      assert.equal(blank.code, 1, name);
      assert.equal(
        blank.stderr,
        `aa-oidc: --pem needs the name of the PEM file to import (got ${JSON.stringify(name)})\n`,
      );
    }
  });

  it('publishes the key as the next key with --as next, once the next key is retired', async () => {
    const key = pluginKey();
    const kid = await calculateJwkThumbprint({ kty: 'RSA', n: key.publicJwk.n!, e: key.publicJwk.e! });
    const file = path.join(server.database.dataDir, 'next.pem');
    writeFileSync(file, key.pkcs8);
    await server.app.keyStore.reload();
    const active = server.app.keyStore.activeKid();
    const next = server.app.keyStore.loadedKeys().find((loaded) => loaded.status === 'next')!.kid;

    const refused = await run('keys', 'import', '--pem', file, '--as', 'next');
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      new RegExp(
        `^aa-oidc: there is already a next key, ${next}, published since .*; nothing was imported\\. To replace it, retire it first \\(aa-oidc keys retire ${next}\\)\n$`,
      ),
    );
    assert.equal((await run('keys', 'retire', next)).code, 0);

    const dry = await run('keys', 'import', '--pem', file, '--as', 'next', '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      new RegExp(
        `^dry run, nothing changed; would import: ${kid} as next \\(published from now; \`aa-oidc keys rotate\` activates it from about \\d{4}-`,
        'm',
      ),
    );
    const imported = await run('keys', 'import', '--pem', file, '--as', 'next');
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(
      imported.stdout,
      new RegExp(
        `^imported: ${kid} as next \\(published from now; \`aa-oidc keys rotate\` activates it from \\d{4}-[\\d:T.-]+Z\\)$`,
        'm',
      ),
    );
    assert.doesNotMatch(imported.stdout, /^retired:|^note:/m, 'the active key is untouched');
    await server.app.keyStore.reload();
    assert.equal(server.app.keyStore.activeKid(), active);
    const jwks = (await (await fetch(`${server.issuer}/.well-known/jwks.json`)).json()) as {
      keys: Array<{ kid: string }>;
    };
    assert.ok(
      jwks.keys.some((entry) => entry.kid === kid),
      'published at once',
    );
  });
});
