import type { Transaction } from 'kysely';
import type { Config } from '../config/load.ts';
import type { DatabaseKind } from '../db/connect.ts';
import type { Database, SigningKeyRow } from '../db/schema.ts';
import type { Logger } from '../logging/logger.ts';
import {
  deriveKeyEncryptionKey,
  encryptPrivateJwk,
  type GeneratedSigningKey,
  generateSigningKey,
  signingKeyFromPem,
} from './crypto.ts';
import { erasingKeyWrite, type KeyDatabase } from './erasure.ts';
import { quotedInput } from '../util/visible-text.ts';
import { KeyError } from './errors.ts';
import {
  allKeyRows,
  insertKeyRow,
  keyRow,
  keyRowsByStatus,
  lockSigningKeys,
  removeExpiredKeys,
  setKeyStatus as setStatus,
  toSummary,
  withdrawKeyRow,
} from './queries.ts';
import type {
  ExpectedWithdrawal,
  ImportResult,
  KeyChange,
  KeyService,
  PrepareNextResult,
  RotationResult,
  SigningKeySummary,
  UnpublishedKey,
  WithdrawResult,
} from './types.ts';

export type {
  ImportResult,
  KeyService,
  PrepareNextResult,
  RetireResult,
  RotationResult,
  UnpublishedKey,
  WithdrawResult,
} from './types.ts';
export { KeyError, type KeyErrorCode } from './errors.ts';

/**
 * The one write path for signing keys (the lifecycle rules behind `KeyService`, types.ts): every
 * write takes the writers' lock and re-reads the state first; the SQL is in queries.ts.
 */

export interface KeyServiceDatabase extends KeyDatabase {
  kind: DatabaseKind;
}

export interface KeyServiceOptions {
  /** The clock (epoch milliseconds) the lifecycle dates are taken from; tests inject one. */
  now?: () => number;
  /** Told of every committed lifecycle change (the composition root makes it an audit event). */
  onKeyChange?: (change: KeyChange) => void;
}

const KID_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const STATUS_ORDER: Record<SigningKeySummary['status'], number> = {
  active: 0,
  next: 1,
  retired: 2,
  removed: 3,
};

/** `90 s`, `15 min`, `24 h`: a duration as an operator reads it. */
function describeSeconds(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  if (whole < 120) return `${whole} s`;
  if (whole < 7200) return `${Math.round(whole / 60)} min`;
  return `${Math.round((whole / 3600) * 10) / 10} h`;
}

/** Refuses anything that cannot be a kid before a query sees it, quoting at most 64 characters of it. */
function checkKid(kid: unknown): asserts kid is string {
  if (typeof kid === 'string' && KID_PATTERN.test(kid)) return;
  throw new KeyError(
    'invalid_kid',
    `${quotedInput(String(kid))} is not a key id: expected the 43-character kid shown by \`aa-oidc keys list\``,
  );
}

/** A key JWKS publishes: any but a removed one. */
type PublishedKeyRow = SigningKeyRow & { status: WithdrawResult['formerStatus'] };
const isPublished = (row: SigningKeyRow): row is PublishedKeyRow => row.status !== 'removed';

const unknownKid = (kid: string) =>
  new KeyError('unknown_kid', `no signing key has kid ${kid}; \`aa-oidc keys list\` shows them`);

export function createKeyService(
  database: KeyServiceDatabase,
  config: Pick<Config, 'secretKey' | 'tokens' | 'keys'>,
  logger?: Logger,
  options: KeyServiceOptions = {},
): KeyService {
  const { db, kind } = database;
  const encryptionKey = deriveKeyEncryptionKey(config.secretKey);
  const clock = options.now ?? Date.now;
  const { onKeyChange } = options;

  /** Tells the listener of a committed change; a listener that throws leaves the change standing. */
  const tell = (change: KeyChange) => {
    try {
      onKeyChange?.(change);
    } catch (error) {
      // Only its audit event is missing, which the change's own log line replaces.
      logger?.error(
        { err: error, kid: change.kid, action: change.action },
        'a signing-key change listener failed',
      );
    }
  };

  const retiredPublicationSeconds = () =>
    Math.max(
      config.tokens.accessTokenTtl,
      config.tokens.refreshTokenTtl,
      config.tokens.idTokenTtl,
      config.keys.retiredRetentionSeconds,
    );

  /**
   * Until when a key retired at `retiredAt` stays published: the longest token lifetime after the
   * last token it can have signed. An instance that has not reloaded since the rotation signs with it
   * for up to `keys.reloadIntervalMs` more (the same lag `rotationSafeAt` allows for).
   */
  const retiredKeyPublishedUntil = (retiredAt: number) =>
    retiredAt + retiredPublicationSeconds() * 1000 + config.keys.reloadIntervalMs;

  /** When a next key published at `publishedAt` may be activated without forcing the rotation. */
  const rotationSafeAt = (publishedAt: number) =>
    publishedAt + config.keys.jwksCacheSeconds * 1000 + config.keys.reloadIntervalMs;

  /**
   * Null when activating the next key (or a new one, when there is none) cannot catch a relying party
   * out; else why it can. A relying party may hold a copy of the JWKS for `keys.jwksCacheSeconds`,
   * and every instance publishes a key written by another within `keys.reloadIntervalMs`: a key
   * published less long ago is missing from some copies, whose holders would reject the tokens it
   * signs. With no active key nothing has been signed yet, and no copy is worth keeping. The
   * message's advice fits the `operation` that would activate the key: a rotation can wait, a
   * withdrawal (a leaked key) is told what waiting would spare.
   */
  const unpublishedKey = (
    active: SigningKeyRow | undefined,
    next: SigningKeyRow | undefined,
    now: number,
    operation: 'rotation' | 'withdrawal',
  ): UnpublishedKey | null => {
    if (!active) return null;
    const cacheSeconds = config.keys.jwksCacheSeconds;
    const cached = `relying parties may keep a copy of the JWKS for up to ${describeSeconds(cacheSeconds)} (keys.jwksCacheSeconds)`;
    if (!next) {
      return {
        reason: 'no_next_key',
        safeAt: null,
        message:
          `there is no next key (it was retired or withdrawn), so a new key would sign at once; ${cached}, ` +
          `and those holding one fetched before the ${operation} would reject the ID tokens the new key signs. ` +
          (operation === 'rotation'
            ? `Prepare a next key instead (aa-oidc keys prepare-next) and rotate once it has been published for ${describeSeconds(cacheSeconds)}`
            : `To withdraw without that risk, prepare a next key (aa-oidc keys prepare-next) and withdraw once it has been published for ${describeSeconds(cacheSeconds)}`),
      };
    }
    const publishedAt = Number(next.created_at);
    const safeAt = rotationSafeAt(publishedAt);
    if (now >= safeAt) return null;
    const safeFrom = new Date(safeAt).toISOString();
    return {
      reason: 'recent_next_key',
      safeAt,
      message:
        `the next key ${next.kid} was published only ${describeSeconds((now - publishedAt) / 1000)} ago ` +
        `(${new Date(publishedAt).toISOString()}); ${cached}, and those holding one fetched before then ` +
        `would reject the ID tokens it signs. ` +
        (operation === 'rotation'
          ? `Rotating is safe from ${safeFrom}`
          : `It can take the active key's place without that risk from ${safeFrom}`),
    };
  };

  /**
   * A key write may erase private parts (a withdrawal; all but an import remove the expired keys
   * first): `erased` says from its result whether it did (erasure.ts).
   */
  const writeTransaction = <T>(
    erased: (result: T) => boolean,
    work: (trx: Transaction<Database>) => Promise<T>,
  ): Promise<T> =>
    erasingKeyWrite(
      database,
      async (trx) => {
        await lockSigningKeys(trx, kind);
        return work(trx);
      },
      erased,
      logger,
    );
  const removedAny = (result: { removedKids: string[] }) => result.removedKids.length > 0;
  const erasedAlways = () => true;
  const erasedNothing = () => false;

  const insertKey = (
    trx: Transaction<Database>,
    key: GeneratedSigningKey,
    status: 'next' | 'active' | 'retired',
    now: number,
    publishUntil: number | null = null,
  ): Promise<void> =>
    insertKeyRow(
      trx,
      {
        kid: key.kid,
        publicJwk: key.publicJwk,
        privateJwkEncrypted: encryptPrivateJwk(key.privateJwk, key.kid, encryptionKey),
      },
      status,
      now,
      publishUntil,
    );

  /** Hands out keys generated ahead of the transaction, generating more only if the state moved. */
  const keyPool = (prepared: GeneratedSigningKey[]) => async () => prepared.shift() ?? generateSigningKey();

  /**
   * Puts a key in the active slot, left free by the caller: the next key if there is one, else a new
   * key; then prepares a new next key. Returns both kids.
   */
  const activateNextOrNew = async (
    trx: Transaction<Database>,
    next: SigningKeyRow | undefined,
    take: () => Promise<GeneratedSigningKey>,
    now: number,
  ): Promise<{ activeKid: string; nextKid: string }> => {
    let activeKid: string;
    if (next) {
      await setStatus(trx, next.kid, 'next', { status: 'active', activated_at: now });
      activeKid = next.kid;
    } else {
      const key = await take();
      await insertKey(trx, key, 'active', now);
      activeKid = key.kid;
    }
    const nextKey = await take();
    await insertKey(trx, nextKey, 'next', now);
    return { activeKid, nextKid: nextKey.kid };
  };

  const only = (rows: SigningKeyRow[], status: string): SigningKeyRow | undefined => {
    if (rows.length > 1) throw new Error(`more than one ${status} signing key (database integrity)`);
    return rows[0];
  };

  /** There is one next key at most: a second would make which one a rotation activates a guess. */
  const refuseSecondNext = (next: SigningKeyRow | undefined, outcome: string) => {
    if (!next) return;
    const publishedAt = Number(next.created_at);
    throw new KeyError(
      'next_key_exists',
      `there is already a next key, ${next.kid}, published since ${new Date(publishedAt).toISOString()}: ` +
        `a rotation activates it (without --force from ${new Date(rotationSafeAt(publishedAt)).toISOString()}); ${outcome}. ` +
        `To replace it, retire it first (aa-oidc keys retire ${next.kid})`,
    );
  };

  const service: KeyService = {
    retiredPublicationSeconds,
    jwksCacheSeconds: () => config.keys.jwksCacheSeconds,

    async ensureActiveKey() {
      const current = only(await keyRowsByStatus(db, 'active'), 'active');
      if (current) return toSummary(current);
      const hasNext = (await keyRowsByStatus(db, 'next')).length > 0;
      const take = keyPool(
        await Promise.all(hasNext ? [generateSigningKey()] : [generateSigningKey(), generateSigningKey()]),
      );
      const { summary, created } = await writeTransaction(removedAny, async (trx) => {
        const now = clock();
        const removedKids = await removeExpiredKeys(trx, now);
        const active = only(await keyRowsByStatus(trx, 'active'), 'active');
        // Another instance or process got there first.
        if (active) return { summary: toSummary(active), created: null, removedKids };
        const next = only(await keyRowsByStatus(trx, 'next'), 'next');
        const { activeKid, nextKid } = await activateNextOrNew(trx, next, take, now);
        const row = await keyRow(trx, activeKid);
        const creation: KeyChange = {
          action: 'created',
          kid: activeKid,
          formerStatus: next ? 'next' : null,
          nextKid,
          // Nobody asked for it: a process found no key to sign with (a database's first start).
          actor: 'system',
        };
        return { summary: toSummary(row!), created: creation, removedKids };
      });
      if (created) {
        logger?.info({ activeKid: created.kid, nextKid: created.nextKid }, 'created the active signing key');
        tell(created);
      }
      return summary;
    },

    async list() {
      return (await allKeyRows(db))
        .map(toSummary)
        .sort(
          (a, b) =>
            STATUS_ORDER[a.status] - STATUS_ORDER[b.status] ||
            b.createdAt - a.createdAt ||
            a.kid.localeCompare(b.kid),
        );
    },

    async rotate(options = {}) {
      if (options.dryRun) {
        const now = clock();
        const active = only(await keyRowsByStatus(db, 'active'), 'active');
        const next = only(await keyRowsByStatus(db, 'next'), 'next');
        const expired = (await keyRowsByStatus(db, 'retired')).filter(
          (row) => row.publish_until !== null && Number(row.publish_until) <= now,
        );
        return {
          dryRun: true,
          activatedKid: next?.kid ?? null,
          promotedNext: next !== undefined,
          retiredKid: active?.kid ?? null,
          retiredPublishUntil: active ? retiredKeyPublishedUntil(now) : null,
          nextKid: null,
          removedKids: expired.map((row) => row.kid).sort(),
          unpublished: unpublishedKey(active, next, now, 'rotation'),
        };
      }
      const hasNext = (await keyRowsByStatus(db, 'next')).length > 0;
      const take = keyPool(
        await Promise.all(hasNext ? [generateSigningKey()] : [generateSigningKey(), generateSigningKey()]),
      );
      const result = await writeTransaction(removedAny, async (trx): Promise<RotationResult> => {
        const now = clock();
        const removedKids = await removeExpiredKeys(trx, now);
        const active = only(await keyRowsByStatus(trx, 'active'), 'active');
        const next = only(await keyRowsByStatus(trx, 'next'), 'next');
        const { expect } = options;
        if (
          expect &&
          (expect.activeKid !== (active?.kid ?? null) || expect.nextKid !== (next?.kid ?? null))
        ) {
          throw new KeyError(
            'keys_changed',
            'the signing keys changed since this rotation was shown (another rotation or an import came first); nothing was rotated: review the rotation again',
          );
        }
        const unpublished = unpublishedKey(active, next, now, 'rotation');
        if (unpublished && !options.force) {
          throw new KeyError('unpublished_key', `${unpublished.message}; nothing was rotated`);
        }
        let retiredPublishUntil: number | null = null;
        // Order matters for the partial unique indexes: free the active slot, then the next slot.
        if (active) {
          retiredPublishUntil = retiredKeyPublishedUntil(now);
          await setStatus(trx, active.kid, 'active', {
            status: 'retired',
            retired_at: now,
            publish_until: retiredPublishUntil,
          });
        }
        const { activeKid: activatedKid, nextKid } = await activateNextOrNew(trx, next, take, now);
        return {
          dryRun: false,
          activatedKid,
          promotedNext: next !== undefined,
          retiredKid: active?.kid ?? null,
          retiredPublishUntil,
          nextKid,
          removedKids,
          unpublished,
        };
      });
      logger?.info(
        {
          activeKid: result.activatedKid,
          retiredKid: result.retiredKid,
          nextKid: result.nextKid,
          removedKids: result.removedKids,
          ...(result.unpublished ? { forced: result.unpublished.reason } : {}),
        },
        'rotated signing keys',
      );
      tell({
        action: 'rotated',
        kid: result.activatedKid!,
        formerStatus: result.promotedNext ? 'next' : null,
        retiredKid: result.retiredKid,
        nextKid: result.nextKid!,
        forced: result.unpublished?.reason ?? null,
        actor: options.actor ?? null,
      });
      return result;
    },

    async prepareNext(options = {}) {
      refuseSecondNext(only(await keyRowsByStatus(db, 'next'), 'next'), 'nothing was prepared');
      if (options.dryRun) {
        const now = clock();
        return { dryRun: true, kid: null, rotationSafeAt: rotationSafeAt(now), removedKids: [] };
      }
      const key = await generateSigningKey();
      const result = await writeTransaction(removedAny, async (trx): Promise<PrepareNextResult> => {
        const now = clock();
        const removedKids = await removeExpiredKeys(trx, now);
        refuseSecondNext(only(await keyRowsByStatus(trx, 'next'), 'next'), 'nothing was prepared');
        await insertKey(trx, key, 'next', now);
        return { dryRun: false, kid: key.kid, rotationSafeAt: rotationSafeAt(now), removedKids };
      });
      logger?.info({ nextKid: result.kid, removedKids: result.removedKids }, 'prepared a next signing key');
      tell({ action: 'prepared', kid: result.kid!, actor: options.actor ?? null });
      return result;
    },

    async retire(kid, options = {}) {
      checkKid(kid);
      const check = (row: SigningKeyRow | undefined): SigningKeyRow => {
        if (!row) throw unknownKid(kid);
        switch (row.status) {
          case 'next':
            return row;
          case 'active':
            throw new KeyError(
              'active_key',
              `signing key ${kid} is the active key; retiring it would leave nothing to sign with. ` +
                'Run `aa-oidc keys rotate`, which activates another key and retires this one',
            );
          case 'retired':
          case 'removed':
            throw new KeyError(
              'not_retirable',
              `signing key ${kid} is already ${row.status}; only a next key can be retired (the active key is retired by \`aa-oidc keys rotate\`)`,
            );
          default:
            throw new Error(`unexpected signing key status ${String(row.status)}`);
        }
      };
      if (options.dryRun) {
        const row = check(await keyRow(db, kid));
        const now = clock();
        return {
          dryRun: true,
          key: { ...toSummary(row), status: 'retired', retiredAt: now, publishUntil: now },
          removedKids: [],
        };
      }
      const result = await writeTransaction(removedAny, async (trx) => {
        const row = check(await keyRow(trx, kid));
        const now = clock();
        const removedKids = await removeExpiredKeys(trx, now);
        // A next key never signed anything, so it need not stay published for a token lifetime: it
        // leaves JWKS at the next clean-up (within seconds while a server runs, see store.ts).
        await setStatus(trx, row.kid, 'next', { status: 'retired', retired_at: now, publish_until: now });
        const updated = await keyRow(trx, kid);
        return { dryRun: false, key: toSummary(updated!), removedKids };
      });
      logger?.info({ kid }, 'retired the next signing key');
      tell({ action: 'retired', kid, actor: options.actor ?? null });
      return result;
    },

    async withdraw(kid, options = {}) {
      checkKid(kid);
      const withdrawable = (row: SigningKeyRow | undefined): PublishedKeyRow => {
        if (!row) throw unknownKid(kid);
        if (isPublished(row)) return row;
        const removedAt = new Date(Number(row.removed_at)).toISOString();
        throw new KeyError(
          'already_removed',
          row.withdrawn_at === null
            ? `signing key ${kid} was removed at ${removedAt} when its publication ended: JWKS no longer lists it and its private part is erased; nothing to withdraw`
            : `signing key ${kid} was already withdrawn at ${new Date(Number(row.withdrawn_at)).toISOString()}: JWKS no longer lists it and its private part is erased; nothing to withdraw`,
        );
      };
      /** Withdrawing the active key needs a key to sign with instead: as a rotation would activate it. */
      const replacement = (row: SigningKeyRow, next: SigningKeyRow | undefined, now: number) => {
        if (row.status !== 'active') return null;
        const unpublished = unpublishedKey(row, next, now, 'withdrawal');
        if (unpublished && !options.force) {
          throw new KeyError(
            'unpublished_key',
            `${row.kid} is the active key and withdrawing it activates another in its place, but ${unpublished.message}; nothing was withdrawn`,
          );
        }
        return { next, unpublished };
      };
      const shownState = (
        row: PublishedKeyRow,
        active: SigningKeyRow | undefined,
        next: SigningKeyRow | undefined,
      ): ExpectedWithdrawal => ({
        status: row.status,
        activeKid: active?.kid ?? null,
        nextKid: next?.kid ?? null,
      });
      /** A confirmation shown for another state confirms nothing: the operator reviews the new one. */
      const refuseChanged = (expected: ExpectedWithdrawal, shown: ExpectedWithdrawal) => {
        const review = 'nothing was withdrawn: review the withdrawal again';
        if (expected.status !== shown.status) {
          throw new KeyError(
            'keys_changed',
            `signing key ${kid} is the ${shown.status} key now, not the ${expected.status} key as when this withdrawal was shown (a rotation, retirement or withdrawal came first); ${review}`,
          );
        }
        if (expected.activeKid !== shown.activeKid || expected.nextKid !== shown.nextKid) {
          const name = (other: string | null) => other ?? 'none';
          throw new KeyError(
            'keys_changed',
            `the signing keys changed since this withdrawal was shown (active key ${name(shown.activeKid)}, was ${name(expected.activeKid)}; ` +
              `next key ${name(shown.nextKid)}, was ${name(expected.nextKid)}: a rotation, withdrawal or import came first); ${review}`,
          );
        }
      };
      if (options.dryRun) {
        const now = clock();
        const row = withdrawable(await keyRow(db, kid));
        const active = only(await keyRowsByStatus(db, 'active'), 'active');
        const next = only(await keyRowsByStatus(db, 'next'), 'next');
        // A dry run reports what a real run would refuse instead of refusing.
        const unpublished = row.status === 'active' ? unpublishedKey(row, next, now, 'withdrawal') : null;
        const withdrawn = { ...toSummary(row), status: 'removed' as const, removedAt: now, withdrawnAt: now };
        return {
          dryRun: true,
          key: { ...withdrawn, retiredAt: withdrawn.retiredAt ?? now, publishUntil: now },
          formerStatus: row.status,
          shown: shownState(row, active, next),
          activatedKid: row.status === 'active' ? (next?.kid ?? null) : null,
          promotedNext: row.status === 'active' && next !== undefined,
          nextKid: null,
          removedKids: [],
          unpublished,
        };
      }
      // Withdrawing the active key activates one and prepares a next key: generated before the lock.
      const before = await keyRow(db, kid);
      const hasNext = (await keyRowsByStatus(db, 'next')).length > 0;
      const take = keyPool(
        before?.status !== 'active'
          ? []
          : await Promise.all(
              hasNext ? [generateSigningKey()] : [generateSigningKey(), generateSigningKey()],
            ),
      );
      // Always erases: the withdrawn key's private part.
      const result = await writeTransaction(erasedAlways, async (trx): Promise<WithdrawResult> => {
        const now = clock();
        const row = withdrawable(await keyRow(trx, kid));
        const active = only(await keyRowsByStatus(trx, 'active'), 'active');
        const next = only(await keyRowsByStatus(trx, 'next'), 'next');
        const shown = shownState(row, active, next);
        if (options.expect) refuseChanged(options.expect, shown);
        const replacing = replacement(row, next, now);
        // Before the clean-up: a retired key past its publication, not removed yet, is withdrawn too.
        // Order matters for the partial unique indexes: free the active slot, then the next slot.
        await withdrawKeyRow(trx, kid, row.status, now);
        const removedKids = await removeExpiredKeys(trx, now);
        const replaced = replacing ? await activateNextOrNew(trx, replacing.next, take, now) : null;
        return {
          dryRun: false,
          key: toSummary((await keyRow(trx, kid))!),
          formerStatus: row.status,
          shown,
          activatedKid: replaced?.activeKid ?? null,
          promotedNext: replacing !== null && replacing.next !== undefined,
          nextKid: replaced?.nextKid ?? null,
          removedKids,
          unpublished: replacing?.unpublished ?? null,
        };
      });
      logger?.warn(
        {
          kid,
          formerStatus: result.formerStatus,
          ...(result.activatedKid ? { activeKid: result.activatedKid, nextKid: result.nextKid } : {}),
          ...(result.unpublished ? { forced: result.unpublished.reason } : {}),
          actor: options.actor ?? null,
        },
        'withdrew a signing key: it is no longer published',
      );
      tell({
        action: 'withdrawn',
        kid,
        formerStatus: result.formerStatus,
        activatedKid: result.activatedKid,
        nextKid: result.nextKid,
        forced: result.unpublished?.reason ?? null,
        actor: options.actor ?? null,
      });
      return result;
    },

    async importKey(pem, options = {}) {
      const as = options.as ?? 'active';
      if (as !== 'active' && as !== 'next' && as !== 'retired') {
        throw new KeyError(
          'invalid_key',
          `cannot import a key as ${quotedInput(String(as))}: use active, next or retired`,
        );
      }
      let key: GeneratedSigningKey;
      try {
        key = await signingKeyFromPem(typeof pem === 'string' ? pem : '');
      } catch (error) {
        throw new KeyError('invalid_key', (error as Error).message);
      }
      const refuseExisting = (row: SigningKeyRow | undefined) => {
        if (row) {
          throw new KeyError(
            'already_imported',
            `this key is already known as ${row.kid} (status ${row.status}); \`aa-oidc keys list\` shows it`,
          );
        }
      };
      if (options.dryRun) {
        refuseExisting(await keyRow(db, key.kid));
        if (as === 'next')
          refuseSecondNext(only(await keyRowsByStatus(db, 'next'), 'next'), 'nothing was imported');
        const active = only(await keyRowsByStatus(db, 'active'), 'active');
        const now = clock();
        return {
          dryRun: true,
          kid: key.kid,
          status: as,
          retiredKid: as === 'active' ? (active?.kid ?? null) : null,
          publishUntil:
            as === 'retired' || (as === 'active' && active) ? retiredKeyPublishedUntil(now) : null,
          rotationSafeAt: as === 'next' ? rotationSafeAt(now) : null,
        };
      }
      // An import removes no expired key: it erases nothing.
      const result = await writeTransaction(erasedNothing, async (trx): Promise<ImportResult> => {
        refuseExisting(await keyRow(trx, key.kid));
        const now = clock();
        const publishUntil = retiredKeyPublishedUntil(now);
        if (as === 'retired') {
          await insertKey(trx, key, 'retired', now, publishUntil);
          return {
            dryRun: false,
            kid: key.kid,
            status: as,
            retiredKid: null,
            publishUntil,
            rotationSafeAt: null,
          };
        }
        // Published from now on, as a prepared next key: relying parties that cache the JWKS meet it
        // before it signs (it may have been published elsewhere before, but that cannot be known here).
        if (as === 'next') {
          refuseSecondNext(only(await keyRowsByStatus(trx, 'next'), 'next'), 'nothing was imported');
          await insertKey(trx, key, 'next', now);
          return {
            dryRun: false,
            kid: key.kid,
            status: as,
            retiredKid: null,
            publishUntil: null,
            rotationSafeAt: rotationSafeAt(now),
          };
        }
        const active = only(await keyRowsByStatus(trx, 'active'), 'active');
        if (active) {
          await setStatus(trx, active.kid, 'active', {
            status: 'retired',
            retired_at: now,
            publish_until: publishUntil,
          });
        }
        await insertKey(trx, key, 'active', now);
        return {
          dryRun: false,
          kid: key.kid,
          status: as,
          retiredKid: active?.kid ?? null,
          publishUntil: active ? publishUntil : null,
          rotationSafeAt: null,
        };
      });
      logger?.info(
        { kid: result.kid, status: result.status, retiredKid: result.retiredKid },
        'imported a signing key',
      );
      tell({
        action: 'imported',
        kid: result.kid,
        status: result.status,
        retiredKid: result.retiredKid,
        actor: options.actor ?? null,
      });
      return result;
    },

    async removeExpired(now = clock()) {
      const removed = await writeTransaction(
        (kids: string[]) => kids.length > 0,
        (trx) => removeExpiredKeys(trx, now),
      );
      if (removed.length > 0) logger?.info({ removedKids: removed }, 'removed expired signing keys');
      return removed;
    },
  };
  return service;
}
