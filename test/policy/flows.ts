import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AuditRecord } from '../../src/audit/events.ts';
import type { PolicyStage } from '../../src/policy/stages.ts';
import {
  authorizeUrl,
  basicAuth,
  Browser,
  pkcePair,
  postForm,
  REDIRECT_URI,
  signIn,
  type SignInOptions,
  type TestServer,
} from '../helpers/server.ts';

/** Real HTTP helpers for the policy tests: one confidential client, driven like a relying party. */
export interface Client {
  clientId: string;
  clientSecret: string;
}

export function authorizeParams(client: Client, extra: Record<string, string> = {}) {
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(6).toString('hex');
  return {
    verifier,
    state,
    params: {
      client_id: client.clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid profile groups',
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...extra,
    },
  };
}

/** Signs in (or reuses the browser's session) and returns the response that leaves the server. */
export async function authorize(
  server: TestServer,
  browser: Browser,
  client: Client,
  username: string | undefined,
  extra: Record<string, string> = {},
  seen?: SignInOptions['seen'],
): Promise<{ response: Response; verifier: string; state: string }> {
  const { params, verifier, state } = authorizeParams(client, extra);
  const response = await signIn(browser, server, authorizeUrl(server, params), {
    ...(username === undefined ? {} : { username }),
    ...(seen ? { seen } : {}),
  });
  return { response, verifier, state };
}

export function codeFrom(response: Response): string {
  assert.equal(response.status, 303, `a redirect to the client, not ${response.status}`);
  const location = new URL(response.headers.get('location')!);
  const code = location.searchParams.get('code');
  assert.ok(code, `a code, not error=${location.searchParams.get('error')}`);
  return code;
}

export function token(server: TestServer, client: Client, form: Record<string, string>) {
  return postForm(`${server.issuer}/token/`, form, {
    authorization: basicAuth(client.clientId, client.clientSecret),
  });
}

export function introspect(server: TestServer, client: Client, value: string) {
  return postForm(
    `${server.issuer}/introspect/`,
    { token: value },
    { authorization: basicAuth(client.clientId, client.clientSecret) },
  );
}

export async function userinfo(server: TestServer, accessToken: string) {
  const response = await fetch(`${server.issuer}/userinfo/`, {
    headers: { authorization: `Bearer ${accessToken}` },
  });
  return {
    status: response.status,
    wwwAuthenticate: response.headers.get('www-authenticate') ?? '',
    body: await response.text(),
  };
}

/** Signs a user in and exchanges the code: the access, refresh and id tokens of a fresh login. */
export async function login(
  server: TestServer,
  client: Client,
  username: string,
  browser = new Browser(),
): Promise<{ accessToken: string; refreshToken: string; browser: Browser }> {
  const { response, verifier } = await authorize(server, browser, client, username);
  const exchanged = await token(server, client, {
    grant_type: 'authorization_code',
    code: codeFrom(response),
    redirect_uri: REDIRECT_URI,
    code_verifier: verifier,
  });
  assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
  const accessToken = exchanged.body.access_token as string;
  const refreshToken = exchanged.body.refresh_token as string;
  assert.ok(accessToken && refreshToken);
  return { accessToken, refreshToken, browser };
}

/** The current value of `aa_oidc_policy_rejections_total{stage,reason}`. */
export async function rejections(server: TestServer, stage: PolicyStage, reason: string): Promise<number> {
  const { values } = await server.app.metrics.policyRejections.get();
  return values.find((value) => value.labels.stage === stage && value.labels.reason === reason)?.value ?? 0;
}

/** The current value of `aa_oidc_authorize_denied_total{reason}`. */
export async function authorizeDenials(server: TestServer, reason: string): Promise<number> {
  const { values } = await server.app.metrics.authorizeDenied.get();
  return values.find((value) => value.labels.reason === reason)?.value ?? 0;
}

/** Collects the `policy_denied` events published while `work` runs. */
export async function policyEvents<T>(
  server: TestServer,
  work: () => Promise<T>,
): Promise<{ result: T; events: Array<Extract<AuditRecord, { kind: 'policy_denied' }>> }> {
  const events: Array<Extract<AuditRecord, { kind: 'policy_denied' }>> = [];
  const unsubscribe = server.app.audit.subscribe({
    name: 'policy-test',
    receive: (record) => {
      if (record.kind === 'policy_denied') events.push(record);
    },
  });
  try {
    const result = await work();
    await server.app.audit.idle();
    return { result, events };
  } finally {
    unsubscribe();
  }
}

/** Runs `work` and returns by how much the rejection counter of `stage`/`reason` moved. */
export async function counted(
  server: TestServer,
  stage: PolicyStage,
  reason: string,
  work: () => Promise<unknown>,
): Promise<number> {
  const before = await rejections(server, stage, reason);
  await work();
  return (await rejections(server, stage, reason)) - before;
}
