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
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      `subjectAltName=${subjectAltName}`,
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile };
}
