import type { Command } from 'commander';
import { allianceAuthConnectFailure, warnOfAbandonedConnections } from '../../alliance-auth/create.ts';
import { AA_DATABASE_SETTING, openAllianceAuthDatabase } from '../../alliance-auth/database.ts';
import {
  PLUGIN_APPLICATION_TABLE,
  type PluginApplication,
  readPluginApplications,
} from '../../alliance-auth/plugin-apps.ts';
import { ApplicationError, quote } from '../../applications/errors.ts';
import { clientIdTakenInAnotherCase } from '../../applications/service.ts';
import { clientSecretDigest, IMPORTED_SECRET_MAX_ITERATIONS } from '../../applications/secret.ts';
import type {
  AccessTokenFormatSetting,
  ApplicationInput,
  ApplicationService,
  GrantType,
  ImportedSecret,
} from '../../applications/types.ts';
import { SECRET_KEY_MIN_LENGTH } from '../../config/schema.ts';
import { isNativeApplication } from '../../oidc/clients.ts';
import { MAX_PBKDF2_ITERATIONS, parseDjangoPbkdf2 } from '../../util/django-pbkdf2.ts';
import { assertNever } from '../../util/assert-never.ts';
import { isLoopbackHost } from '../../util/loopback.ts';
import { type CliIo, CliError, cliActor, failureReason, withServices } from '../context.ts';
import { jsonDocument, lineWriter, quotedInput, textOrJsonOption } from '../output.ts';
import {
  type ComparedSettings,
  compareSecret,
  type DirectoryCatalog,
  type ExistingSecret,
  settingsThatDiffer,
} from './import-existing.ts';

/**
 * `aa-oidc import plugin-apps [--dry-run] [--format text|json]`: every application an operator made in
 * the Python plugin (allianceauth-oidc-provider) becomes an aa-oidc application with the same client
 * id, secret, URIs, settings and whitelists, through the same validating write path as `app create`
 * (the back-channel URI passes the SSRF gate); one a client registered itself is named and left out.
 * Reads Alliance Auth's database only; an application that already exists here is left alone, so the
 * command can run again, and compared with the plugin's.
 */
export function registerImport(program: Command, io: CliIo): void {
  const command = program.command('import').description('import from the Python plugin');

  command
    .command('plugin-apps')
    .description(
      `create the applications of allianceauth-oidc-provider (${PLUGIN_APPLICATION_TABLE} in Alliance Auth's database, ${AA_DATABASE_SETTING}) with the same client ids and secrets`,
    )
    .option('--dry-run', 'show what would be imported, import nothing')
    .addOption(textOrJsonOption())
    .addHelpText('after', PLUGIN_APPS_HELP)
    .action(async (options: { dryRun?: boolean; format: 'text' | 'json' }) => {
      const dryRun = options.dryRun === true;
      const json = options.format === 'json';
      const say = lineWriter(io.stdout);
      // Text: a line as each application is done. JSON: one document once all are, or once the
      // import stops (what was done until then, and why it stopped): a script always reads one.
      const done: PluginImportResult[] = [];
      const document = (error: string | null) =>
        jsonDocument({ dry_run: dryRun, applications: done.map(resultJson), error });
      try {
        await withServices(io, async (services) => {
          const url = services.config.directory.allianceAuth.databaseUrl;
          if (!url) {
            throw new CliError(
              `${AA_DATABASE_SETTING} is not set: it names Alliance Auth's database, where the plugin keeps its applications`,
            );
          }
          const own = services.allianceAuth
            ? undefined
            : openAllianceAuthDatabase(url, {
                statementTimeoutMs: services.config.directory.allianceAuth.statementTimeoutSeconds * 1000,
                onConnectionsAbandoned: warnOfAbandonedConnections(
                  services.logger.child({ component: 'alliance-auth' }),
                ),
              });
          const aa = services.allianceAuth?.connection ?? own!;
          try {
            let apps;
            try {
              apps = await readPluginApplications(aa.db);
            } catch (error) {
              throw new CliError(
                allianceAuthConnectFailure(error, aa) ??
                  `cannot read the plugin's applications from Alliance Auth's database at ${aa.displayUrl} (${AA_DATABASE_SETTING}): ${(error as Error).message}; is allianceauth-oidc-provider installed there?`,
              );
            }
            if (apps.length === 0 && !json) say('the plugin has no applications');
            const [states, groups] = await Promise.all([
              services.directory.listStates(),
              services.directory.listGroups(),
            ]);
            const directory: DirectoryCatalog = {
              states: new Set(states.map((state) => state.name)),
              groups: new Set(groups.map((group) => group.name)),
            };
            // The client ids this run imported (or, dry, would have), by lower case: a dry run inserts
            // nothing, so the service cannot see a later one that differs from one of them only in case.
            const importedByKey = new Map<string, string>();
            for (const app of apps) {
              const result = await importOne(app, services.applications, directory, cliActor(io), {
                dryRun,
                importedByKey,
              });
              if (result.outcome === 'imported')
                importedByKey.set(result.clientId.toLowerCase(), result.clientId);
              done.push(result);
              if (!json) say(resultLine(result, dryRun));
            }
          } finally {
            await own?.close();
          }
        });
      } catch (error) {
        if (json) io.stdout.write(document(failureReason(error)));
        throw error;
      }
      if (json) io.stdout.write(document(null));
      const failed = done.filter((result) => result.outcome === 'refused').length;
      if (failed > 0) {
        throw new CliError(
          `${failed} application(s) could not be imported${dryRun ? ' (dry run: nothing was imported)' : ''}`,
        );
      }
    });
}

/** What became of one plugin application (in a dry run: what would). */
export type PluginImportResult =
  | {
      clientId: string;
      name: string;
      outcome: 'imported';
      /** What aa-oidc keeps of its secret: the plugin's hash, a digest of the clear one, none (public). */
      secret: 'pbkdf2_hash' | 'digest' | 'none';
      leftOut: string[];
      warnings: string[];
    }
  | {
      clientId: string;
      name: string;
      outcome: 'skipped';
      /** The spec names of the settings in which the existing application is not the plugin's. */
      differences: string[];
      secret: ExistingSecret;
    }
  | { clientId: string; name: string; outcome: 'refused'; reason: string };

const EXISTS_ALREADY = 'an application with this client_id exists already';

async function importOne(
  app: PluginApplication,
  applications: ApplicationService,
  directory: DirectoryCatalog,
  actor: string,
  { dryRun, importedByKey }: { dryRun: boolean; importedByKey: ReadonlyMap<string, string> },
): Promise<PluginImportResult> {
  const plan = planPluginImport(app);
  const { clientId, name } = plan;
  if (plan.outcome === 'unsupported') return { clientId, name, outcome: 'refused', reason: plan.reason };
  const existing = await applications.findByClientId(clientId);
  if (existing) {
    return {
      clientId,
      name,
      outcome: 'skipped',
      differences: settingsThatDiffer(existing, plan.input, directory),
      secret: await compareSecret(app, plan.secret, existing),
    };
  }
  try {
    await applications.create(plan.input, actor, {
      dryRun,
      ...(plan.secret && { importedSecret: plan.secret }),
    });
    // What the real run's create refuses, after one imported before it, a dry run inserted nothing for.
    const earlier = importedByKey.get(clientId.toLowerCase());
    if (dryRun && earlier !== undefined && earlier !== clientId)
      throw clientIdTakenInAnotherCase(clientId, earlier);
  } catch (error) {
    if (!(error instanceof ApplicationError)) throw error;
    return { clientId, name, outcome: 'refused', reason: error.message };
  }
  return {
    clientId,
    name,
    outcome: 'imported',
    secret: plan.secret ? ('djangoPbkdf2' in plan.secret ? 'pbkdf2_hash' : 'digest') : 'none',
    leftOut: plan.leftOut ?? [],
    warnings: plan.warnings ?? [],
  };
}

const EXISTING_SECRET_TEXT: Readonly<Record<ExistingSecret, string>> = {
  verifies: "; the plugin's secret authenticates as it",
  does_not_verify:
    "; the plugin's secret does not authenticate as it (a relying party that sends the plugin's secret is refused)",
  not_compared:
    '; secrets not compared (the plugin keeps only a hash of its secret, and aa-oidc does not hold that hash)',
  none: '',
};

/** The line `--format text` writes for one application. */
function resultLine(result: PluginImportResult, dryRun: boolean): string {
  const label = `${result.clientId} (${result.name})`;
  switch (result.outcome) {
    case 'refused':
      return `not imported ${label}: ${result.reason}`;
    case 'skipped': {
      const settings =
        result.differences.length === 0
          ? "with the plugin's settings"
          : `with settings other than the plugin's: ${result.differences.join(', ')}`;
      const leftAlone =
        result.differences.length > 0 || result.secret === 'does_not_verify'
          ? `; left as it is ("aa-oidc app show ${result.clientId}" shows it, "aa-oidc app update ${result.clientId} …" changes it)`
          : '';
      return `skipped ${label}: ${EXISTS_ALREADY}, ${settings}${EXISTING_SECRET_TEXT[result.secret]}${leftAlone}`;
    }
    case 'imported': {
      const secret =
        result.secret === 'pbkdf2_hash'
          ? 'its PBKDF2-hashed secret keeps working'
          : result.secret === 'digest'
            ? 'its secret kept as a digest'
            : 'a public client';
      const leftOut = result.leftOut.length > 0 ? `; left out ${result.leftOut.join('; ')}` : '';
      const warnings = result.warnings.map((warning) => `; warning: ${warning}`).join('');
      return `${dryRun ? 'would import' : 'imported'} ${label}: ${secret}${leftOut}${warnings}`;
    }
    default:
      return assertNever(result);
  }
}

/** One application in the document `--format json` writes. */
function resultJson(result: PluginImportResult) {
  const common = { client_id: result.clientId, name: result.name, outcome: result.outcome };
  switch (result.outcome) {
    case 'refused':
      return { ...common, reason: result.reason, secret: null, left_out: [], warnings: [], existing: null };
    case 'skipped':
      return {
        ...common,
        reason: EXISTS_ALREADY,
        secret: null,
        left_out: [],
        warnings: [],
        existing: {
          differences: result.differences,
          secret: result.secret === 'none' ? null : result.secret,
        },
      };
    case 'imported':
      return {
        ...common,
        reason: null,
        secret: result.secret === 'none' ? null : result.secret,
        left_out: result.leftOut,
        warnings: result.warnings,
        existing: null,
      };
    default:
      return assertNever(result);
  }
}

const PLUGIN_APPS_HELP = `
Each application gets a line. Not imported, with the reason: one a client
registered itself (the plugin's dynamic client registration or a client ID
metadata document), one with a grant type aa-oidc does not offer (implicit,
password, hybrid), one whose secret is empty or cannot be checked, one whose
name is blank or longer than 100 characters (never cut short), one whose
client_id differs only in case from an application's here. An
imported one's line names what it leaves out: an http logo, HS256 id_token
signing (aa-oidc signs with RS256 only), CORS origins aa-oidc does not answer
for it. It warns about a secret the plugin kept in clear that is shorter
than ${SECRET_KEY_MIN_LENGTH} characters, about a public application the plugin let sign in
without PKCE (aa-oidc requires PKCE of every public client), about a
confidential application whose redirect URIs are all on loopback (no
member's browser can reach its server there) and about http://127.0.0.1 and
http://[::1] redirect URIs of an application that is not native: the plugin
took them at any port, aa-oidc only at the one registered. Every redirect
URI matches exactly here: a relying party that adds query parameters to its
registered URI (the plugin accepted that) is refused after the switch; see
docs/migrating-from-the-plugin.md.

An application whose client_id exists already is skipped, left as it is; its
line says whether it has the plugin's settings or names those that differ
(name, logo_url, redirect_uris, grant_types, states, groups, ...), and
whether the plugin's secret authenticates as it (a hash the plugin keeps is
compared only with the same hash still held here). A skipped application
does not change the exit code.

--format json writes one document instead: {"dry_run", "applications": [{
"client_id", "name", "outcome" (imported, skipped or refused), "reason",
"secret" (what is kept: pbkdf2_hash or digest, null for a public client),
"left_out", "warnings", "existing" (of a skipped one: "differences", and
"secret": verifies, does_not_verify, not_compared or null)}], "error"}.
"error" is null when every application was gone through; when the import
stopped before (Alliance Auth's or aa-oidc's database failing, say), it is the
reason, the one line stderr shows too, and "applications" holds those done
until then. Errors go to stderr, as in text. Exits 1 when an application was
not imported or the import stopped (2 when the configuration is refused, as for
every command).
`;

/** What the import does with one plugin application. */
export type PluginImportPlan =
  | {
      clientId: string;
      name: string;
      outcome: 'import';
      input: ApplicationInput & ComparedSettings;
      secret?: ImportedSecret;
      /** What the import leaves out of the application, each said beside it. */
      leftOut?: string[];
      /** What may keep the imported application from working as it did, each said beside it. */
      warnings?: string[];
    }
  | { clientId: string; name: string; outcome: 'unsupported'; reason: string };

/** django-oauth-toolkit's grant type → aa-oidc's grant types (DOT issues refresh tokens with codes). */
const GRANT_TYPES: Readonly<Record<string, GrantType[]>> = {
  'authorization-code': ['authorization_code', 'refresh_token'],
  'client-credentials': ['client_credentials'],
};

/** How a client that registered itself came into the plugin's table, by its `registration_source`. */
const SELF_REGISTRATIONS: Readonly<Record<string, string>> = {
  dcr: "through the plugin's dynamic client registration",
  cimd: 'from a client ID metadata document the plugin fetched',
};

/**
 * The plugin's CORS origins (answered at its token endpoint) that aa-oidc does not answer for this
 * client: it takes browsers' calls only from a redirect URI's origin, and at the token endpoint only
 * for a public client (oidc/configuration.ts, clientBasedCORS).
 */
function corsOriginsLeftOut(app: PluginApplication): string[] {
  if (app.clientType !== 'public') return app.allowedOrigins;
  const redirectOrigins = new Set(app.redirectUris.map((uri) => URL.parse(uri)?.origin));
  return app.allowedOrigins.filter((origin) => !redirectOrigins.has(URL.parse(origin)?.origin ?? origin));
}

/**
 * A URI whose host is the loopback interface of whoever follows it (`isLoopbackHost`): 127.0.0.0/8,
 * `[::1]`, either as an IPv4-mapped IPv6 address, `localhost` and the names under it.
 */
function onLoopback(uri: string): boolean {
  const host = URL.parse(uri)?.hostname;
  return host !== undefined && isLoopbackHost(host);
}

/**
 * A loopback IP redirect URI, which django-oauth-toolkit matches at any port (its older versions: when
 * registered without one), as RFC 8252 §7.3 asks for native apps; aa-oidc does so only at a native
 * app (oidc/loopback-redirects.ts).
 */
function matchedAtAnyPortByThePlugin(uri: string): boolean {
  const url = URL.parse(uri);
  return url?.protocol === 'http:' && (url.hostname === '127.0.0.1' || url.hostname === '[::1]');
}

/**
 * URIs of the plugin's as the applications' messages quote them (`quote`: what a log line hides of
 * each hidden, a URL's user information masked, then `quotedInput`), one after another.
 */
function quotedList(uris: readonly string[]): string {
  return uris.map((uri) => quote(uri)).join(' ');
}

/**
 * What the import warns about an application's redirect URIs: a confidential one whose URIs are all on
 * loopback (a member's browser is sent to the member's own machine, where no relying party's server
 * listens: a developer's copy, most likely), and loopback IP URIs of a web application, which the
 * plugin matched at any port and aa-oidc matches only at the registered one.
 */
function redirectUriWarnings(app: PluginApplication): string[] {
  // A native app's loopback IP URIs match at any port here too; its `localhost` ones did not there.
  if (isNativeApplication(app.redirectUris)) return [];
  const loopback = app.redirectUris.filter(onLoopback);
  const warnings: string[] = [];
  if (
    app.clientType === 'confidential' &&
    loopback.length > 0 &&
    loopback.length === app.redirectUris.length
  ) {
    warnings.push(
      `its redirect URI${loopback.length === 1 ? ' is' : 's are all'} on loopback (${quotedList(loopback)}): a member's browser would be sent back to the member's own machine, so it cannot sign anyone in from a server (a developer's copy?); give it its server's https URI ("aa-oidc app update CLIENT_ID --add-redirect-uri …") or deactivate it`,
    );
  }
  const anyPort = loopback.filter(matchedAtAnyPortByThePlugin);
  if (anyPort.length > 0) {
    const one = anyPort.length === 1;
    warnings.push(
      `its loopback redirect URI${one ? '' : 's'} ${quotedList(anyPort)} match${one ? 'es' : ''} here only at the port registered, exactly (the plugin took any port): a program that listens on a port the system gives it at each sign-in is refused (docs/migrating-from-the-plugin.md, step 5)`,
    );
  }
  return warnings;
}

/**
 * A public application the plugin let sign in without PKCE ("PKCE required" unticked): aa-oidc requires
 * it of every public client (it has no secret to protect its codes), so a relying party that sends no
 * code_challenge is refused after the switch.
 */
function pkceWarnings(app: PluginApplication): string[] {
  if (app.clientType !== 'public' || app.pkceRequired) return [];
  return [
    `the plugin let it sign in without PKCE ("PKCE required" unticked), and aa-oidc requires PKCE of every public client: a relying party that sends no code_challenge is refused (invalid_request) after the switch; have it send one, with S256 (docs/migrating-from-the-plugin.md, step 5)`,
  ];
}

/**
 * A secret the plugin kept in clear (the operator typed it, or shortened the generated one) shorter than
 * aa-oidc asks of its own secret key: it is imported as it is, to keep the relying party working, but
 * whoever guesses it authenticates as the relying party (aa-oidc's own client secrets have 256 random
 * bits). Only its length is judged, and the line says only that it is short, never how short. A
 * secret imported as a hash cannot be judged: check's W009 asks for its rotation.
 */
function clearSecretWarnings(app: PluginApplication): string[] {
  if (app.clientSecret.length >= SECRET_KEY_MIN_LENGTH) return [];
  return [
    `its secret, kept in clear by the plugin, is shorter than ${SECRET_KEY_MIN_LENGTH} characters (aa-oidc's own secrets are 256 random bits): whoever guesses it authenticates as the relying party; once the switch is done, "aa-oidc app rotate-secret ${app.clientId}" and give the relying party the new secret`,
  ];
}

/** Pure: what aa-oidc creates for a plugin application, or why it cannot. */
export function planPluginImport(app: PluginApplication): PluginImportPlan {
  const refuse = (reason: string): PluginImportPlan => ({
    clientId: app.clientId,
    name: app.name,
    outcome: 'unsupported',
    reason,
  });
  // Spec B: no self-registration, since such a client's redirect URIs and whitelists (empty, so
  // open to everyone past the global gate) were never an operator's choice.
  if (app.registrationSource !== 'manual') {
    const how = SELF_REGISTRATIONS[app.registrationSource];
    return refuse(
      how
        ? `the client registered itself ${how} (registration source ${quotedInput(app.registrationSource)}): aa-oidc takes only applications an operator made, with whitelists chosen for them; if the relying party is wanted, create it with "aa-oidc app create" and whitelist its states or groups`
        : `registration source ${quotedInput(app.registrationSource)} is not one aa-oidc knows: it imports only applications an operator made ("manual")`,
    );
  }
  const grantTypes = GRANT_TYPES[app.grantType];
  if (!grantTypes) {
    return refuse(
      `grant type ${quotedInput(app.grantType)} is not supported (aa-oidc offers authorization-code and client-credentials)`,
    );
  }
  if (app.clientType !== 'confidential' && app.clientType !== 'public') {
    return refuse(`client type ${quotedInput(app.clientType)} is neither confidential nor public`);
  }
  let accessTokenFormat: AccessTokenFormatSetting = 'inherit';
  if (app.accessTokenFormat === 'opaque' || app.accessTokenFormat === 'jwt') {
    accessTokenFormat = app.accessTokenFormat;
  } else if (app.accessTokenFormat !== null) {
    return refuse(`access token format ${quotedInput(app.accessTokenFormat)} is neither opaque nor jwt`);
  }
  let secret: ImportedSecret | undefined;
  const secretWarnings: string[] = [];
  if (app.clientType === 'confidential') {
    // Told as empty, whichever way it is stored: an empty "hash" is no hasher's either.
    if (app.clientSecret === '') {
      return refuse(
        `its client secret is empty, so no relying party can authenticate with it: give it a new secret in the plugin's admin with "Hash client secret" unticked (aa-oidc keeps only a digest) and import again`,
      );
    }
    if (app.hashClientSecret) {
      const hash = parseDjangoPbkdf2(app.clientSecret);
      if (!hash) {
        return refuse(
          `its client secret is stored as something aa-oidc cannot check: not a Django PBKDF2-SHA256 hash (another hasher, or more than ${MAX_PBKDF2_ITERATIONS} iterations): give it a new secret in the plugin's admin with "Hash client secret" unticked (aa-oidc keeps only a digest; a plugin older than its migration 0004 has no such box: upgrade it first) and import again`,
        );
      }
      if (hash.iterations > IMPORTED_SECRET_MAX_ITERATIONS) {
        return refuse(
          `its client secret is hashed with ${hash.iterations} PBKDF2 iterations, more than the ${IMPORTED_SECRET_MAX_ITERATIONS} aa-oidc checks (each wrong secret sent would cost that much): give it a new secret in the plugin's admin with "Hash client secret" unticked (aa-oidc keeps only a digest) and import again`,
        );
      }
      secret = { djangoPbkdf2: app.clientSecret };
    } else {
      secret = { sha256Hex: clientSecretDigest(app.clientSecret) };
      secretWarnings.push(...clearSecretWarnings(app));
    }
  }
  // The pages show logos over https only: an http one is left out, not the application.
  const httpLogo = app.logoUrl !== null && /^http:/i.test(app.logoUrl);
  const input: ApplicationInput & ComparedSettings = {
    clientId: app.clientId,
    name: app.name,
    logoUrl: httpLogo ? null : app.logoUrl,
    redirectUris: app.redirectUris,
    postLogoutRedirectUris: app.postLogoutRedirectUris,
    clientType: app.clientType,
    grantTypes,
    skipAuthorization: app.skipAuthorization,
    states: app.states,
    groups: app.groups,
    active: app.active,
    debugMode: app.debugMode,
    // A public client always uses PKCE here.
    pkceRequired: app.clientType === 'public' ? true : app.pkceRequired,
    accessTokenFormat,
    backchannelLogoutUri: app.backchannelLogoutUri,
    backchannelLogoutOnRevokeOnly: app.backchannelLogoutOnRevokeOnly,
  };
  const leftOut: string[] = [];
  if (httpLogo) {
    leftOut.push(`its http logo ${quote(app.logoUrl)} (logos must be https; give it one in aa-oidc's admin)`);
  }
  // "" meant no id_token at all there; HS256 keyed it with the client secret, which aa-oidc keeps
  // only as a digest.
  if (app.algorithm !== '' && app.algorithm !== 'RS256') {
    leftOut.push(
      `its ${quotedInput(app.algorithm)} id_token signing (aa-oidc signs id_tokens with RS256 only: set the relying party to verify them with the issuer's JWKS, not the client secret)`,
    );
  }
  const origins = corsOriginsLeftOut(app);
  if (origins.length > 0) {
    leftOut.push(
      `its CORS origin${origins.length === 1 ? '' : 's'} ${quotedList(origins)} (aa-oidc answers browsers only from a redirect URI's origin, and at the token endpoint only for public clients)`,
    );
  }
  const warnings = [...secretWarnings, ...pkceWarnings(app), ...redirectUriWarnings(app)];
  return {
    clientId: app.clientId,
    name: app.name,
    outcome: 'import',
    input,
    ...(secret !== undefined && { secret }),
    ...(leftOut.length > 0 && { leftOut }),
    ...(warnings.length > 0 && { warnings }),
  };
}
