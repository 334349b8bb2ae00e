import { randomBytes } from 'node:crypto';
import { verifyClientSecret } from '../applications/secret.ts';
import type { Application, ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { DirectoryAdmin, MainCharacterFields } from '../directory/builtin/types.ts';
import { readDemoClient, writeDemoClient } from './client-file.ts';
import { DEMO_CLIENT_ID, DEMO_CLIENT_NAME, demoUrls } from './urls.ts';

/**
 * `aa-oidc demo`: a small, realistic directory and one application, so that a person can click
 * through login → consent → the demo relying party. Idempotent: what exists is left as it is
 * (reported as `exists`); only the demo application's redirect URI and secret are brought back in
 * line, since the demo cannot work without them.
 */

export interface DemoState {
  name: string;
  priority: number;
  oidcAccess: boolean;
}

export interface DemoUser extends MainCharacterFields {
  username: string;
  email: string;
  state: string;
  groups: string[];
  /** What signing in as this user shows, for the printed summary. */
  purpose: string;
}

export const DEMO_STATES: readonly DemoState[] = [
  { name: 'Member', priority: 100, oidcAccess: true },
  { name: 'Blue', priority: 50, oidcAccess: true },
  { name: 'Guest', priority: 10, oidcAccess: false },
];

export const DEMO_GROUPS: readonly string[] = ['Directors', 'Fleet Commanders'];

/** The states the demo application whitelists. */
export const DEMO_WHITELIST: readonly string[] = ['Member', 'Blue'];

// Fictional pilots, corporations and alliances, with ids in the ranges EVE Online uses for player
// characters (9x…/21xx…), corporations (98…) and alliances (99…). Faction 500001 is an NPC faction.
const HOME_CORP = {
  corporationId: 98712345,
  corporationName: 'Obsidian Frontier Logistics',
  corporationTicker: 'OBFL',
  allianceId: 99011223,
  allianceName: 'Silent Meridian Coalition',
  allianceTicker: 'SMRC',
};

export const DEMO_USERS: readonly DemoUser[] = [
  {
    username: 'demo-member',
    email: 'demo-member@example.org',
    state: 'Member',
    groups: ['Fleet Commanders'],
    characterId: 95465499,
    characterName: 'Kaelen Voss',
    ...HOME_CORP,
    purpose: 'member: allowed, groups Fleet Commanders + Member',
  },
  {
    username: 'demo-director',
    email: 'demo-director@example.org',
    state: 'Member',
    groups: ['Directors', 'Fleet Commanders'],
    characterId: 2115552211,
    characterName: 'Ysolde Marrak',
    ...HOME_CORP,
    purpose: 'member with two groups: allowed',
  },
  {
    username: 'demo-blue',
    email: 'demo-blue@example.org',
    state: 'Blue',
    groups: [],
    characterId: 96123457,
    characterName: 'Tavik Orrin',
    corporationId: 98654321,
    corporationName: 'Crimson Lattice Industries',
    corporationTicker: 'CLTI',
    allianceId: 99033445,
    allianceName: 'Northern Drift Compact',
    allianceTicker: 'NDRC',
    factionId: 500001,
    factionName: 'Caldari State',
    purpose: 'blue (allied): allowed, with a faction',
  },
  {
    username: 'demo-guest',
    email: 'demo-guest@example.org',
    state: 'Guest',
    groups: [],
    characterId: 2118765432,
    characterName: 'Mira Solenne',
    corporationId: 98765001,
    corporationName: 'Nomad Cartography Bureau',
    corporationTicker: 'NMDC',
    purpose: 'guest: no access, sees the access-denied page',
  },
];

export type SeedStatus = 'created' | 'exists';

export interface SeededUser {
  username: string;
  status: SeedStatus | 'password_reset';
  state: string;
  groups: string[];
  characterName: string;
  purpose: string;
  /** The new password; null when the user existed and kept its password. Shown once, never logged. */
  password: string | null;
}

export type ApplicationSeedChange = 'created' | 'redirect_uri_updated' | 'secret_rotated' | 'secret_kept';

export interface DemoSeedResult {
  issuer: string;
  loginUrl: string;
  states: Array<DemoState & { status: SeedStatus }>;
  groups: Array<{ name: string; status: SeedStatus }>;
  users: SeededUser[];
  application: {
    clientId: string;
    name: string;
    redirectUri: string;
    active: boolean;
    changes: ApplicationSeedChange[];
    /** Where the plain client secret is kept for the demo relying party. */
    secretFile: string;
  };
}

export interface SeedDemoOptions {
  /** The issuer the demo is served under (default: `config.issuer`). */
  issuer?: string;
  /** Give demo users that already exist a new random password (printed once). */
  resetPasswords?: boolean;
  /** Recorded with every change (`cli:alice`). */
  actor?: string;
}

export interface SeedDemoDependencies {
  config: Pick<Config, 'mode' | 'issuer' | 'dataDir'>;
  directoryAdmin: DirectoryAdmin;
  applications: ApplicationService;
}

export class DemoRefusedError extends Error {
  override name = 'DemoRefusedError';
}

/** 96 random bits, base64url: easy to paste, impossible to guess. */
export function demoPassword(): string {
  return randomBytes(12).toString('base64url');
}

export async function seedDemo(
  deps: SeedDemoDependencies,
  options: SeedDemoOptions = {},
): Promise<DemoSeedResult> {
  const { config, directoryAdmin: directory, applications } = deps;
  if (config.mode !== 'development') {
    throw new DemoRefusedError(
      'the demo creates users with printed passwords and a demo application; it runs only in development mode (AA_OIDC_MODE=development)',
    );
  }
  const issuer = (options.issuer ?? config.issuer).replace(/\/+$/, '');
  const urls = demoUrls(issuer);
  const actor = options.actor ?? 'demo';

  const states: DemoSeedResult['states'] = [];
  for (const state of DEMO_STATES) {
    const exists = (await directory.findStateByName(state.name)) !== undefined;
    if (!exists) await directory.createState(state.name, state.priority, state.oidcAccess, { actor });
    states.push({ ...state, status: exists ? 'exists' : 'created' });
  }

  const groups: DemoSeedResult['groups'] = [];
  for (const name of DEMO_GROUPS) {
    const exists = (await directory.findGroupByName(name)) !== undefined;
    if (!exists) await directory.createGroup(name, false, { actor });
    groups.push({ name, status: exists ? 'exists' : 'created' });
  }

  const users: SeededUser[] = [];
  for (const demoUser of DEMO_USERS) {
    const { purpose, ...input } = demoUser;
    const seeded = {
      username: demoUser.username,
      state: demoUser.state,
      groups: [...demoUser.groups],
      characterName: demoUser.characterName ?? demoUser.username,
      purpose,
    };
    const existing = await directory.findUserByUsername(demoUser.username);
    const password = existing === undefined || options.resetPasswords ? demoPassword() : null;
    if (existing === undefined) {
      await directory.createUser(
        { ...input, emailVerified: true, locale: 'en', password: password! },
        { actor },
      );
      users.push({ ...seeded, status: 'created', password });
    } else if (password !== null) {
      await directory.setPassword({ id: existing.id }, password, { actor });
      users.push({ ...seeded, status: 'password_reset', password });
    } else {
      users.push({ ...seeded, status: 'exists', password: null });
    }
  }

  const application = await ensureDemoApplication(applications, config.dataDir, urls, actor);
  return { issuer, loginUrl: urls.start, states, groups, users, application };
}

async function ensureDemoApplication(
  applications: ApplicationService,
  dataDir: string,
  urls: ReturnType<typeof demoUrls>,
  actor: string,
): Promise<DemoSeedResult['application']> {
  const changes: ApplicationSeedChange[] = [];
  let app: Application | undefined = await applications.findByClientId(DEMO_CLIENT_ID);
  let secretFile: string;
  if (app === undefined) {
    const created = await applications.create(
      {
        clientId: DEMO_CLIENT_ID,
        name: DEMO_CLIENT_NAME,
        clientType: 'confidential',
        redirectUris: [urls.callback],
        postLogoutRedirectUris: [urls.start],
        grantTypes: ['authorization_code', 'refresh_token'],
        states: [...DEMO_WHITELIST],
        pkceRequired: true,
      },
      actor,
    );
    app = created.application;
    secretFile = writeDemoClient(dataDir, { clientId: DEMO_CLIENT_ID, clientSecret: created.clientSecret! });
    changes.push('created');
  } else {
    if (app.redirectUris.length !== 1 || app.redirectUris[0] !== urls.callback) {
      // The demo relying party sends exactly this redirect URI; one issuer at a time.
      app = (
        await applications.update(
          DEMO_CLIENT_ID,
          { redirectUris: [urls.callback], postLogoutRedirectUris: [urls.start] },
          actor,
        )
      ).application;
      changes.push('redirect_uri_updated');
    }
    const stored = readDemoClient(dataDir);
    if (stored?.clientId === DEMO_CLIENT_ID && verifyClientSecret(app, stored.clientSecret)) {
      secretFile = writeDemoClient(dataDir, stored);
      changes.push('secret_kept');
    } else {
      // The file is missing or belongs to another database: a new secret, so that the file is right.
      const { clientSecret } = await applications.rotateSecret(DEMO_CLIENT_ID, actor);
      secretFile = writeDemoClient(dataDir, { clientId: DEMO_CLIENT_ID, clientSecret: clientSecret! });
      changes.push('secret_rotated');
    }
  }
  return {
    clientId: app.clientId,
    name: app.name,
    redirectUri: urls.callback,
    active: app.active,
    changes,
    secretFile,
  };
}
