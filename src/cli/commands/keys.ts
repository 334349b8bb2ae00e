import { open } from 'node:fs/promises';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { KeyError } from '../../keys/service.ts';
import type { KeyService } from '../../keys/service.ts';
import type { SigningKeySummary, WithdrawResult } from '../../keys/types.ts';
import { signingKeyLoadChecks } from '../../checks/checks.ts';
import { unloadableSigningKeys } from '../../keys/store.ts';
import { CliError, type CliIo, cliActor, isoTime, withServices } from '../context.ts';
import { fileOption } from '../option-values.ts';
import {
  type Column,
  formatOption,
  type OutputFormat,
  quotedInput,
  renderRows,
  textLines,
} from '../output.ts';
import { whyUnreadable } from '../../util/unreadable-file.ts';

const COLUMNS: readonly Column<SigningKeySummary>[] = [
  { header: 'kid', value: (key) => key.kid },
  { header: 'alg', value: (key) => key.alg },
  { header: 'status', value: (key) => key.status },
  { header: 'created', value: (key) => isoTime(key.createdAt) },
  { header: 'activated', value: (key) => isoTime(key.activatedAt) },
  { header: 'retired', value: (key) => isoTime(key.retiredAt) },
  { header: 'publish until', value: (key) => isoTime(key.publishUntil) },
  { header: 'removed', value: (key) => isoTime(key.removedAt) },
  { header: 'withdrawn', value: (key) => isoTime(key.withdrawnAt) },
];

/** Never private material: the summary has none. */
function keyJson(key: SigningKeySummary): Record<string, unknown> {
  return {
    kid: key.kid,
    alg: key.alg,
    status: key.status,
    created_at: isoTime(key.createdAt),
    activated_at: isoTime(key.activatedAt),
    retired_at: isoTime(key.retiredAt),
    publish_until: isoTime(key.publishUntil),
    removed_at: isoTime(key.removedAt),
    withdrawn_at: isoTime(key.withdrawnAt),
  };
}

/**
 * What a withdrawal means beyond this database, said every time (a dry run too): who still trusts
 * the key and for how long, and what happens to the tokens it signed.
 */
function withdrawalConsequences(result: WithdrawResult, cacheSeconds: number): string[] {
  const will = result.dryRun ? 'would' : 'will';
  return [
    `note: every aa-oidc instance ${result.dryRun ? 'would stop' : 'stops'} publishing it and accepting what it signed (an id_token_hint at logout or authorization) at its next key reload (keys.reloadIntervalMs)`,
    `note: relying parties holding a copy of the JWKS fetched before now keep trusting it until they fetch the JWKS again: up to ${cacheSeconds} s (keys.jwksCacheSeconds), depending on their library`,
    `note: tokens it signed ${will} no longer verify wherever the JWKS is fetched afresh (ID tokens, and JWT access tokens that resource servers verify themselves); ` +
      "aa-oidc's introspection and userinfo find access tokens by their stored value, not by signature: they never accepted a token forged with it, and keep accepting the ones it issued until they expire or are revoked",
    'note: if its private part leaked, relying parties may have accepted tokens forged with it: tell their operators; `aa-oidc tokens revoke-user --username U` revokes a user’s tokens and ends their sessions',
  ];
}

function withKeyService<T>(io: CliIo, work: (keys: KeyService) => Promise<T>): Promise<T> {
  return withServices(io, (services) => work(services.keys));
}

/** The largest PEM file `keys import` reads: an RSA key of 4096 bits (the largest accepted) is about 3.3 KB. */
const PEM_FILE_LIMIT = 64 * 1024;

/**
 * The text of `--pem FILE`, read at most `PEM_FILE_LIMIT` + 1 bytes: a larger file (or /dev/zero,
 * a pipe that never ends) is refused before it fills the memory. A relative name is in the
 * command's working folder `cwd`, as `backup --to`'s and the configuration's relative paths are.
 */
async function readPem(file: string, cwd: string): Promise<string> {
  // path.resolve would make "" the working folder, and a name of spaces is a slip, not a file.
  if (file.trim() === '')
    throw new KeyError(
      'invalid_key',
      `--pem needs the name of the PEM file to import (got ${quotedInput(file)})`,
    );
  const resolved = path.resolve(cwd, file);
  // A relative name is told with the file it stands for: where the command looked.
  const named = resolved === file ? file : `${file} (${resolved})`;
  const buffer = Buffer.alloc(PEM_FILE_LIMIT + 1);
  let length = 0;
  try {
    const handle = await open(resolved, 'r');
    try {
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length > PEM_FILE_LIMIT) break;
      }
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new KeyError(
      'invalid_key',
      `--pem ${named}: cannot read it: ${whyUnreadable(error, { file: 'the PEM file of the private key to import' })}`,
    );
  }
  if (length > PEM_FILE_LIMIT)
    throw new KeyError(
      'invalid_key',
      `--pem ${named}: larger than ${PEM_FILE_LIMIT / 1024} KiB; a PEM private key is a few kilobytes`,
    );
  return buffer.toString('utf8', 0, length);
}

export function registerKeys(program: Command, io: CliIo): void {
  const keys = program
    .command('keys')
    .description(
      'signing keys: list, rotate, retire, prepare-next, import, withdraw (lifecycle next → active → retired → removed; withdraw: straight to removed)',
    );

  keys
    .command('list')
    .description('list every signing key (never private material)')
    .addOption(formatOption())
    .action(async (options: { format: OutputFormat }) => {
      // The keys' public metadata only: listed even when AA_OIDC_SECRET_KEY cannot decrypt their
      // private parts (which stops serve and the commands that load them), so that the operator can
      // see which keys the database holds; a note on stderr names those (E013 of aa-oidc check).
      const [rows, unloadable] = await withServices(
        io,
        async (services) => [
          await services.keys.list(),
          await unloadableSigningKeys(services.database.db, services.config),
        ],
        { loadSigningKeys: false },
      );
      io.stdout.write(renderRows(rows, COLUMNS, options.format, keyJson));
      if (unloadable.length > 0)
        io.stderr.write(
          textLines(
            signingKeyLoadChecks(unloadable).map(
              (finding) => `aa-oidc: note: ${finding.message} (${finding.id}; see aa-oidc check)`,
            ),
          ),
        );
    });

  keys
    .command('rotate')
    .description(
      'activate the next key (or a new one), retire the active key (it stays published for the longest token lifetime), and prepare a new next key; ' +
        'refused while the next key has been published for less than keys.jwksCacheSeconds (relying parties caching the JWKS would not know it yet), or when there is no next key (`keys prepare-next` makes one), unless --force',
    )
    .option(
      '--dry-run',
      'show what would change, change nothing; exits 1, as the rotation would, when it would be refused',
    )
    .option(
      '--force',
      'rotate even when relying parties may not know the key yet (they may reject new ID tokens until they fetch the JWKS again)',
    )
    .action(async (options: { dryRun?: boolean; force?: boolean }) => {
      const force = options.force === true;
      const result = await withKeyService(io, async (service) => {
        try {
          return await service.rotate({ dryRun: options.dryRun === true, force, actor: cliActor(io) });
        } catch (error) {
          if (error instanceof KeyError && error.code === 'unpublished_key') {
            throw new KeyError(
              error.code,
              `${error.message}. To rotate now anyway: aa-oidc keys rotate --force`,
            );
          }
          throw error;
        }
      });
      const retiredUntil = isoTime(result.retiredPublishUntil);
      const { unpublished } = result;
      const lines = result.dryRun
        ? [
            'dry run: nothing changed',
            `would activate: ${result.promotedNext ? `${result.activatedKid} (the next key)` : 'a new key'}`,
            `would retire: ${result.retiredKid === null ? 'nothing (there is no active key)' : `${result.retiredKid} (published until about ${retiredUntil})`}`,
            'would create: a new next key',
            ...result.removedKids.map((kid) => `would remove: ${kid} (publication ended)`),
            ...(unpublished && force ? [`would rotate only because of --force: ${unpublished.message}`] : []),
          ]
        : [
            `active: ${result.activatedKid} (${result.promotedNext ? 'was the next key' : 'new key'})`,
            `retired: ${result.retiredKid === null ? 'nothing (there was no active key)' : `${result.retiredKid} (published until ${retiredUntil})`}`,
            `next: ${result.nextKid} (published now, signs after the next rotation)`,
            ...result.removedKids.map((kid) => `removed: ${kid} (publication ended)`),
            ...(unpublished ? [`forced: ${unpublished.message}`] : []),
          ];
      io.stdout.write(textLines(lines));
      if (result.dryRun && unpublished && !force)
        throw new CliError(
          `dry run: the rotation would be refused: ${unpublished.message}. To rotate now anyway: aa-oidc keys rotate --force`,
        );
    });

  keys
    .command('prepare-next')
    .description(
      'generate a next key and publish it now, activating nothing (after `keys retire` of the next key): `keys rotate` activates it once it has been published for keys.jwksCacheSeconds; ' +
        'refused when there is a next key already',
    )
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (options: { dryRun?: boolean }) => {
      const result = await withKeyService(io, (service) =>
        service.prepareNext({ dryRun: options.dryRun === true, actor: cliActor(io) }),
      );
      const safeAt = isoTime(result.rotationSafeAt);
      const lines = result.dryRun
        ? [
            'dry run: nothing changed',
            `would create: a new next key (published at once; \`aa-oidc keys rotate\` activates it from about ${safeAt})`,
          ]
        : [
            `next: ${result.kid} (published now; \`aa-oidc keys rotate\` activates it from ${safeAt}, once relying parties caching the JWKS hold it)`,
            ...result.removedKids.map((kid) => `removed: ${kid} (publication ended)`),
          ];
      io.stdout.write(textLines(lines));
    });

  keys
    .command('import')
    .description(
      "import an RSA private key (PEM), such as the Python plugin's OIDC_RSA_PRIVATE_KEY, so that tokens it signed keep verifying; by default it becomes the active signing key at once (relying parties see the same key as before, if they knew it from the plugin); " +
        'refused unless a signature made with it verifies with its public key',
    )
    .addOption(
      fileOption(
        '--pem <file>',
        'the PEM file (one RSA key of 2048 to 4096 bits with public exponent 65537, PKCS#1 or PKCS#8, unencrypted, at most 64 KiB); never printed',
      ).makeOptionMandatory(),
    )
    .addOption(
      new Option(
        '--as <status>',
        'active: sign with it from now on; next: publish it now, `keys rotate` activates it later (refused when there is a next key); retired: only publish it',
      )
        .choices(['active', 'next', 'retired'])
        .default('active'),
    )
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (options: { pem: string; as: 'active' | 'next' | 'retired'; dryRun?: boolean }) => {
      const pem = await readPem(options.pem, io.cwd);
      const { result, cacheSeconds } = await withKeyService(io, async (service) => ({
        result: await service.importKey(pem, {
          as: options.as,
          dryRun: options.dryRun === true,
          actor: cliActor(io),
        }),
        cacheSeconds: service.jwksCacheSeconds(),
      }));
      const until = isoTime(result.publishUntil);
      const detail =
        result.status === 'retired'
          ? ` (published until ${until})`
          : result.status === 'next'
            ? ` (published from now; \`aa-oidc keys rotate\` activates it from ${result.dryRun ? 'about ' : ''}${isoTime(result.rotationSafeAt)})`
            : '';
      const lines = [
        `${result.dryRun ? 'dry run, nothing changed; would import' : 'imported'}: ${result.kid} as ${result.status}${detail}`,
        ...(result.retiredKid
          ? [`${result.dryRun ? 'would retire' : 'retired'}: ${result.retiredKid} (published until ${until})`]
          : []),
        // The key signs at once: unlike a rotation's, it was never published here beforehand.
        ...(result.status === 'active' && result.retiredKid
          ? [
              `note: ${result.kid} ${result.dryRun ? 'would sign' : 'signs'} at once; relying parties know it only if they fetched it before (from the plugin's JWKS); ` +
                `others holding a copy of this server's JWKS (kept up to ${cacheSeconds} s, keys.jwksCacheSeconds) may reject new ID tokens until they fetch it again`,
            ]
          : []),
      ];
      io.stdout.write(textLines(lines));
    });

  keys
    .command('retire')
    .description(
      'retire a next key (the active key is retired by `keys rotate`; a key whose private part leaked: `keys withdraw`)',
    )
    .argument('<kid>', 'the key id, as `keys list` shows it')
    .option('--dry-run', 'show what would change, change nothing')
    // A kid is a base64url thumbprint and may start with "-": anything that is not one of this
    // command's options is the kid (an unknown word is then refused as "not a key id").
    .allowUnknownOption()
    .action(async (kid: string, options: { dryRun?: boolean }) => {
      const result = await withKeyService(io, (service) =>
        service.retire(kid, { dryRun: options.dryRun === true, actor: cliActor(io) }),
      );
      const prefix = result.dryRun ? 'dry run, nothing changed; would retire' : 'retired';
      const lines = [
        `${prefix}: ${result.key.kid} (a next key signs nothing, so it leaves JWKS at the next clean-up)`,
      ];
      for (const removed of result.removedKids) lines.push(`removed: ${removed} (publication ended)`);
      // Without a next key, a rotation would activate a key no relying party has seen.
      lines.push(
        `note: there ${result.dryRun ? 'would be' : 'is'} no next key; \`aa-oidc keys prepare-next\` publishes a new one, which \`aa-oidc keys rotate\` activates once it has been published for keys.jwksCacheSeconds`,
      );
      io.stdout.write(textLines(lines));
    });

  keys
    .command('withdraw')
    .description(
      'withdraw a key whose private part may have leaked: it leaves JWKS at once (not when its publication ends), its private part is erased, and tokens it signed stop verifying; ' +
        'the active key is replaced in the same step as in a rotation (the next key signs from now on; refused, unless --force, when relying parties may not know that key yet)',
    )
    .argument('<kid>', 'the key id, as `keys list` shows it (next, active or retired)')
    .option(
      '--dry-run',
      'show what would change, change nothing; exits 1, as the withdrawal would, when it would be refused',
    )
    .option(
      '--force',
      'withdraw the active key even when the key activated in its place may be unknown to relying parties (they may reject new ID tokens until they fetch the JWKS again); usually right when the key leaked',
    )
    // A kid may start with "-", as for `keys retire`.
    .allowUnknownOption()
    .action(async (kid: string, options: { dryRun?: boolean; force?: boolean }) => {
      const force = options.force === true;
      const { result, cacheSeconds } = await withKeyService(io, async (service) => {
        try {
          return {
            result: await service.withdraw(kid, {
              dryRun: options.dryRun === true,
              force,
              actor: cliActor(io),
            }),
            cacheSeconds: service.jwksCacheSeconds(),
          };
        } catch (error) {
          if (error instanceof KeyError && error.code === 'unpublished_key') {
            throw new KeyError(
              error.code,
              `${error.message}. A leaked key is the greater risk; to withdraw it now anyway: aa-oidc keys withdraw ${kid} --force`,
            );
          }
          throw error;
        }
      });
      const { unpublished } = result;
      const was = `was the ${result.formerStatus} key`;
      const lines = result.dryRun
        ? [
            'dry run: nothing changed',
            `would withdraw: ${result.key.kid} (${was}; it would leave JWKS at once and its private part would be erased)`,
            ...(result.formerStatus === 'active'
              ? [
                  `would activate: ${result.promotedNext ? `${result.activatedKid} (the next key)` : 'a new key'}`,
                  'would create: a new next key',
                ]
              : []),
            ...(unpublished && force
              ? [`would withdraw only because of --force: ${unpublished.message}`]
              : []),
          ]
        : [
            `withdrawn: ${result.key.kid} (${was}; no longer published, private part erased)`,
            ...(result.activatedKid
              ? [
                  `active: ${result.activatedKid} (${result.promotedNext ? 'was the next key' : 'new key'})`,
                  `next: ${result.nextKid} (published now, signs after the next rotation)`,
                ]
              : []),
            ...result.removedKids.map((removed) => `removed: ${removed} (publication ended)`),
            ...(unpublished ? [`forced: ${unpublished.message}`] : []),
          ];
      lines.push(...withdrawalConsequences(result, cacheSeconds));
      // Withdrawing the next key leaves none: a later rotation would activate a key never published.
      if (result.formerStatus === 'next')
        lines.push(
          `note: there ${result.dryRun ? 'would be' : 'is'} no next key; \`aa-oidc keys prepare-next\` publishes a new one`,
        );
      io.stdout.write(textLines(lines));
      if (result.dryRun && unpublished && !force)
        throw new CliError(
          `dry run: the withdrawal would be refused: ${result.key.kid} is the active key and withdrawing it activates another in its place, but ${unpublished.message}. ` +
            `A leaked key is the greater risk; to withdraw it now anyway: aa-oidc keys withdraw ${kid} --force`,
        );
    });
}
