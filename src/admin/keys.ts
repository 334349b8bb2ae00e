import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { csrfField, doneMessage, formAlert, formatTime } from '../console/ui.ts';
import { type Html, html } from '../http/pages/layout.ts';
import { requestLog } from '../logging/request-context.ts';
import { KeyError } from '../keys/service.ts';
import type { ExpectedWithdrawal, RotationResult, SigningKeySummary, WithdrawResult } from '../keys/types.ts';
import { type AdminDependencies, adminActor, renderAdmin } from './context.ts';

/**
 * Signing keys in the admin UI: the list with each key's lifecycle, rotate, retire, prepare a next
 * key and withdraw a leaked one, each confirmed after the key service's own dry run says what would
 * happen (as `keys rotate --dry-run` does).
 */

const DONE: Readonly<Record<string, string>> = {
  rotated:
    'Rotated: the former next key signs from now on; the former active key stays published while its tokens live.',
  retired: 'Retired: the key is no longer the next key.',
  prepared:
    'Prepared: the new next key is published; a rotation activates it once relying parties caching the JWKS hold it.',
  withdrawn:
    'Withdrawn: the key is no longer published and its private part is erased; this instance dropped it at once, every other instance drops it within seconds.',
};

const STATUS_TEXT: Readonly<Record<SigningKeySummary['status'], string>> = {
  active: 'active: signs every new token',
  next: 'next: published, signs from the next rotation',
  retired: 'retired: published until its tokens expire',
  removed: 'removed: private part erased',
};

/**
 * The done messages that say what this instance does at once, when it could not reload its keys
 * after the change (`&served=later`): the change is saved, this instance follows at a later reload.
 */
const DONE_SERVED_LATER: Readonly<Record<string, string>> = {
  ...DONE,
  rotated:
    'Rotated: the former next key is now the active key; the former active key stays published while its tokens live.',
  withdrawn:
    'Withdrawn: the key is removed and its private part is erased; every instance, this one included, stops publishing it and signing with it at its next reload.',
};

/** The query value a key change's redirect carries when this instance could not serve it at once. */
const SERVED_LATER = 'later';

/** A key JWKS publishes can be withdrawn; a removed one is gone already. */
const WITHDRAWABLE: ReadonlySet<SigningKeySummary['status']> = new Set(['next', 'active', 'retired']);

function keyPath(kid: string, suffix: string): string {
  return `/admin/keys/${encodeURIComponent(kid)}${suffix}`;
}

const isWithdrawable = (status: string): status is WithdrawResult['formerStatus'] =>
  WITHDRAWABLE.has(status as SigningKeySummary['status']);

/**
 * A key change's confirmation: what happens (from the key service's dry run), then the form that
 * makes the change. `fields` carry the state the page was shown for, so that the change is refused
 * when the keys changed meanwhile; `force`, when the change would activate a key relying parties may
 * not know yet, labels the box that makes it anyway.
 */
function confirmationPage(
  request: ConsoleRequest,
  page: {
    title: string;
    heading: Html;
    intro?: Html;
    happens: Html;
    action: string;
    fields?: Readonly<Record<string, string>>;
    force?: string | null;
    submit: string;
    danger?: boolean;
  },
): void {
  renderAdmin(
    request,
    '/admin/keys',
    page.title,
    html`<h1>${page.heading}</h1>
      ${page.intro ?? ''}
      <div class="warn">
        <p><strong>What happens:</strong></p>
        <ul>
          ${page.happens}
        </ul>
      </div>
      <form method="post" action="${page.action}">
        ${csrfField(request.session)}
        ${Object.entries(page.fields ?? {}).map(
          ([name, value]) => html`<input type="hidden" name="${name}" value="${value}" />`,
        )}
        ${
          page.force
            ? html`<p>
                <label class="inline" for="force"
                  ><input type="checkbox" id="force" name="force" value="yes" required /> ${page.force}</label
                >
              </p>`
            : ''
        }
        <div class="actions">
          <button type="submit" ${page.danger ? html`class="danger"` : ''}>${page.submit}</button>
          <a href="/admin/keys">Cancel</a>
        </div>
      </form>`,
  );
}

/**
 * After a rotation, or a withdrawal of the active key: the keys it activated and prepared, named only
 * if they are keys (the query is the visitor's to edit).
 */
function replacementMessage(keys: readonly SigningKeySummary[], query: Record<string, unknown>): Html {
  const known = (value: unknown) =>
    typeof value === 'string' && keys.some((key) => key.kid === value) ? value : undefined;
  const active = known(query.active);
  const next = known(query.next);
  if ((query.done !== 'withdrawn' && query.done !== 'rotated') || !active || !next) return html``;
  return html`<p class="ok" role="status">
    ${query.done === 'withdrawn' ? 'In its place the key' : 'The key'} <code>${active}</code> became active
    and signs every new token; the key <code>${next}</code> is the new next key.
  </p>`;
}

/** `&active=…&next=…`: the keys a rotation or withdrawal activated and prepared, for the done message. */
function replacementQuery(result: { activatedKid: string | null; nextKid: string | null }): string {
  return result.activatedKid && result.nextKid
    ? `&${new URLSearchParams({ active: result.activatedKid, next: result.nextKid }).toString()}`
    : '';
}

export function keyRoutes(deps: AdminDependencies): ConsoleRoute[] {
  const refused = (request: ConsoleRequest, error: KeyError) =>
    renderAdmin(
      request,
      '/admin/keys',
      'Not possible',
      html`<h1>Not possible</h1>
        ${formAlert(error.message)}
        <p><a href="/admin/keys">Signing keys</a></p>`,
      { status: error.code === 'unknown_kid' || error.code === 'invalid_kid' ? 404 : 409 },
    );
  /** What `work` answers, or undefined once the `KeyError` it threw is shown as the refusal page. */
  const unlessRefused = async <T>(
    request: ConsoleRequest,
    work: () => Promise<T>,
  ): Promise<T | undefined> => {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof KeyError)) throw error;
      refused(request, error);
      return undefined;
    }
  };

  /**
   * Loads the keys this instance serves from the database now, after a change made here, so that it
   * never signs with (or publishes) a key the change took away; every other instance follows at its
   * next reload. A failed reload is logged here (the message only: no key material) and retried by
   * the store's own timer; the answer is the query that makes the done page say so
   * (`&served=later`), '' when this instance serves the change already.
   */
  const serveNow = async (request: ConsoleRequest): Promise<string> => {
    try {
      await deps.keyStore.reload();
      return '';
    } catch (error) {
      requestLog(request.ctx, deps.logger).warn(
        {
          err: error instanceof Error ? error.message : String(error),
          reloadIntervalMs: deps.config.keys.reloadIntervalMs,
        },
        'the key change is saved, but reloading this instance’s signing keys failed: it keeps serving the keys it had until a reload succeeds',
      );
      return `&served=${SERVED_LATER}`;
    }
  };
  const reloadSeconds = Math.max(1, Math.round(deps.config.keys.reloadIntervalMs / 1000));
  /** On the keys page after a change this instance could not load at once. */
  const servedLaterMessage = (query: Record<string, unknown>): Html =>
    query.served === SERVED_LATER && typeof query.done === 'string' && Object.hasOwn(DONE, query.done)
      ? html`<div class="warn" role="status">
          <p>
            The change is saved, but this instance could not reload its signing keys just now (its log says
            why): it still signs with and publishes the keys it had. It serves the change at its next
            successful reload, tried every ${reloadSeconds} s; other instances follow at their own reload.
          </p>
        </div>`
      : html``;

  return [
    {
      method: 'GET',
      path: '/admin/keys',
      access: 'superuser',
      async handle(request) {
        const keys = await deps.keys.list();
        renderAdmin(
          request,
          '/admin/keys',
          'Signing keys',
          html`<h1>Signing keys</h1>
            ${doneMessage(
              request.ctx.query.served === SERVED_LATER ? DONE_SERVED_LATER : DONE,
              request.ctx.query.done,
            )}
            ${servedLaterMessage(request.ctx.query)} ${replacementMessage(keys, request.ctx.query)}
            <p>
              RS256 keys, lifecycle next → active → retired → removed. JWKS publishes next, active and retired
              keys. A retired key stays published for
              ${Math.round(deps.keys.retiredPublicationSeconds() / 3600)} hour(s). If a key's private part may
              have leaked, withdraw it: it leaves JWKS at once.
            </p>
            <p>
              <a class="button" href="/admin/keys/rotate">Rotate…</a>
              ${
                keys.some((key) => key.status === 'next')
                  ? ''
                  : html`<a class="button" href="/admin/keys/prepare-next">Prepare a next key…</a>`
              }
            </p>
            <div class="table-wrap">
              <table>
                <caption>
                  ${keys.length} key(s)
                </caption>
                <thead>
                  <tr>
                    <th scope="col">kid</th>
                    <th scope="col">Status</th>
                    <th scope="col">Created</th>
                    <th scope="col">Activated</th>
                    <th scope="col">Retired</th>
                    <th scope="col">Published until</th>
                    <th scope="col"><span class="note">Action</span></th>
                  </tr>
                </thead>
                <tbody>
                  ${keys.map(
                    (key) =>
                      html`<tr>
                        <td><code>${key.kid}</code></td>
                        <td>${STATUS_TEXT[key.status]}</td>
                        <td>${formatTime(key.createdAt)}</td>
                        <td>${formatTime(key.activatedAt)}</td>
                        <td>${formatTime(key.retiredAt)}</td>
                        <td>
                          ${formatTime(key.publishUntil)}
                          ${key.withdrawnAt === null ? '' : html`<br /><strong>withdrawn</strong> ${formatTime(key.withdrawnAt)}`}
                        </td>
                        <td>
                          ${key.status === 'next' ? html`<a href="${keyPath(key.kid, '/retire')}">Retire…</a> ` : ''}
                          ${WITHDRAWABLE.has(key.status) ? html`<a href="${keyPath(key.kid, '/withdraw')}">Withdraw…</a>` : ''}
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>
            </div>`,
        );
      },
    },
    {
      method: 'GET',
      path: '/admin/keys/rotate',
      access: 'superuser',
      async handle(request) {
        const preview = await deps.keys.rotate({ dryRun: true });
        confirmationPage(request, {
          title: 'Rotate the signing key',
          heading: html`Rotate the signing key?`,
          happens: html`<li>
              ${
                preview.promotedNext
                  ? html`The next key <code>${preview.activatedKid}</code>, already published, signs every new
                      token.`
                  : html`A new key is generated and signs every new token (there is no next key yet, so
                      relying parties meet it in JWKS for the first time). To avoid that,
                      <a href="/admin/keys/prepare-next">prepare a next key</a> instead and rotate once it has
                      been published long enough.`
              }
            </li>
            ${
              preview.retiredKid
                ? html`<li>
                    The active key <code>${preview.retiredKid}</code> is retired and stays published until
                    ${formatTime(preview.retiredPublishUntil)}: tokens it signed keep verifying.
                  </li>`
                : ''
            }
            <li>
              A new next key is prepared. This instance serves the change at once, every other instance within
              seconds.
            </li>
            ${
              preview.unpublished
                ? html`<li>
                    <strong>Relying parties may not know the key yet:</strong>
                    ${preview.unpublished.message}.
                  </li>`
                : ''
            }
            ${
              preview.removedKids.length > 0
                ? html`<li>
                    Retired keys past their publication are removed:
                    ${preview.removedKids.map((kid) => html`<code>${kid}</code> `)}
                  </li>`
                : ''
            }`,
          action: '/admin/keys/rotate',
          fields: {
            expected_active: preview.retiredKid ?? '',
            expected_next: preview.promotedNext ? (preview.activatedKid ?? '') : '',
          },
          force: preview.unpublished
            ? 'Rotate anyway: relying parties holding an older copy of the JWKS may reject new ID tokens until they fetch it again'
            : null,
          submit: 'Rotate',
          danger: true,
        });
      },
    },
    {
      method: 'POST',
      path: '/admin/keys/rotate',
      access: 'superuser',
      async handle(request) {
        // The keys the confirmation showed: a form sent twice, or a rotation by someone else since,
        // must not activate a key other than the one confirmed. A form without them rotates as is.
        // `force`: the "rotate anyway" box, shown when relying parties may not know the key yet.
        const { form } = request;
        const expect =
          form.has('expected_active') && form.has('expected_next')
            ? {
                activeKid: form.get('expected_active') || null,
                nextKid: form.get('expected_next') || null,
              }
            : undefined;
        let result: RotationResult;
        try {
          result = await deps.keys.rotate({
            ...(expect ? { expect } : {}),
            force: form.get('force') === 'yes',
            actor: adminActor(request),
          });
        } catch (error) {
          if (error instanceof KeyError && error.code === 'unpublished_key') {
            return refused(
              request,
              new KeyError(
                error.code,
                `${error.message}. To rotate now anyway, tick “Rotate anyway” on the confirmation page`,
              ),
            );
          }
          if (error instanceof KeyError) return refused(request, error);
          throw error;
        }
        const served = await serveNow(request);
        request.seeOther(`/admin/keys?done=rotated${replacementQuery(result)}${served}`);
      },
    },
    {
      method: 'GET',
      path: '/admin/keys/prepare-next',
      access: 'superuser',
      async handle(request) {
        const preview = await unlessRefused(request, () => deps.keys.prepareNext({ dryRun: true }));
        if (!preview) return;
        confirmationPage(request, {
          title: 'Prepare a next key',
          heading: html`Prepare a next key?`,
          happens: html`<li>A new key is generated and published in JWKS at once; it signs nothing yet.</li>
            <li>
              A rotation activates it without “Rotate anyway” from about
              ${formatTime(preview.rotationSafeAt)}, once relying parties caching the JWKS hold it.
            </li>`,
          action: '/admin/keys/prepare-next',
          submit: 'Prepare',
        });
      },
    },
    {
      method: 'POST',
      path: '/admin/keys/prepare-next',
      access: 'superuser',
      async handle(request) {
        if (!(await unlessRefused(request, () => deps.keys.prepareNext({ actor: adminActor(request) }))))
          return;
        const served = await serveNow(request);
        request.seeOther(`/admin/keys?done=prepared${served}`);
      },
    },
    {
      method: 'GET',
      path: '/admin/keys/:kid/retire',
      access: 'superuser',
      async handle(request) {
        const kid = request.params.kid ?? '';
        const preview = await unlessRefused(request, () => deps.keys.retire(kid, { dryRun: true }));
        if (!preview) return;
        confirmationPage(request, {
          title: 'Retire the next key',
          heading: html`Retire key <code>${preview.key.kid}</code>?`,
          happens: html`<li>
              The key is withdrawn before it ever signs; it leaves JWKS when its publication ends.
            </li>
            <li>
              The next rotation generates a new key instead, which relying parties meet in JWKS only then: it
              asks to be forced (“Rotate anyway”). To rotate without that, prepare a new next key afterwards
              (“Prepare a next key…” on the signing keys page) and rotate once it has been published long
              enough.
            </li>`,
          action: keyPath(kid, '/retire'),
          submit: 'Retire',
          danger: true,
        });
      },
    },
    {
      method: 'POST',
      path: '/admin/keys/:kid/retire',
      access: 'superuser',
      async handle(request) {
        const kid = request.params.kid ?? '';
        if (!(await unlessRefused(request, () => deps.keys.retire(kid, { actor: adminActor(request) }))))
          return;
        const served = await serveNow(request);
        request.seeOther(`/admin/keys?done=retired${served}`);
      },
    },
    {
      method: 'GET',
      path: '/admin/keys/:kid/withdraw',
      access: 'superuser',
      async handle(request) {
        const kid = request.params.kid ?? '';
        const preview = await unlessRefused(request, () => deps.keys.withdraw(kid, { dryRun: true }));
        if (!preview) return;
        const cacheSeconds = deps.keys.jwksCacheSeconds();
        confirmationPage(request, {
          title: 'Withdraw a signing key',
          heading: html`Withdraw key <code>${preview.key.kid}</code>?`,
          intro: html`<p>
            For a key whose private part may have leaked. It is the ${preview.formerStatus} key.
          </p>`,
          happens: html`<li>
              The key leaves JWKS at once, not when its publication ends, and its private part is erased. This
              instance drops it at once and every other instance within seconds: aa-oidc then refuses what it
              signed (an <code>id_token_hint</code> at logout or authorization).
            </li>
            ${
              preview.formerStatus === 'active'
                ? html`<li>
                    ${
                      preview.promotedNext
                        ? html`The next key <code>${preview.activatedKid}</code>, already published, signs
                            every new token in its place,`
                        : html`A new key, which relying parties meet in JWKS for the first time, signs every
                          new token in its place,`
                    }
                    and a new next key is prepared.
                  </li>`
                : ''
            }
            ${
              preview.unpublished
                ? html`<li>
                    <strong>Relying parties may not know the key that signs in its place:</strong>
                    ${preview.unpublished.message}.
                  </li>`
                : ''
            }
            <li>
              Relying parties holding a copy of the JWKS fetched before now keep trusting the key until they
              fetch it again: up to ${cacheSeconds} s (<code>keys.jwksCacheSeconds</code>), depending on their
              library.
            </li>
            <li>
              Tokens it signed no longer verify wherever the JWKS is fetched afresh (ID tokens, JWT access
              tokens that resource servers verify themselves). aa-oidc's introspection and userinfo find
              access tokens by their stored value: they never accepted a token forged with the key, and keep
              accepting those it issued until they expire or are revoked.
            </li>
            <li>
              If the key leaked, relying parties may have accepted tokens forged with it: tell their
              operators. “Revoke tokens…” on a user's page revokes a user's tokens, ends their sessions and
              tells the applications.
            </li>
            ${
              preview.formerStatus === 'next'
                ? html`<li>
                    There is no next key afterwards: prepare one (“Prepare a next key…” on the signing keys
                    page) before the next rotation.
                  </li>`
                : ''
            }`,
          action: keyPath(kid, '/withdraw'),
          fields: {
            expected_status: preview.shown.status,
            expected_active: preview.shown.activeKid ?? '',
            expected_next: preview.shown.nextKid ?? '',
          },
          force: preview.unpublished
            ? 'Withdraw anyway: relying parties holding an older copy of the JWKS may reject new ID tokens until they fetch it again (a leaked key is the greater risk)'
            : null,
          submit: 'Withdraw',
          danger: true,
        });
      },
    },
    {
      method: 'POST',
      path: '/admin/keys/:kid/withdraw',
      access: 'superuser',
      async handle(request) {
        const kid = request.params.kid ?? '';
        // The state the confirmation showed, as for a rotation: withdrawing the key is confirmed for
        // that state only (a rotation since may have made a next key the active one). A form without
        // it withdraws as is.
        const { form } = request;
        let expect: ExpectedWithdrawal | undefined;
        if (form.has('expected_status') && form.has('expected_active') && form.has('expected_next')) {
          const status = form.get('expected_status') ?? '';
          if (!isWithdrawable(status)) {
            return refused(
              request,
              new KeyError(
                'keys_changed',
                'the confirmation names no status a key is withdrawn from (next, active or retired); nothing was withdrawn: review the withdrawal again',
              ),
            );
          }
          expect = {
            status,
            activeKid: form.get('expected_active') || null,
            nextKid: form.get('expected_next') || null,
          };
        }
        let result: WithdrawResult;
        try {
          result = await deps.keys.withdraw(kid, {
            ...(expect ? { expect } : {}),
            force: form.get('force') === 'yes',
            actor: adminActor(request),
          });
        } catch (error) {
          if (error instanceof KeyError && error.code === 'unpublished_key') {
            return refused(
              request,
              new KeyError(
                error.code,
                `${error.message}. To withdraw it now anyway, tick “Withdraw anyway” on the confirmation page`,
              ),
            );
          }
          if (error instanceof KeyError) return refused(request, error);
          throw error;
        }
        const served = await serveNow(request);
        request.seeOther(`/admin/keys?done=withdrawn${replacementQuery(result)}${served}`);
      },
    },
  ];
}
