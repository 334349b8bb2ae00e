import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import {
  batchedLines,
  createLogger,
  isoTimeOncePerMillisecond,
  LINE_BATCH_MAX_CHARS,
} from '../../src/logging/logger.ts';
import { redactUrl as redactConfigUrl } from '../../src/config/load.ts';
import { isSensitiveKey, REDACTED, redactUrl, scrubString, scrubValue } from '../../src/logging/redact.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';

function capture(level: 'trace' | 'info' | 'warn' = 'trace') {
  const lines: string[] = [];
  const logger = createLogger(
    { logging: { level: 'info', maskedSecrets: false } },
    {
      level,
      destination: { write: (chunk: string) => void lines.push(...chunk.split('\n').filter(Boolean)) },
    },
  );
  return { logger, lines, parsed: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

const SECRETS = {
  password: 'correct-horse-battery-staple',
  clientSecret: 'cs_9f8e7d6c5b4a39281706',
  accessToken: 'at_Zm9vYmFyYmF6cXV4cXV1eA',
  refreshToken: 'rt_QWxsaWFuY2VBdXRoUmVmcmVzaA',
  idToken: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLWJ5dGVz',
  code: 'aUtHC0de-Wz8xK3mQ9pL2vN5bR7tY1uE4iO6aS0dF',
  verifier: 'pkce-verifier-0123456789abcdefghijklmnopq',
  logoutToken: 'lt_bG9nb3V0LXRva2VuLXZhbHVl',
  cookie: 'aa_oidc_session=c2Vzc2lvbi1jb29raWUtdmFsdWU',
  bearer: 'metrics-bearer-token-0123456789',
};

describe('structured logging redaction', () => {
  it('prints none of the secrets of a deeply nested log call, yet keeps the harmless fields', () => {
    const { logger, lines, parsed } = capture();
    logger.info(
      {
        clientId: 'wiki',
        request: {
          body: { password: SECRETS.password, client_secret: SECRETS.clientSecret, username: 'alice' },
          headers: {
            authorization: `Bearer ${SECRETS.bearer}`,
            cookie: SECRETS.cookie,
            'set-cookie': [SECRETS.cookie],
            'user-agent': 'curl/8',
          },
        },
        deep: {
          a: {
            b: {
              c: {
                d: { e: { f: { accessToken: SECRETS.accessToken, refresh_token: SECRETS.refreshToken } } },
              },
            },
          },
        },
        grant: { code: SECRETS.code, code_verifier: SECRETS.verifier, id_token: SECRETS.idToken },
        list: [{ logout_token: SECRETS.logoutToken }],
        expiresIn: 3600,
        client_secret_expires_at: 0,
      },
      'token request for %s',
      'wiki',
    );
    logger.child({ token: SECRETS.accessToken }).warn('child with a bound secret');
    logger.error(new Error(`upstream rejected https://rp.example/cb?code=${SECRETS.code}&state=xyz`));
    logger.info(`free text carrying Bearer ${SECRETS.bearer} and ${SECRETS.idToken}`);

    const output = lines.join('\n');
    for (const [name, value] of Object.entries(SECRETS)) {
      assert.ok(!output.includes(value), `${name} leaked into: ${output}`);
    }
    const [first, child, error, free] = parsed();
    assert.equal(first!.clientId, 'wiki');
    assert.equal(first!.msg, 'token request for wiki');
    assert.equal(first!.expiresIn, 3600);
    assert.equal(first!.client_secret_expires_at, 0);
    const request = first!.request as { body: Record<string, unknown>; headers: Record<string, unknown> };
    assert.equal(request.body.username, 'alice');
    assert.equal(request.body.password, '[redacted]');
    assert.equal(request.headers.authorization, '[redacted]');
    assert.equal(request.headers['user-agent'], 'curl/8');
    assert.equal(child!.token, '[redacted]');
    assert.match(String((error!.err as { message: string }).message), /code=\[redacted\]&state=xyz/);
    assert.equal((error!.err as { type: string }).type, 'Error');
    assert.match(String(free!.msg), /Bearer \[redacted\]/);
  });

  it('keeps error codes such as ECONNREFUSED and SQLSTATEs readable', () => {
    const { logger, parsed } = capture();
    logger.warn(
      { err: Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED' }) },
      'delivery failed',
    );
    logger.warn({ pg: { code: '23505' } }, 'unique violation');
    const [network, database] = parsed();
    assert.equal((network!.err as { code: string }).code, 'ECONNREFUSED');
    assert.equal((database!.pg as { code: string }).code, '23505');
  });

  it('serializes request objects without sensitive query parameters or headers', () => {
    const { logger, parsed } = capture();
    logger.info(
      {
        req: {
          method: 'GET',
          url: `/o/logout/?id_token_hint=${SECRETS.idToken}&post_logout_redirect_uri=https%3A%2F%2Frp%2F&state=s1`,
          headers: {
            cookie: SECRETS.cookie,
            authorization: `Basic ${Buffer.from(`wiki:${SECRETS.clientSecret}`).toString('base64')}`,
          },
        },
      },
      'incoming',
    );
    const [line] = parsed();
    const req = line!.req as Record<string, unknown>;
    assert.equal(req.method, 'GET');
    assert.equal(
      req.url,
      '/o/logout/?id_token_hint=[redacted]&post_logout_redirect_uri=https%3A%2F%2Frp%2F&state=s1',
    );
    assert.equal(req.headers, undefined);
  });

  it('honours the level: debug lines are dropped at info', () => {
    const { logger, lines } = capture('info');
    logger.debug('hidden');
    logger.info('shown');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /"shown"/);
  });

  it('recognises credential keys by name in any casing', () => {
    for (const key of [
      'password',
      'newPassword',
      'client_secret',
      'clientSecret',
      'Authorization',
      'set-cookie',
      'access_token',
      'refreshToken',
      'id_token_hint',
      'code',
      'code_verifier',
      'logout_token',
      'client_assertion',
      'secretKey',
      'bearerToken',
      'sessionId',
    ]) {
      assert.ok(isSensitiveKey(key), key);
    }
    for (const key of [
      'token_sha256',
      'code_hash',
      'token_type',
      'grant_type',
      'client_id',
      'username',
      'status',
      'token_endpoint_auth_method',
    ]) {
      assert.ok(!isSensitiveKey(key), key);
    }
  });

  it('redacts a password named pwd, by key and as a parameter, and keeps the name PWD where no value follows', () => {
    for (const key of ['pwd', 'PWD', 'db_pwd', 'userPwd', 'pwd2']) assert.ok(isSensitiveKey(key), key);
    assert.deepEqual(scrubValue({ user: 'aa', pwd: 'hunter2-x', nested: { DB_PWD: 'hunter3-y' } }), {
      user: 'aa',
      pwd: REDACTED,
      nested: { DB_PWD: REDACTED },
    });
    assert.deepEqual(scrubValue(JSON.parse('{"uid":"aa","pwd":"x"}')), { uid: 'aa', pwd: REDACTED });
    assert.equal(redactUrl('/login?user=aa&pwd=secret&next=/'), '/login?user=aa&pwd=[redacted]&next=/');
    assert.equal(
      scrubString('mysql://aa@db/aa?PWD=s3cret;x failed'),
      'mysql://aa@db/aa?PWD=[redacted] failed',
    );
    assert.equal(scrubString('Driver=x;UID=sa;PWD=s3cret;'), 'Driver=x;UID=sa;PWD=[redacted]');
    // The name alone, in a path or a sentence, and `pwd` as a value (an `amr`), are no password.
    for (const kept of [
      'cannot read $PWD/aa-oidc.yaml',
      'cannot read ${PWD}/data (PWD is /srv/aa-oidc)',
      'amr=pwd&acr=0',
      'signed in with pwd and otp',
      '/home/pwd/aa-oidc.yaml',
    ]) {
      assert.equal(scrubString(kept), kept);
    }
    assert.deepEqual(scrubValue({ amr: ['pwd', 'otp'], cwd: '/srv/aa-oidc' }), {
      amr: ['pwd', 'otp'],
      cwd: '/srv/aa-oidc',
    });
  });

  it('scrubs credentials recognisable by shape in free text and URLs', () => {
    assert.equal(
      redactUrl('https://rp.example/cb#access_token=abc123&token_type=Bearer'),
      'https://rp.example/cb#access_token=[redacted]&token_type=Bearer',
    );
    assert.equal(scrubString('code=abc&error_code=E1'), 'code=[redacted]&error_code=E1');
    // A name is read as the server reads it: percent-decoded, and judged as a key is.
    assert.equal(
      redactUrl('/o/userinfo/?access%5Ftoken=abc123&%61ccess_token=def456&state=s1'),
      '/o/userinfo/?access%5Ftoken=[redacted]&%61ccess_token=[redacted]&state=s1',
    );
    assert.equal(
      redactUrl('/account/password?current_password=old-one&new_password=new-one&client%5Fsecret=x'),
      '/account/password?current_password=[redacted]&new_password=[redacted]&client%5Fsecret=[redacted]',
    );
    assert.equal(
      redactUrl(
        '/o/authorize/?client_id=wiki&response_type=code&code_challenge=abc&id_token_hint=eyJx&pass+word=p',
      ),
      '/o/authorize/?client_id=wiki&response_type=code&code_challenge=abc&id_token_hint=[redacted]&pass+word=[redacted]',
    );
    assert.equal(
      redactUrl('/x?%E0%A4%A=1&%zzcode=2'),
      '/x?%E0%A4%A=1&%zzcode=2',
      'a name that is not valid encoding',
    );
    assert.equal(scrubString('Authorization: Basic d2lraTpzZWNyZXQ='), 'Authorization: Basic [redacted]');
    assert.equal(scrubString('plain text without secrets'), 'plain text without secrets');
    assert.equal(
      scrubString('/o/userinfo/ Bearer\tabc.def'),
      '/o/userinfo/ Bearer\t[redacted]',
      'a tab counts as the space after a scheme',
    );
    assert.equal(
      scrubString('/x/eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2ln'),
      '/x/[redacted-jwt]',
      'a JWT in a path, with neither a parameter nor a space',
    );
    assert.equal(
      scrubString(
        'id-eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2ln and eyJx.eyJ-.eyJhbGciOiJSUzI1NiJ9.eyJzdWIi.',
      ),
      'id-[redacted-jwt] and eyJx.eyJ-.[redacted-jwt]',
      'a JWT after a dash keeps what comes before it; one after fragments too short to be a JWT is found',
    );
    assert.equal(
      scrubString(
        `/login?next=${encodeURIComponent('/o/authorize?prompt=none&id_token_hint=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2ln')}`,
      ),
      '/login?next=%2Fo%2Fauthorize%3Fprompt%3Dnone%26id_token_hint%3D[redacted-jwt]',
      'a JWT in a URL carried, percent-encoded, in a parameter: right after an escape',
    );
    assert.equal(
      redactUrl('/o/authorize?request=eyJhbGciOiJub25lIn0.eyJsb2dpbl9oaW50IjoiYSJ9.&client_id=wiki'),
      '/o/authorize?request=[redacted-jwt]&client_id=wiki',
      'an unsigned request object is a JWT with an empty signature',
    );
  });

  it("hides a parameter secret on one route only (an identity provider's callback state), as a server reads it", () => {
    const state = new Set(['state']);
    assert.equal(
      redactUrl('/o/eve-sso/callback?code=abc&state=s1&error_description=x', state),
      '/o/eve-sso/callback?code=[redacted]&state=[redacted]&error_description=x',
    );
    assert.equal(
      redactUrl('/cb?%73tate=s1&state=s2;code=c', state),
      '/cb?%73tate=[redacted]&state=[redacted]',
    );
    // Another name, or another case (another parameter to the server), is kept.
    assert.equal(redactUrl('/cb?State=s1&xstate=s2&states=s3', state), '/cb?State=s1&xstate=s2&states=s3');
    // Without it, a state is anyone's (an application's, on the authorization endpoint): kept.
    assert.equal(redactUrl('/o/authorize?client_id=wiki&state=s1'), '/o/authorize?client_id=wiki&state=s1');
  });

  it('redacts the whole of a value as a server reads it: through `;`, `?` and quotes', () => {
    const cases: Array<[string, string, string]> = [
      ['/cb?code=ab;cd&state=s1', '/cb?code=[redacted]&state=s1', 'a `;` inside the value'],
      ['/cb?code=ab"cd&state=s1', '/cb?code=[redacted]&state=s1', 'a quote inside the value'],
      ['/cb?code=ab,cd?e&state=s1', '/cb?code=[redacted]&state=s1', 'a comma and a `?` inside the value'],
      ['/cb?a=1&code="x y&z"&state=s1', '/cb?a=1&code=[redacted]&state=s1', 'a double-quoted value'],
      ["/cb?code='x\\'y z'&state=s1", '/cb?code=[redacted]&state=s1', 'a single-quoted value, an escape'],
      ['token="never closed &state=s1', 'token=[redacted]', 'a quote never closed: to the end'],
      ['/cb;code=abc;state=s1', '/cb;code=[redacted]', 'a matrix parameter'],
      ['/cb?state=s1;code=abc', '/cb?state=s1;code=[redacted]', 'after a harmless value, at a `;`'],
      ['/cb?next=/o/cb?code=abc&x=1', '/cb?next=/o/cb?code=[redacted]&x=1', 'a query inside a value'],
      ['/cb?state="s1"code=abc', '/cb?state="s1"code=[redacted]', 'after a quote'],
      [
        "rejected 'code=abc' and (password=p1)",
        "rejected 'code=[redacted] and (password=[redacted]",
        'in a message',
      ],
      ['/cb?code=abc&code=def', '/cb?code=[redacted]&code=[redacted]', 'a repeated name'],
      ['/cb?%63ode=abc&%2563ode=x', '/cb?%63ode=[redacted]&%2563ode=x', 'an encoded name, decoded once'],
    ];
    for (const [text, expected, what] of cases) assert.equal(scrubString(text), expected, what);
    for (const name of [
      'token',
      'refresh_token',
      'id_token_hint',
      'logout_token',
      'login_hint_token',
      'client_secret',
      'password',
      'otp',
      'assertion',
      'client_assertion',
      'user_code',
      'device_code',
    ]) {
      assert.equal(redactUrl(`/x?a=1&${name}=v;w"z&b=2`), `/x?a=1&${name}=[redacted]&b=2`, name);
    }
    for (const kept of ['/x?state=s1;nonce=n1', '/x?client_id=wiki&scope=openid', '/x?a=b=code=c']) {
      assert.equal(redactUrl(kept), kept);
    }
  });

  it('redacts the password of a URL, and only that', () => {
    assert.equal(
      scrubString('GET http://wiki:p@ss:w0rd@127.0.0.1:8080/o/x?a=1 failed'),
      'GET http://wiki:[redacted]@127.0.0.1:8080/o/x?a=1 failed',
    );
    assert.equal(scrubString('postgres://aa:s3cret@db/aa'), 'postgres://aa:[redacted]@db/aa');
    for (const kept of ['postgres://aa@db/aa', 'see https://rp/cb and a@b', 'https://rp:8443/cb then a@b']) {
      assert.equal(scrubString(kept), kept);
    }
  });

  it('redacts a URL password holding an unencoded `/`, `?` or `#`, up to the last `@`', () => {
    const cases: Array<[string, string]> = [
      ['connect //user:pa/ss@host failed', 'connect //user:[redacted]@host failed'],
      [
        'postgres://aa:s?c#r/t@db:5432/aa?sslmode=require',
        'postgres://aa:[redacted]@db:5432/aa?sslmode=require',
      ],
      [
        '"mysql://aa:a/b@c@db/aa" and "https://x:8443/p@q"',
        '"mysql://aa:[redacted]@db/aa" and "https://x:[redacted]@q"',
      ],
      [
        'GET http://wiki:p/w@127.0.0.1:8080/o/x HTTP/1.1',
        'GET http://wiki:[redacted]@127.0.0.1:8080/o/x HTTP/1.1',
      ],
      ['https://host:8443/r?next=//u:p/w@h', 'https://host:[redacted]@h'],
      ['https://host/r?next=//u:p/w@h', 'https://host/r?next=//u:[redacted]@h'],
    ];
    for (const [text, expected] of cases) assert.equal(scrubString(text), expected, text);
    for (const kept of ['//a:b/c and d@e', 'https://host/x?mail=a@b']) {
      assert.equal(scrubString(kept), kept);
    }
  });

  it('reads an IPv6 host and its port as such, not as a user and a password', () => {
    for (const kept of [
      'GET http://[::1]:8080/o/authorize?login_hint=a@b.example HTTP/1.1',
      'redirecting to http://[2001:db8::1]/cb then mail a@b',
    ]) {
      assert.equal(scrubString(kept), kept);
    }
    assert.equal(
      scrubString('GET http://wiki:s3cret@[::1]:8080/o/x?a=b HTTP/1.1'),
      'GET http://wiki:[redacted]@[::1]:8080/o/x?a=b HTTP/1.1',
    );
    // A `[` further on in a user's name (the drivers read it so) does not make it a host.
    assert.equal(scrubString('postgres://a[b:s3cret@db/aa'), 'postgres://a[b:[redacted]@db/aa');
  });

  it('reads a user name starting with `[` as a user unless an IPv6 address and `]` follow', () => {
    const cases: Array<[string, string]> = [
      ['postgres://[aa:s3cret@db/x', 'postgres://[aa:[redacted]@db/x'],
      ['connect "mysql://[:s3cret@db:3306/aa" failed', 'connect "mysql://[:[redacted]@db:3306/aa" failed'],
      // Brackets of a user's name, not an address: hex digits that are no IPv6 address, or a `]`
      // followed by neither a port nor the end of the host.
      ['postgres://[aa:bb]/s3cret@db/x', 'postgres://[aa:[redacted]@db/x'],
      ['postgres://[::1]x:s3cret@db/x', 'postgres://[:[redacted]@db/x'],
      ['postgres://[::1]:s3cret@db/x', 'postgres://[:[redacted]@db/x'],
    ];
    for (const [text, expected] of cases) assert.equal(scrubString(text), expected, text);
    for (const kept of [
      'GET http://[::1]:8080/o/authorize?login_hint=a@b.example HTTP/1.1',
      'http://[fe80::1%25eth0]:8080/cb?mail=a@b',
      'postgres://[2001:db8::1]/aa?application_name=a@b',
      'see http://[::ffff:127.0.0.1] and a@b',
      'https://[::1]:8443/x@y',
    ]) {
      assert.equal(scrubString(kept), kept);
    }
  });

  it('redacts the whole of a URL password holding an `@` and a `/`, however far it runs', () => {
    const cases: Array<[string, string]> = [
      ['mysql://aa:p@ss:w/rd@db/aa', 'mysql://aa:[redacted]@db/aa'],
      ['mysql://aa:p@ss/rd@db/aa', 'mysql://aa:[redacted]@db/aa'],
      [
        'connect "postgres://aa:a@b?c#d/e@db:5432/aa" failed',
        'connect "postgres://aa:[redacted]@db:5432/aa" failed',
      ],
      // Ambiguous: the `@` in the query may end the password. Too much is redacted, not too little.
      ['GET http://wiki:s3cret@[::1]:8080/o/x?a=b@c HTTP/1.1', 'GET http://wiki:[redacted]@c HTTP/1.1'],
      ['http://u:pw@host/a@b', 'http://u:[redacted]@b'],
    ];
    for (const [text, expected] of cases) assert.equal(scrubString(text), expected, text);
  });

  it('takes no password for a port: digits then `/`, `?` or `#` before an `@` are redacted in every scheme', () => {
    const cases: Array<[string, string]> = [
      ['postgres://aa:1234/5678@db/aa', 'postgres://aa:[redacted]@db/aa'],
      [
        'postgres://aa:1234/5678@db:5432/aa?sslmode=require',
        'postgres://aa:[redacted]@db:5432/aa?sslmode=require',
      ],
      ['postgres://aa:1234/5678@db?sslmode=require', 'postgres://aa:[redacted]@db?sslmode=require'],
      ['"postgres://aa:1234/5678@db" refused', '"postgres://aa:[redacted]@db" refused'],
      ['mysql://aa:/5678@[::1]', 'mysql://aa:[redacted]@[::1]'],
      // An empty host (a Unix socket) and what follows it.
      [
        'postgres://aa:1234/5678@/aa?host=/run/postgresql',
        'postgres://aa:[redacted]@/aa?host=/run/postgresql',
      ],
      ['postgres://aa:1234/5678@?host=/run/postgresql', 'postgres://aa:[redacted]@?host=/run/postgresql'],
      ['connect //aa:123456/7@db', 'connect //aa:[redacted]@db'],
      ['https://aa:123456/7@db', 'https://aa:[redacted]@db'],
      ['http://u:1234/5678@db/x', 'http://u:[redacted]@db/x'],
      // Written like a port in a web URL, or with nothing of a URL after the `@`: a password all the same.
      ['https://u:1234/5678@h', 'https://u:[redacted]@h'],
      ['https://u:1234?x9z@h', 'https://u:[redacted]@h'],
      ['wss://u:1234#x9z@/cb', 'wss://u:[redacted]@/cb'],
      ['http://u:/x9z@127.0.0.1:3306', 'http://u:[redacted]@127.0.0.1:3306'],
      ['mysql://u:1234/x9z@', 'mysql://u:[redacted]@'],
      ['redis://:1234?x9z@db:6379/0', 'redis://:[redacted]@db:6379/0'],
      // A port and a path or query holding an `@` are redacted too: too much rather than too little.
      ['https://host:8443/users/bob@example.com/profile', 'https://host:[redacted]@example.com/profile'],
      ['https://host:8443/x@y', 'https://host:[redacted]@y'],
      ['http://host:8080?mail=a@b', 'http://host:[redacted]@b'],
      ['wss://host:8443/x#a@b.example', 'wss://host:[redacted]@b.example'],
      ['//a:1/b@', '//a:[redacted]@'],
    ];
    for (const [text, expected] of cases) assert.equal(scrubString(text), expected, text);
    for (const kept of ['https://host/users/bob@example.com/profile', 'https://host:8443/x then a@b']) {
      assert.equal(scrubString(kept), kept);
    }
  });

  it('redacts the whole of a password holding a no-break space or other Unicode', () => {
    const cases: Array<[string, string]> = [
      ['postgres://aa:pa\u00a0ss@db/aa', 'postgres://aa:[redacted]@db/aa'],
      ['connect mysql://aa:p\u3000a/ss@db:3306/aa failed', 'connect mysql://aa:[redacted]@db:3306/aa failed'],
      ['postgres://aa:x\u2028y\ufeffz@db', 'postgres://aa:[redacted]@db'],
      ['//us\u00a0er:s3cret@db', '//us\u00a0er:[redacted]@db'],
      ['/login?password=pa\u00a0ss\u2003wd&next=/', '/login?password=[redacted]&next=/'],
      ['_session=ab\u00a0cd; lang=en', '_session=[redacted] lang=en'],
      // An internationalized host after the `@` ends a digits-only password as any host does.
      ['https://u:1234/5678@\u00f1.example/x', 'https://u:[redacted]@\u00f1.example/x'],
      ['postgres://aa:1234/5678@b\u00fccher.example', 'postgres://aa:[redacted]@b\u00fccher.example'],
      ['postgres://aa:1234/5678@\u00f1.example', 'postgres://aa:[redacted]@\u00f1.example'],
    ];
    for (const [text, expected] of cases) assert.equal(scrubString(text), expected, JSON.stringify(text));
  });

  it('writes no part of such a password in a log line', async () => {
    const harness = createLeakHarness();
    const password = 'correct\u00a0horse/b\u00e4ttery@\u3000staple';
    harness.registerSecret(password, 'database password');
    harness.registerSecret('horse/b\u00e4ttery', 'the rest of the database password');
    const logger = createLogger({ logging: { level: 'info', maskedSecrets: false } }, harness.loggerOptions);
    logger.error(
      { detail: `postgres://aa:${password}@db:5432/aa` },
      `cannot reach postgres://aa:${password}@db/aa`,
    );
    logger.warn(`sign-in refused: /login?username=alice&password=${password}`);
    await harness.assertNoLeaks();
    assert.equal(harness.logLines.length, 2);
  });

  it('redacts a password holding a space in a URL written in quotes or angle brackets, up to the closing one', () => {
    const cases: Array<[string, string]> = [
      ['connect "postgres://u:pa ss@host/db" failed', 'connect "postgres://u:[redacted]@host/db" failed'],
      [
        "cannot reach 'mysql://aa:correct horse battery staple@db:3306/aa'",
        "cannot reach 'mysql://aa:[redacted]@db:3306/aa'",
      ],
      ['see <postgres://aa:pa ss@db>, then a@b', 'see <postgres://aa:[redacted]@db>, then a@b'],
      ['`redis://:a b c@cache:6379`', '`redis://:[redacted]@cache:6379`'],
      ['{"url":"postgres://aa:p@ss w/rd@db/aa"}', '{"url":"postgres://aa:[redacted]@db/aa"}'],
      ['url "//aa:pa ss@db/aa"', 'url "//aa:[redacted]@db/aa"'],
      [
        '"postgres://aa:pa\tss@db" and "https://x:y z@w"',
        '"postgres://aa:[redacted]@db" and "https://x:[redacted]@w"',
      ],
    ];
    for (const [text, expected] of cases) assert.equal(scrubString(text), expected, JSON.stringify(text));
    // Without the quotes a URL ends at white space; a quote that closes before the next `@`, or on
    // another line, ends it too; a URL must start right after the quote.
    for (const kept of [
      'see http://api:v2 then ask bob@example.org',
      '"http://api:v2" then ask bob@example.org',
      '"see http://api:v2 then ask bob@example.org"',
      "'https://rp.example:8443/cb' isn't allowed; ask admin@example.org",
      '"https://rp.example:8443/cb\nadmin@example.org"',
      '"//[::1]:5432 a@b"',
      '<https://host:v2 a>@b',
    ]) {
      assert.equal(scrubString(kept), kept, JSON.stringify(kept));
    }
  });

  it('writes no part of a password holding spaces, quoted in a message, in a log line', async () => {
    const harness = createLeakHarness();
    harness.registerSecret('correct horse battery staple', 'database passphrase');
    const logger = createLogger({ logging: { level: 'info', maskedSecrets: false } }, harness.loggerOptions);
    const url = 'postgres://aa:correct horse battery staple@db:5432/aa';
    logger.error({ err: new Error(`cannot connect to "${url}": ECONNREFUSED`) }, `cannot reach <${url}>`);
    await harness.assertNoLeaks();
    for (const word of ['correct', 'horse', 'battery', 'staple'])
      assert.doesNotMatch(harness.logLines.join('\n'), new RegExp(word));
  });

  it('writes no part of a password after a user name starting with `[`, or digits and `?`', async () => {
    const harness = createLeakHarness();
    harness.registerSecret('s3cret-horse', 'the password of the user [aa');
    harness.registerSecret('4321?xq9Zhorse', 'a password read as a port by the drivers');
    harness.registerSecret('8443/xq9Zhorse', 'a password written like a port and a path');
    const logger = createLogger({ logging: { level: 'info', maskedSecrets: false } }, harness.loggerOptions);
    logger.error(
      { detail: 'postgres://[aa:s3cret-horse@db/aa' },
      'cannot reach mysql://[aa:s3cret-horse@db/aa',
    );
    logger.error('cannot reach postgres://aa:4321?xq9Zhorse@db/aa, nor https://aa:8443/xq9Zhorse@db');
    await harness.assertNoLeaks();
    // No part of it either: the leak harness looks for the whole.
    for (const part of ['s3cret', '4321', 'xq9Z', '8443'])
      assert.doesNotMatch(harness.logLines.join('\n'), new RegExp(part));
  });

  it("hides in the configuration's messages whatever a log line hides of a URL", () => {
    const cases: Array<[string, string]> = [
      [
        'postgres://aa@db/aa?application_name=x&code=c0de-value',
        'postgres://aa@db/aa?application_name=x&code=[redacted]',
      ],
      ['mysql://aa@db/aa?ssl=1&api_key=k3y-value', 'mysql://aa@db/aa?ssl=1&api_key=[redacted]'],
      [
        'postgres://aa@db/aa?options=Bearer%20x&a=Bearer t0ken-value',
        'postgres://aa@db/aa?options=Bearer%20x&a=Bearer [redacted]',
      ],
      // Its own reading is kept where it hides more: the whole text is one URL, white space and all.
      ['postgres://aa:pa ss@db/aa?password=p&x=1', 'postgres://aa:***@db/aa?password=***&x=1'],
      ['postgres://[aa:s3cret@db/aa', 'postgres://[aa:***@db/aa'],
    ];
    for (const [url, expected] of cases) assert.equal(redactConfigUrl(url), expected, url);
  });

  // A randomized check, seeded so that a failure is repeated: passwords of letters, digits and the
  // characters that cut URLs (`@/?#[]:%`, Unicode spaces), after user names that start with `[`, in
  // every scheme the project reads or logs. No 4 characters of a password may remain, in a log line
  // or in the configuration's messages (`redactUrl` of config/load.ts, which hides at least as much).
  it('leaves no part of any generated password, in the log or in configuration messages', () => {
    let seed = 20_261_205;
    const random = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const letters = [...'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789'];
    const special = [
      ...'@/#?[]:%!$&\'()*+,;=~"\\`{}|^<>-_.',
      '%40',
      '%2F',
      '\u00a0',
      '\u3000',
      '\u2003',
      '\u00e9',
    ];
    const schemes = ['postgres', 'postgresql', 'mysql', 'mariadb', 'redis', 'http', 'https'];
    const users = ['aa', '[aa', 'a[b', '', '[', '[::1]x', '127.0.0.1'];
    const hosts = ['db', 'db:5432', '127.0.0.1:3306', '[::1]', '[::1]:5432', '', '\u00f1.example'];
    const tails = ['/aa', '/aa?sslmode=require', '', '?x=1', '/0', '#f'];
    const contexts: Array<[string, string]> = [
      ['', ''],
      ['connect "', '" failed'],
      ['cannot reach ', ' (ECONNREFUSED)'],
    ];
    const leaks: string[] = [];
    for (let n = 0; n < 3000; n += 1) {
      let password = random() < 0.3 ? String(Math.floor(random() * 70_000)) : '';
      const length = 8 + Math.floor(random() * 12);
      while (password.length < length) password += random() < 0.35 ? pick(special) : pick(letters);
      const [before, after] = pick(contexts);
      const [scheme, user, host, tail] = [pick(schemes), pick(users), pick(hosts), pick(tails)];
      const url = `${scheme}://${user}:${password}@${host}${tail}`;
      const rest = `${before}${scheme}://${user}:@${host}${tail}${after} ${REDACTED} ***`;
      for (const shown of [scrubString(`${before}${url}${after}`), redactConfigUrl(url)]) {
        for (let index = 0; index + 4 <= password.length; index += 1) {
          const part = password.slice(index, index + 4);
          if (shown.includes(part) && !rest.includes(part)) leaks.push(JSON.stringify([url, shown]));
        }
      }
    }
    assert.deepEqual(leaks.slice(0, 5), []);
  });

  it('redacts the values of our cookies, and parameters after a comma', () => {
    for (const name of [
      '_session',
      '_session.sig',
      '_session.legacy',
      '_session.legacy.sig',
      '_interaction',
      '_interaction.sig',
      '_interaction_resume',
      '_interaction_resume.legacy.sig',
      '_aa_oidc_console',
      '_aa_oidc_console.sig',
      '_aa_oidc_console_sign_out',
      '_aa_oidc_console_flow',
      '_aa_oidc_csrf',
      '_aa_oidc_external_result',
      '__Host-_session',
      '__Host-_session.sig',
      '__Host-_aa_oidc_console',
      '__Host-_aa_oidc_console.sig',
      '__Host-_aa_oidc_console_flow',
    ]) {
      assert.equal(scrubString(`cookie ${name}=X1y2; lang=en`), `cookie ${name}=[redacted] lang=en`, name);
      assert.equal(scrubString(`a=1; ${name}=X1y2`), `a=1; ${name}=[redacted]`, name);
      assert.deepEqual(scrubValue({ [name]: 'X1y2' }), { [name]: REDACTED }, name);
    }
    assert.equal(scrubString('x=1,code=SECRET'), 'x=1,code=[redacted]');
    assert.equal(scrubString('x=1,token=T&y=2'), 'x=1,token=[redacted]&y=2');
    for (const kept of [
      'session=abc',
      'my_session=abc',
      '_sessions=abc',
      'x=1,scope=openid,profile',
      'a,b=c',
      '_interaction_id=1',
      '__Host-lang=en',
    ]) {
      assert.equal(scrubString(kept), kept);
    }
  });

  it('writes control and invisible characters as escapes, the same JSON value', () => {
    const { logger, lines, parsed } = capture();
    const name = 'alice\u009b2J\u0085\u007f\u2028{"level":60}\u2029\u202eevil\u200b';
    logger.info({ name }, `signed in ${name}`);
    logger.child({ user: name }).warn({ vetted: 'no' }, 'child');
    for (const line of lines) {
      assert.doesNotMatch(line, /[\u007f-\u009f\u2028\u2029\u202e\u200b]/, line);
    }
    assert.match(lines[0]!, /alice\\u009b2J\\u0085\\u007f\\u2028/);
    const [first, second] = parsed();
    assert.equal(first!.name, name);
    assert.equal(first!.msg, `signed in ${name}`);
    assert.equal(second!.user, name);
  });

  // A hang guard, not a measure of speed: a pattern that tried every `eyJ` of a run again over the
  // rest of it (quadratic) took about 3.5 s for 64 KB of `eyJ-eyJ-…` and about a minute for each of
  // these 256 KB; a linear one takes milliseconds. Synchronous work cannot be interrupted in this
  // process, so it runs in a child stopped after 20 s.
  it('scrubs text made of possible JWT starts without rescanning it', () => {
    const script = `
      import { scrubString } from ${JSON.stringify(new URL('../../src/logging/redact.ts', import.meta.url).href)};
      for (const text of ['eyJ-'.repeat(65_536), 'eyJ-'.repeat(32_768) + '.' + 'eyJ-'.repeat(32_768), '%3DeyJ-'.repeat(37_449)]) {
        if (scrubString(text) !== text) throw new Error('changed a text without a JWT');
      }
      for (const text of ['@ ' + '"a://b:c '.repeat(29_127), '@ ' + '"a://b:c \\'a://b:c <a://b:c '.repeat(9_709), '@ ' + '\\'//a:b "//a:b '.repeat(18_724), ';a='.repeat(65_536), '//' + ':'.repeat(262_144), '//a:' + 'b//a:'.repeat(52_428), 'a="'.repeat(87_381), '@ ' + '//a:b '.repeat(43_690), '//[::1]:1/'.repeat(26_214) + '@', '//[' + ':'.repeat(262_144) + ' @']) {
        if (scrubString(text) !== text) throw new Error('changed a text without a credential');
      }
      if (scrubString('//a:1/'.repeat(43_690) + '@') !== '//a:[redacted]@') throw new Error('one password');
      if (scrubString('https://a:1/' + 'b'.repeat(262_144) + '@' + 'c'.repeat(262_144)) !== 'https://a:[redacted]@' + 'c'.repeat(262_144)) throw new Error('a long password');
      if (scrubString('//a:1/@ '.repeat(32_768)) !== '//a:[redacted]@ '.repeat(32_768)) throw new Error('many passwords');
      if (scrubString('"a://b:c ' + 'd '.repeat(131_072) + '@e"') !== '"a://b:[redacted]@e"') throw new Error('a long quoted password');
      if (scrubString('"a://b:c d@e" '.repeat(18_724)) !== '"a://b:[redacted]@e" '.repeat(18_724)) throw new Error('many quoted passwords');
      if (scrubString('code="' + '\\\\'.repeat(131_072)) !== 'code=[redacted]') throw new Error('a quoted value');`;
    const child = spawnSync(process.execPath, ['--input-type=module', '--eval', script], {
      timeout: 20_000,
      encoding: 'utf8',
    });
    assert.equal(child.signal, null, 'scrubbing 256 KB did not end within 20 s');
    assert.equal(child.status, 0, child.stderr);
  });
});

describe('log line destination', () => {
  it('formats the time as pino does, once per millisecond', () => {
    let now = Date.UTC(2026, 11, 1, 15, 0, 0, 7);
    const time = isoTimeOncePerMillisecond(() => now);
    assert.equal(time(), ',"time":"2026-12-01T15:00:00.007Z"');
    assert.equal(time(), ',"time":"2026-12-01T15:00:00.007Z"');
    now += 1;
    assert.equal(time(), ',"time":"2026-12-01T15:00:00.008Z"');
  });

  it('hands the lines written until its scheduled hand-over in one write, in order', () => {
    const writes: string[] = [];
    const target = { write: (chunk: string) => void writes.push(chunk), flushSync: () => {} };
    const due: Array<() => void> = [];
    const batched = batchedLines(target, (handOver) => void due.push(handOver));
    batched.write('a\n');
    batched.write('b\n');
    assert.deepEqual(writes, [], 'nothing is written before the hand-over is due');
    assert.equal(due.length, 1, 'one hand-over scheduled for both lines');
    due.shift()!();
    assert.deepEqual(writes, ['a\nb\n']);
    batched.write('c\n');
    assert.equal(due.length, 1, 'the next line schedules the next hand-over');
    due.shift()!();
    assert.deepEqual(writes, ['a\nb\n', 'c\n']);
  });

  it('hands the lines over at once when they grow past the batch size', () => {
    const writes: string[] = [];
    const target = { write: (chunk: string) => void writes.push(chunk), flushSync: () => {} };
    const due: Array<() => void> = [];
    const batched = batchedLines(target, (handOver) => void due.push(handOver));
    const line = `${'x'.repeat(LINE_BATCH_MAX_CHARS / 2)}\n`;
    batched.write(line);
    assert.deepEqual(writes, []);
    batched.write(line);
    assert.deepEqual(writes, [`${line}${line}`], 'written without waiting for the hand-over');
    due.shift()!();
    assert.deepEqual(writes, [`${line}${line}`], 'the hand-over then finds nothing pending');
  });

  it('writes the pending lines first when the target is flushed synchronously (shutdown, exit)', () => {
    const writes: string[] = [];
    const target = {
      write: (chunk: string) => void writes.push(chunk),
      flushSync: () => void writes.push('|'),
    };
    const batched = batchedLines(target);
    batched.write('a\n');
    target.flushSync();
    assert.deepEqual(writes, ['a\n', '|']);
    batched.write('b\n');
    batched.flushSync();
    assert.deepEqual(writes, ['a\n', '|', 'b\n', '|']);
  });
});
