import type { Application, ApplicationService } from '../applications/types.ts';
import { verifyClientSecret } from '../applications/secret.ts';
import type { Config } from '../config/load.ts';
import { assertNever } from '../util/assert-never.ts';
import { type DemoClientCredentials, readDemoClient } from './client-file.ts';
import { html } from './page.ts';
import { DemoFailure } from './provider-client.ts';
import { DEMO_CLIENT_ID, demoUrls } from './urls.ts';

/**
 * Whether the demo can sign someone in: its client file (written by `aa-oidc demo`) and its
 * application agree, and the application is active and registered for this issuer. Each way they
 * may not is a page telling the operator what to run.
 */

type Setup =
  | { kind: 'ready'; credentials: DemoClientCredentials; application: Application }
  | { kind: 'not_seeded' }
  | { kind: 'inactive' }
  | { kind: 'secret_mismatch' }
  | { kind: 'redirect_uri_mismatch'; registered: string[] };

export function demoSetup(deps: {
  config: Pick<Config, 'issuer' | 'dataDir'>;
  applications: Pick<ApplicationService, 'findByClientId'>;
}): () => Promise<{ credentials: DemoClientCredentials; application: Application }> {
  const { config, applications } = deps;
  const issuer = config.issuer;
  const urls = demoUrls(issuer);

  async function loadSetup(): Promise<Setup> {
    const credentials = readDemoClient(config.dataDir);
    const application = await applications.findByClientId(DEMO_CLIENT_ID);
    if (credentials === undefined || application === undefined) return { kind: 'not_seeded' };
    if (!application.active) return { kind: 'inactive' };
    if (credentials.clientId !== DEMO_CLIENT_ID || !verifyClientSecret(application, credentials.clientSecret))
      return { kind: 'secret_mismatch' };
    if (!application.redirectUris.includes(urls.callback))
      return { kind: 'redirect_uri_mismatch', registered: application.redirectUris };
    return { kind: 'ready', credentials, application };
  }

  async function requireSetup(): Promise<{ credentials: DemoClientCredentials; application: Application }> {
    const setup = await loadSetup();
    switch (setup.kind) {
      case 'ready':
        return setup;
      case 'not_seeded':
        throw new DemoFailure(
          404,
          'The demo is not set up',
          html`Run <code>npx aa-oidc demo</code> (with the same configuration as this server), then reload
            this page.`,
        );
      case 'inactive':
        throw new DemoFailure(
          409,
          'The demo application is deactivated',
          html`Someone switched it off. <code>npx aa-oidc app activate ${DEMO_CLIENT_ID}</code> switches it on
            again.`,
        );
      case 'secret_mismatch':
        throw new DemoFailure(
          409,
          'The demo application’s secret has changed',
          html`The stored secret no longer matches the application (was it rotated, or is this another
            database?). Run <code>npx aa-oidc demo</code> again.`,
        );
      case 'redirect_uri_mismatch':
        throw new DemoFailure(
          409,
          'The demo application is registered for another address',
          html`It expects <code>${setup.registered.join(' ')}</code> but this server’s issuer is
            <code>${issuer}</code>. Run <code>npx aa-oidc demo</code> with the server’s configuration (or
            <code>--issuer-url ${issuer}</code>).`,
        );
      default:
        return assertNever(setup);
    }
  }

  return requireSetup;
}
