import type { Kysely, Transaction } from 'kysely';
import { conflict } from '../directory/errors.ts';
import type { Directory } from '../directory/port.ts';
import type { Config } from '../config/load.ts';
import { isUniqueViolation } from '../db/errors.ts';
import type { Database } from '../db/schema.ts';
import { inUnitOfWork } from '../db/unit-of-work.ts';
import type { Logger } from '../logging/logger.ts';
import { syntacticBackchannelTargetCheck } from './backchannel-target.ts';
import { ApplicationError, quote } from './errors.ts';
import { hasControlCharacter } from './text.ts';
import {
  clientSecretDigest,
  generateClientId,
  generateClientSecret,
  IMPORTED_SECRET_MAX_ITERATIONS,
  matchesSecretFingerprint,
  verifyClientSecret,
} from './secret.ts';
import { parseDjangoPbkdf2, verifyDjangoPbkdf2 } from '../util/django-pbkdf2.ts';
import { lookalikeLookupHint } from '../util/lookalike-names.ts';
import { NUL_NOTE, shellWord } from '../util/shell-word.ts';
import {
  clientIdsInAnyCase,
  findApplication,
  insertApplication,
  listApplications,
  applicationsWhitelisting,
  renameWhitelisted,
  replaceImportedSecret,
  setActiveRow,
  setSecretDigest,
  updateApplicationRow,
} from './store.ts';
import type {
  Actor,
  Application,
  ApplicationChange,
  ApplicationChangeListener,
  ApplicationInput,
  ApplicationPatch,
  ApplicationService,
  BackchannelTargetCheck,
  ImportedSecret,
  ImportedSecretCheck,
  UpdateOptions,
  WhitelistChangeConsumer,
} from './types.ts';
import { type ValidApplication, type ValidationContext, validateApplicationInput } from './validate.ts';

export interface ApplicationServiceDependencies {
  /** The directory whose state and group names whitelists may name. */
  directory: Pick<Directory, 'listStates' | 'listGroups'>;
  /** The SSRF gate for back-channel logout URIs; default: the syntactic part only. */
  backchannelTargetCheck?: BackchannelTargetCheck;
  /** The clock, in epoch milliseconds. */
  now?: () => number;
}

const ACTOR_MAX = 150;
/** The longest client_id an application may be given (imported ones; generated ones are 32). */
export const CLIENT_ID_MAX = 100;
const NOTHING_TO_CHECK: ImportedSecretCheck = { against: 'none', matches: false };

/** Field names compared to report what an update changed (spec names, snake_case). */
const COMPARED_FIELDS = [
  ['name', 'name'],
  ['logoUrl', 'logo_url'],
  ['redirectUris', 'redirect_uris'],
  ['postLogoutRedirectUris', 'post_logout_redirect_uris'],
  ['grantTypes', 'grant_types'],
  ['skipAuthorization', 'skip_authorization'],
  ['states', 'states'],
  ['groups', 'groups'],
  ['active', 'active'],
  ['debugMode', 'debug_mode'],
  ['pkceRequired', 'pkce_required'],
  ['accessTokenFormat', 'access_token_format'],
  ['backchannelLogoutUri', 'backchannel_logout_uri'],
  ['backchannelLogoutOnRevokeOnly', 'backchannel_logout_on_revoke_only'],
  ['idTokenClaims', 'id_token_claims'],
] as const satisfies ReadonlyArray<readonly [keyof ValidApplication & keyof Application, string]>;

/** The one write path for applications: every method validates before it writes. */
export function createApplicationService(
  db: Kysely<Database>,
  config: Config,
  logger: Logger,
  dependencies: ApplicationServiceDependencies,
): ApplicationService {
  const kind = config.database.kind;
  const backchannelTargetCheck =
    dependencies.backchannelTargetCheck ?? syntacticBackchannelTargetCheck(config.mode);
  const now = dependencies.now ?? Date.now;
  const listeners = new Set<ApplicationChangeListener>();
  const whitelistConsumers = new Set<WhitelistChangeConsumer>();
  const log = logger.child({ component: 'applications' });

  async function validationContext(): Promise<ValidationContext> {
    const [states, groups] = await Promise.all([
      dependencies.directory.listStates(),
      dependencies.directory.listGroups(),
    ]);
    return {
      mode: config.mode,
      states: new Set(states.map((state) => state.name)),
      groups: new Set(groups.map((group) => group.name)),
      backchannelTargetCheck,
    };
  }

  function notify(change: ApplicationChange): void {
    log.info(change, 'application changed');
    for (const listener of listeners) {
      try {
        listener(change);
      } catch (error) {
        log.error(
          { err: error, clientId: change.clientId, action: change.action },
          'application change listener failed',
        );
      }
    }
  }

  async function existing(clientId: string): Promise<Application> {
    const application = await findByClientId(clientId);
    if (application === undefined) throw await unknownClientId(typeof clientId === 'string' ? clientId : '');
    return application;
  }

  /** Throws the conflict that names the application holding `clientId`, as spelt or in another case. */
  async function refuseTakenClientId(clientId: string): Promise<void> {
    const taken = await clientIdsInAnyCase(db, kind, clientId);
    if (taken.includes(clientId)) throw clientIdTaken(clientId);
    if (taken.length > 0) throw clientIdTakenInAnotherCase(clientId, taken[0]!);
  }

  async function unknownClientId(clientId: string): Promise<ApplicationError> {
    const hint = await lookalikeLookupHint(
      'application',
      clientId,
      async (latin) => (await findByClientId(latin))?.clientId,
    );
    return ApplicationError.notFound(clientId, hint);
  }

  async function findByClientId(clientId: string): Promise<Application | undefined> {
    // The client_id comes straight from requests: PostgreSQL refuses NUL in text, and nothing
    // longer than the column can exist, so such values are simply unknown.
    if (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > CLIENT_ID_MAX)
      return undefined;
    if (clientId.includes('\0')) return undefined;
    return findApplication(db, kind, clientId);
  }

  return {
    async create(input, actor, options = {}) {
      const createdBy = checkActor(actor);
      const clientId = input.clientId ?? generateClientId();
      const valid = await validateApplicationInput({ ...input, clientId }, await validationContext());
      await refuseTakenClientId(valid.clientId);
      if (options.dryRun) {
        return { application: preview(valid, null, createdBy, now()), clientSecret: null };
      }
      const imported =
        options.importedSecret === undefined
          ? undefined
          : checkImportedSecret(valid.clientType, options.importedSecret);
      const clientSecret = valid.clientType === 'confidential' && !imported ? generateClientSecret() : null;
      const secret = imported ?? { sha256: clientSecret === null ? null : clientSecretDigest(clientSecret) };
      const createdAt = now();
      try {
        await db.transaction().execute((trx) => insertApplication(trx, valid, secret, createdBy, createdAt));
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        // Lost a race for the client_id, as spelt or in another case, to a create that wrote it after
        // the read above (the primary key or the case-folded unique index refused this insert): report
        // it as that read would have.
        await refuseTakenClientId(valid.clientId).catch((readError: unknown) => {
          if (readError instanceof ApplicationError) throw readError;
          // The database refused the client_id, so the create is refused whatever the read says; only
          // which application holds it is not known. The read's failure is logged, not thrown: the
          // operator is told the client_id is taken, not a driver's message (or a 503 that a retry of
          // the same client_id turns into this refusal anyway).
          log.warn(
            { err: readError, clientId: valid.clientId },
            'a create lost the race for its client_id; reading which application holds it failed',
          );
        });
        throw clientIdTakenMeanwhile(valid.clientId);
      }
      const application = await existing(valid.clientId);
      notify({ clientId: valid.clientId, name: application.name, action: 'created', actor: createdBy });
      return { application, clientSecret };
    },

    async update(clientId, patch, actor, options = {}) {
      const by = checkActor(actor);
      const current = await existing(clientId);
      if (options.expectedVersion !== undefined && options.expectedVersion !== current.updatedAt)
        throw changedSinceShown(current);
      const merged = mergePatch(current, patch);
      const context = {
        ...(await validationContext()),
        storedName: current.name,
        storedLogoUrl: current.logoUrl,
        storedRedirectUris: current.redirectUris,
        storedPostLogoutRedirectUris: current.postLogoutRedirectUris,
        storedBackchannelLogoutUri: current.backchannelLogoutUri,
      };
      // An unchanged back-channel URI passed the whole gate when it was written and passes it again at
      // every delivery: an edit of something else (narrowing the whitelists, above all) is not refused
      // because the application's host does not resolve now, or resolves elsewhere.
      if (merged.backchannelLogoutUri === current.backchannelLogoutUri)
        context.backchannelTargetCheck = syntacticBackchannelTargetCheck(config.mode);
      const valid = await validateApplicationInput(merged, context);
      const changedFields = COMPARED_FIELDS.filter(
        ([key]) => JSON.stringify(valid[key]) !== JSON.stringify(current[key]),
      ).map(([, field]) => field);
      const whitelistsChanged = changedFields.includes('states') || changedFields.includes('groups');
      const consumed =
        (whitelistsChanged || (valid.active && !current.active)) && whitelistConsumers.size > 0;
      // A dry run of new whitelists (or of an activation) runs their consumers too (rolled back): it
      // tells who would lose the application. Any other dry run reads only.
      if ((options.dryRun && !consumed) || changedFields.length === 0) {
        return {
          application: changedFields.length === 0 ? current : preview(valid, current, by, now()),
          changedFields,
        };
      }
      const updated = await writeAdmission(
        current,
        (at) => preview(valid, current, by, at),
        consumed,
        (trx, at) => updateApplicationRow(trx, valid, at, whitelistsChanged, current.updatedAt),
        by,
        options,
      );
      if (!updated) throw await changedMeanwhile(clientId);
      if (options.dryRun) return { application: preview(valid, current, by, now()), changedFields };
      const application = await existing(clientId);
      notify({ clientId, name: application.name, action: 'updated', actor: by, fields: changedFields });
      return { application, changedFields };
    },

    async rotateSecret(clientId, actor, options = {}) {
      const by = checkActor(actor);
      const current = await existing(clientId);
      if (current.clientType !== 'confidential')
        throw new ApplicationError('invalid_input', [
          {
            field: 'client_type',
            message: `application ${quote(clientId)} is a public client and has no secret; only confidential clients have one to rotate`,
          },
        ]);
      if (
        options.expectedFingerprint !== undefined &&
        !matchesSecretFingerprint(current, options.expectedFingerprint)
      )
        throw secretChanged(current);
      if (options.dryRun) return { clientSecret: null };
      const clientSecret = generateClientSecret();
      const digest = clientSecretDigest(clientSecret);
      // Only over the secret read above: of two rotations at once, one writes and the other is told,
      // instead of both returning a secret and one of them already replaced.
      if (!(await setSecretDigest(db, clientId, digest, now(), current.clientSecretSha256))) {
        const latest = await findByClientId(clientId);
        throw latest === undefined ? ApplicationError.notFound(clientId) : secretChanged(latest);
      }
      notify({ clientId, name: current.name, action: 'secret_rotated', actor: by });
      return { clientSecret };
    },

    deactivate: (clientId, actor, options = {}) => switchActive(clientId, false, actor, options),
    activate: (clientId, actor, options = {}) => switchActive(clientId, true, actor, options),

    findByClientId,
    unknownClientId,

    async verifyImportedSecret(clientId, presented) {
      if (typeof presented !== 'string' || presented.length === 0 || presented.length > 1024)
        return NOTHING_TO_CHECK;
      const application = await findByClientId(clientId);
      if (!application) return NOTHING_TO_CHECK;
      const stored = application.clientSecretPbkdf2;
      // Replaced by a concurrent first success, or rotated, since the request loaded its client.
      if (stored === null) return { against: 'digest', matches: verifyClientSecret(application, presented) };
      const iterations = parseDjangoPbkdf2(stored)?.iterations;
      if (iterations === undefined) return NOTHING_TO_CHECK;
      if (iterations > IMPORTED_SECRET_MAX_ITERATIONS)
        return { against: 'too_costly', matches: false, iterations };
      if (!(await verifyDjangoPbkdf2(stored, presented))) return { against: 'hash', matches: false };
      if (
        await replaceImportedSecret(db, application.clientId, stored, clientSecretDigest(presented), now())
      ) {
        log.info(
          { clientId: application.clientId },
          'imported client secret verified and replaced by its SHA-256 digest',
        );
      }
      return { against: 'hash', matches: true };
    },

    async list(filter = {}) {
      if (filter.search !== undefined && (typeof filter.search !== 'string' || filter.search.includes('\0')))
        throw new ApplicationError('invalid_input', [
          { field: 'search', message: 'must be text without NUL bytes' },
        ]);
      return listApplications(db, kind, filter);
    },

    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    onWhitelistChange(consumer) {
      whitelistConsumers.add(consumer);
      return () => whitelistConsumers.delete(consumer);
    },

    // Whitelists name states and groups: a rename follows into them in the rename's unit of work,
    // and a whitelisted one may not go (its last whitelist entry gone, an application would open
    // to everyone past the global gate).
    async onDirectoryChange(change, unit) {
      switch (change.kind) {
        case 'catalog_renamed': {
          const renamed = await renameWhitelisted(unit.trx, change.entity, change.from, change.to, unit.at);
          if (renamed > 0)
            unit.afterCommit(() =>
              log.info(
                { entity: change.entity, from: change.from, to: change.to, whitelists: renamed },
                'whitelists follow a renamed state or group',
              ),
            );
          return;
        }
        case 'catalog_deleted': {
          const clientIds = await applicationsWhitelisting(unit.trx, change.entity, change.name);
          if (clientIds.length === 0) return;
          const word = shellWord(change.name);
          // A name no word can carry (`NUL_NOTE`) is removed by naming the ones to keep instead.
          const removal =
            word === undefined
              ? `on each application's page of the admin console, or with aa-oidc app update CLIENT_ID --${change.entity} NAME for each ${change.entity} it keeps: ${NUL_NOTE}`
              : `aa-oidc app update CLIENT_ID --remove-${change.entity} ${word}`;
          if (change.alreadyDeleted) {
            // Kept, not dropped: an emptied whitelist would admit everyone. It admits nobody now, but
            // a state or group given this name later would be admitted: the operator decides.
            unit.afterCommit(() =>
              log.warn(
                { entity: change.entity, name: change.name, clientIds },
                `the directory deleted ${change.entity} ${quote(change.name)}, which ${clientIds.length === 1 ? 'application' : 'applications'} ${clientIds.join(', ')} still whitelist${clientIds.length === 1 ? 's' : ''}: it admits nobody now, but a ${change.entity} given that name later would be admitted; remove it (${removal}), after whitelisting what should admit people instead: an application whose whitelists are empty admits everyone past the global gate`,
              ),
            );
            return;
          }
          throw conflict(
            `refusing to delete ${change.entity} ${quote(change.name)}: ${clientIds.length === 1 ? 'application' : 'applications'} ${clientIds.join(', ')} whitelist${clientIds.length === 1 ? 's' : ''} it; remove it first (${removal})`,
          );
        }
        default:
          return;
      }
    },
  };

  /**
   * Writes a change to an application (`write`, in a unit of work) and, when it may admit fewer users
   * than before (`consumed`: new whitelists, or the application activated), runs the consumers
   * subscribed with `onWhitelistChange` on it: `prepare` before the unit opens (what they read
   * without a lock), `inUnit` after the write, so that what they take from users commits with it. A
   * dry run's unit is rolled back. False when the application is gone.
   */
  async function writeAdmission(
    current: Application,
    after: (at: number) => Application,
    consumed: boolean,
    write: (trx: Transaction<Database>, at: number) => Promise<boolean>,
    actor: string,
    options: UpdateOptions,
  ): Promise<boolean> {
    const consumers = consumed ? [...whitelistConsumers] : [];
    const prepared = await Promise.all(
      consumers.map((consumer) => consumer.prepare({ before: current, after: after(now()) })),
    );
    return inUnitOfWork(
      db,
      async (unit) => {
        if (!(await write(unit.trx, unit.at))) return false;
        const change = { before: current, after: after(unit.at) };
        for (const [index, consumer] of consumers.entries())
          await consumer.inUnit(change, unit, prepared[index]);
        return true;
      },
      {
        dryRun: options.dryRun === true,
        actor,
        now,
        onCallbackError: (error) =>
          log.error(
            { err: error, clientId: current.clientId },
            'a notification after an application change failed',
          ),
        ...(options.consequences ? { consequences: options.consequences } : {}),
      },
    );
  }

  /**
   * The error for a write that found its application gone, or changed by another write since it was
   * read (what it decided, and whom it judged, was decided on the application as it was).
   */
  async function changedMeanwhile(clientId: string): Promise<ApplicationError> {
    if ((await findByClientId(clientId)) === undefined) return unknownClientId(clientId);
    return new ApplicationError('conflict', [
      {
        field: 'client_id',
        message: `application ${quote(clientId)} was changed by someone else while this change was being made; nothing was written: look at it again and retry`,
      },
    ]);
  }

  async function switchActive(
    clientId: string,
    active: boolean,
    actor: Actor,
    options: UpdateOptions,
  ): Promise<Application> {
    const by = checkActor(actor);
    const current = await existing(clientId);
    if (current.active === active) return current;
    // Activated, it admits again whoever its whitelists admit now: those who lost it meanwhile (a
    // state or group change, narrower whitelists while it was off) lose their tokens there now.
    const consumed = active && whitelistConsumers.size > 0;
    if (options.dryRun && !consumed) return { ...current, active };
    const written = await writeAdmission(
      current,
      (at) => ({ ...current, active, updatedAt: at }),
      consumed,
      (trx, at) => setActiveRow(trx, clientId, active, at, current.updatedAt),
      by,
      options,
    );
    if (!written) {
      // Another operator switched it first: theirs is the change (and its consequences).
      const switched = await findByClientId(clientId);
      if (switched?.active === active) return switched;
      throw await changedMeanwhile(clientId);
    }
    if (options.dryRun) return { ...current, active };
    const application = await existing(clientId);
    notify({
      clientId,
      name: application.name,
      action: active ? 'activated' : 'deactivated',
      actor: by,
    });
    return application;
  }
}

/** The stored form of an imported secret, checked: a confidential client, a digest or a Django hash. */
function checkImportedSecret(
  clientType: string,
  secret: ImportedSecret,
): { sha256: string; pbkdf2: string | null } {
  const invalid = (message: string) =>
    new ApplicationError('invalid_input', [{ field: 'client_secret', message }]);
  if (clientType !== 'confidential') throw invalid('only a confidential client has a secret to import');
  if ('sha256Hex' in secret) {
    if (typeof secret.sha256Hex !== 'string' || !/^[0-9a-f]{64}$/.test(secret.sha256Hex))
      throw invalid('an imported digest must be 64 lowercase hex characters (SHA-256)');
    return { sha256: secret.sha256Hex, pbkdf2: null };
  }
  const parsed = typeof secret.djangoPbkdf2 === 'string' ? parseDjangoPbkdf2(secret.djangoPbkdf2) : undefined;
  if (!parsed) throw invalid('an imported hash must be a Django pbkdf2_sha256$iterations$salt$hash value');
  if (parsed.iterations > IMPORTED_SECRET_MAX_ITERATIONS)
    throw invalid(
      `an imported hash may use at most ${IMPORTED_SECRET_MAX_ITERATIONS} PBKDF2 iterations (this one uses ${parsed.iterations})`,
    );
  // The schema wants a digest for every confidential client: until the first authentication replaces
  // it, the digest is of a random value nobody knows, so only the imported hash can match.
  return { sha256: clientSecretDigest(generateClientSecret()), pbkdf2: secret.djangoPbkdf2 };
}

/**
 * An update refused because the application is no longer the one its values were shown with
 * (`UpdateOptions.expectedVersion`): written, they would undo what changed since.
 */
function changedSinceShown(app: Application): ApplicationError {
  return new ApplicationError('conflict', [
    {
      field: 'version',
      message: `application ${quote(app.clientId)} was changed since the values of this update were shown (last changed at ${new Date(app.updatedAt).toISOString()}); nothing was written: look at it again and retry`,
    },
  ]);
}

/** A rotation refused because the secret it was asked for is no longer the stored one. */
function secretChanged(app: Application): ApplicationError {
  return new ApplicationError('conflict', [
    {
      field: 'client_secret',
      message: `the secret of application ${quote(app.clientId)} was already changed (rotated) since this rotation was asked for; the application was last changed at ${new Date(app.updatedAt).toISOString()}; nothing was rotated: the secret given out by that change is the live one`,
    },
  ]);
}

function clientIdTaken(clientId: string): ApplicationError {
  return new ApplicationError('conflict', [
    { field: 'client_id', message: `${quote(clientId)} is already taken; choose another or omit it` },
  ]);
}

/**
 * The client_id that the database refused to a create (an application with it, or with one told from
 * it by case alone, was written by a create at the same moment), when it cannot be read which.
 */
function clientIdTakenMeanwhile(clientId: string): ApplicationError {
  return new ApplicationError('conflict', [
    {
      field: 'client_id',
      message: `${quote(clientId)} was taken by an application created at the same moment (with this client_id, or one that differs from it only in case); nothing was created: choose another or omit it`,
    },
  ]);
}

/**
 * A client_id told from an existing one by case alone is refused, as one of the same case is: both
 * would work (client ids match exactly), but an operator or a relying party's settings would
 * easily take one for the other, and `app list --search` finds both.
 */
export function clientIdTakenInAnotherCase(clientId: string, existing: string): ApplicationError {
  return new ApplicationError('conflict', [
    {
      field: 'client_id',
      message: `${quote(clientId)} differs only in case from the client_id of application ${quote(existing)}, which would be easily mistaken for it; choose another or omit it`,
    },
  ]);
}

function checkActor(actor: unknown): string {
  if (
    typeof actor !== 'string' ||
    actor.length === 0 ||
    actor.length > ACTOR_MAX ||
    hasControlCharacter(actor)
  )
    throw new ApplicationError('invalid_input', [
      {
        field: 'created_by',
        message: `the actor must be 1–${ACTOR_MAX} printable characters, such as cli:alice`,
      },
    ]);
  return actor;
}

/** The stored application with the patch applied: what the update asks the whole app to become. */
function mergePatch(current: Application, patch: ApplicationPatch): ApplicationInput {
  const fixed = patch as ApplicationPatch & { clientId?: unknown; clientType?: unknown };
  const issues = [];
  if (fixed.clientId !== undefined && fixed.clientId !== current.clientId)
    issues.push({ field: 'client_id', message: 'cannot be changed; create a new application instead' });
  if (fixed.clientType !== undefined && fixed.clientType !== current.clientType)
    issues.push({ field: 'client_type', message: 'cannot be changed; create a new application instead' });
  if (issues.length > 0) throw new ApplicationError('invalid_input', issues);
  const pick = <K extends keyof ApplicationPatch>(key: K, fallback: ApplicationPatch[K]) =>
    patch[key] !== undefined ? patch[key] : fallback;
  return {
    clientId: current.clientId,
    clientType: current.clientType,
    name: pick('name', current.name) as string,
    logoUrl: pick('logoUrl', current.logoUrl),
    redirectUris: pick('redirectUris', current.redirectUris),
    postLogoutRedirectUris: pick('postLogoutRedirectUris', current.postLogoutRedirectUris),
    grantTypes: pick('grantTypes', current.grantTypes),
    skipAuthorization: pick('skipAuthorization', current.skipAuthorization),
    states: pick('states', current.states),
    groups: pick('groups', current.groups),
    active: pick('active', current.active),
    debugMode: pick('debugMode', current.debugMode),
    pkceRequired: pick('pkceRequired', current.pkceRequired),
    accessTokenFormat: pick('accessTokenFormat', current.accessTokenFormat),
    backchannelLogoutUri: pick('backchannelLogoutUri', current.backchannelLogoutUri),
    backchannelLogoutOnRevokeOnly: pick(
      'backchannelLogoutOnRevokeOnly',
      current.backchannelLogoutOnRevokeOnly,
    ),
    idTokenClaims: pick('idTokenClaims', current.idTokenClaims),
  };
}

/** What a dry run would produce, without writing. */
function preview(
  valid: ValidApplication,
  current: Application | null,
  actor: string,
  at: number,
): Application {
  return {
    clientId: valid.clientId,
    clientSecretSha256: current?.clientSecretSha256 ?? null,
    clientSecretPbkdf2: current?.clientSecretPbkdf2 ?? null,
    name: valid.name,
    logoUrl: valid.logoUrl,
    redirectUris: valid.redirectUris,
    postLogoutRedirectUris: valid.postLogoutRedirectUris,
    clientType: valid.clientType,
    grantTypes: valid.grantTypes,
    skipAuthorization: valid.skipAuthorization,
    states: valid.states,
    groups: valid.groups,
    active: valid.active,
    debugMode: valid.debugMode,
    pkceRequired: valid.pkceRequired,
    accessTokenFormat: valid.accessTokenFormat,
    backchannelLogoutUri: valid.backchannelLogoutUri,
    backchannelLogoutOnRevokeOnly: valid.backchannelLogoutOnRevokeOnly,
    idTokenClaims: valid.idTokenClaims,
    createdBy: current?.createdBy ?? actor,
    createdAt: current?.createdAt ?? at,
    updatedAt: at,
  };
}
