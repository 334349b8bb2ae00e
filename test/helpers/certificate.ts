import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * A self-signed certificate for 127.0.0.1 (RSA 2048, one day), made with openssl in `folder`: the
 * certificate a test's own TLS server (nginx, PgBouncer, MariaDB) presents, and the authority its
 * clients trust. The key file is readable by all (a server that switches to another account reads
 * it). `subjectAltName` names more than the address (`DNS:localhost,IP:127.0.0.1`).
 */
export function loopbackCertificate(
  folder: string,
  prefix = '',
  subjectAltName = 'IP:127.0.0.1',
): { certFile: string; keyFile: string } {
  const certFile = path.join(folder, `${prefix}cert.pem`);
  const keyFile = path.join(folder, `${prefix}key.pem`);
  selfSigned('/CN=127.0.0.1', certFile, keyFile, ['-addext', `subjectAltName=${subjectAltName}`]);
  return { certFile, keyFile };
}

/**
 * A client certificate (CN `commonName`) issued by an authority made for it, with openssl in
 * `folder`: the authority's certificate is what a server checking client certificates trusts.
 */
export function clientCertificate(
  folder: string,
  commonName: string,
): { caFile: string; certFile: string; keyFile: string } {
  const file = (name: string) => path.join(folder, `client-${name}`);
  selfSigned('/CN=aa-oidc test client authority', file('ca.pem'), file('ca-key.pem'));
  openssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    `/CN=${commonName}`,
    '-keyout',
    file('key.pem'),
    '-out',
    file('request.pem'),
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    file('request.pem'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca-key.pem'),
    '-CAcreateserial',
    '-days',
    '1',
    '-out',
    file('cert.pem'),
  ]);
  return { caFile: file('ca.pem'), certFile: file('cert.pem'), keyFile: file('key.pem') };
}

/** A self-signed certificate (RSA 2048, one day) for `subject`, with openssl's `extra` options. */
function selfSigned(subject: string, certFile: string, keyFile: string, extra: readonly string[] = []): void {
  openssl([
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', subject],
    ...[...extra, '-keyout', keyFile, '-out', certFile],
  ]);
}

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}
