import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PASSWORD, seedUser, type TestServer } from '../helpers/server.ts';

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

/** What every relying party's summary of the full code flow reports alike. */
export interface CodeFlowSummary {
  pages: string[];
  code_challenge_method: string;
  token_type: string;
  scope: string;
  id_token_validated: boolean;
  id_token_kid: string;
  id_token_claims: Record<string, unknown>;
  nonce_checked: boolean;
  at_hash_checked: boolean;
}

/**
 * The checks every relying party's run of the full code flow passes alike, `library` naming it in the
 * messages: it succeeded and printed neither the client secret nor the password; it went through the
 * real login and consent forms with PKCE S256, got a Bearer token for `openid profile email groups`,
 * and verified the ID token (the active key, the issuer, the application as audience, the user as
 * subject, its nonce and at_hash). Returns the run's summary for the checks of its own.
 */
export function assertCodeFlowRun<S extends CodeFlowSummary>(
  run: Run,
  library: string,
  expected: { server: TestServer; clientId: string; clientSecret: string; userId: number },
): S {
  assert.equal(run.code, 0, `${library} failed: ${run.stderr}`);
  for (const output of [run.stdout, run.stderr]) {
    assert.ok(!output.includes(expected.clientSecret), `${library} prints no client secret`);
    assert.ok(!output.includes(PASSWORD), `${library} prints no password`);
  }
  const summary = JSON.parse(run.stdout) as S;
  assert.deepEqual(summary.pages, ['login', 'consent'], 'through the real login and consent forms');
  assert.equal(summary.code_challenge_method, 'S256');
  assert.equal(summary.token_type, 'Bearer');
  assert.deepEqual(summary.scope.split(' ').sort(), ['email', 'groups', 'openid', 'profile']);
  assert.equal(summary.id_token_validated, true);
  assert.equal(summary.id_token_kid, expected.server.app.keyStore.activeKid());
  assert.deepEqual(summary.id_token_claims, {
    iss: expected.server.issuer,
    aud: expected.clientId,
    sub: String(expected.userId),
  });
  assert.equal(summary.nonce_checked, true);
  assert.equal(summary.at_hash_checked, true, `the id_token carried at_hash and ${library} checked it`);
  return summary;
}
