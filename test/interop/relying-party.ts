import { spawn } from 'node:child_process';
import { seedUser, type TestServer } from '../helpers/server.ts';

/** How a relying party's run ended, and what it printed. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a relying party (`command` with `args`) with its settings (client secret, password) on stdin,
 * never in argv, in `env` only (no proxies: its traffic goes straight to loopback), for at most a minute.
 */
export function runRelyingParty(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  settings: Record<string, string>,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(JSON.stringify(settings));
  });
}

/** The corporation the interop relying parties' pilots fly for. */
const CORPORATION = { id: 98000042, name: 'Interop Corp', ticker: 'IOP' } as const;

/** A Member in the Logistics group, whose main character is `characterName` (`characterId`). */
export function seedInteropPilot(server: TestServer, characterId: number, characterName: string) {
  return seedUser(server, {
    state: 'Member',
    groups: ['Logistics'],
    characterId,
    characterName,
    corporationId: CORPORATION.id,
    corporationName: CORPORATION.name,
    corporationTicker: CORPORATION.ticker,
  });
}

/**
 * What userinfo releases for `seedInteropPilot`'s pilot under `openid profile email groups`: the
 * state the application whitelists and the user's groups, as the plugin releases them.
 */
export function interopPilotUserinfo(
  user: { id: number; username: string },
  characterId: number,
  characterName: string,
): Record<string, unknown> {
  return {
    sub: String(user.id),
    email: `${user.username}@example.org`,
    email_verified: false,
    name: characterName,
    preferred_username: user.username,
    picture: `https://images.evetech.net/characters/${characterId}/portrait?size=128`,
    groups: ['Logistics', 'Member'],
    eve_character_id: characterId,
    eve_main_character_id: characterId,
    eve_corporation_id: CORPORATION.id,
    eve_corporation_name: CORPORATION.name,
    eve_corporation_ticker: CORPORATION.ticker,
    eve_affiliation: { corp: { ...CORPORATION }, state: 'Member' },
  };
}
