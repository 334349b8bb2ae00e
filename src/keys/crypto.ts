import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  hkdfSync,
  type JsonWebKey,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, type JWK } from 'jose';

/**
 * Encryption at rest of the private signing keys, and generation of new ones.
 *
 * The encryption key is derived from the configured secret key (`AA_OIDC_SECRET_KEY`) with
 * HKDF-SHA256 and a fixed label, so the same secret never serves two purposes. The stored text is
 * `v1.<iv>.<tag>.<ciphertext>` (base64url, 96-bit random IV, 128-bit GCM tag); the kid is bound as
 * additional authenticated data, so a ciphertext copied onto another row does not decrypt.
 */

const FORMAT_VERSION = 'v1';
const HKDF_INFO = 'aa-oidc signing-key encryption v1';
const HKDF_SALT = 'aa-oidc';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export const SIGNING_ALG = 'RS256';
export const MODULUS_BITS = 2048;
/** F4, the public exponent of every key generated here and by every current RSA key generator. */
export const PUBLIC_EXPONENT = 65537n;

/** A stored private key that cannot be read back: wrong secret key, or damaged text. */
export class KeyDecryptionError extends Error {
  override name = 'KeyDecryptionError';
  readonly kid: string;
  /**
   * `secret_key`: the authenticated decryption failed, as it does with another AA_OIDC_SECRET_KEY
   * than the one the key was encrypted with; `damaged`: the stored text is not what aa-oidc wrote.
   */
  readonly problem: 'secret_key' | 'damaged';
  constructor(kid: string, message: string, problem: 'secret_key' | 'damaged' = 'damaged') {
    super(message);
    this.kid = kid;
    this.problem = problem;
  }
}

/** The AES-256-GCM key for the signing keys, derived from the configured secret key. */
export function deriveKeyEncryptionKey(secretKey: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secretKey, 'utf8'), HKDF_SALT, HKDF_INFO, 32));
}

function additionalData(kid: string): Buffer {
  return Buffer.from(`signing_key:${kid}`, 'utf8');
}

export function encryptPrivateJwk(privateJwk: JWK, kid: string, encryptionKey: Buffer): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', encryptionKey, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(additionalData(kid));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(privateJwk), 'utf8'), cipher.final()]);
  return [FORMAT_VERSION, iv, cipher.getAuthTag(), ciphertext]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
    .join('.');
}

export function decryptPrivateJwk(stored: string, kid: string, encryptionKey: Buffer): JWK {
  const parts = stored.split('.');
  if (parts.length !== 4 || parts[0] !== FORMAT_VERSION) {
    throw new KeyDecryptionError(
      kid,
      `signing key ${kid}: stored private key is not in the ${FORMAT_VERSION} format (damaged row?)`,
    );
  }
  const [, ivText, tagText, ciphertextText] = parts as [string, string, string, string];
  const iv = Buffer.from(ivText, 'base64url');
  const tag = Buffer.from(tagText, 'base64url');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
    throw new KeyDecryptionError(kid, `signing key ${kid}: stored private key is damaged (bad IV or tag)`);
  }
  let plaintext: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', encryptionKey, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(additionalData(kid));
    decipher.setAuthTag(tag);
    plaintext = Buffer.concat([
      decipher.update(Buffer.from(ciphertextText, 'base64url')),
      decipher.final(),
    ]).toString('utf8');
  } catch {
    throw new KeyDecryptionError(
      kid,
      `signing key ${kid} cannot be decrypted: AA_OIDC_SECRET_KEY is not the secret key it was encrypted with ` +
        '(restore the original AA_OIDC_SECRET_KEY; in development it is kept in the data folder as secret.key)',
      'secret_key',
    );
  }
  try {
    return JSON.parse(plaintext) as JWK;
  } catch {
    throw new KeyDecryptionError(kid, `signing key ${kid}: decrypted private key is not JSON (damaged row?)`);
  }
}

/** The public members of an RSA JWK, in the form JWKS publishes. */
export function publicPart(jwk: JWK): JWK {
  if (jwk.kty !== 'RSA' || typeof jwk.n !== 'string' || typeof jwk.e !== 'string') {
    throw new Error(`expected an RSA JWK (got kty ${String(jwk.kty)})`);
  }
  return { kty: 'RSA', n: jwk.n, e: jwk.e };
}

/** RFC 7638 SHA-256 thumbprint of the public key: the kid. */
export function thumbprintOf(jwk: JWK): Promise<string> {
  return calculateJwkThumbprint(publicPart(jwk), 'sha256');
}

export interface GeneratedSigningKey {
  kid: string;
  /** kty, n, e only. */
  publicJwk: JWK;
  /** kty, n, e, d, p, q, dp, dq, qi. */
  privateJwk: JWK;
}

const generateRsa = promisify(generateKeyPair);

/** A new 2048-bit RSA key for RS256, generated off the main thread. */
export async function generateSigningKey(): Promise<GeneratedSigningKey> {
  const { privateKey } = await generateRsa('rsa', {
    modulusLength: MODULUS_BITS,
    publicExponent: Number(PUBLIC_EXPONENT),
  });
  const privateJwk = privateKey.export({ format: 'jwk' }) as JWK;
  const publicJwk = publicPart(privateJwk);
  return { kid: await thumbprintOf(publicJwk), publicJwk, privateJwk };
}

/**
 * The RSA moduli an imported key may have. At least 2048 bits, as RFC 7518 §3.3 requires for RS256
 * (and jose, which oidc-provider signs with, enforces); at most 4096, because every ID token, JWT
 * access token and logout token is signed with the active key, and a signature costs about ten
 * times as much each time the size doubles (about 0.5 ms at 2048 bits, 5 ms at 4096, 50 ms at 8192):
 * a larger key would make every sign-in slow, and the server easy to overload.
 */
export const MINIMUM_IMPORTED_BITS = 2048;
export const MAXIMUM_IMPORTED_BITS = 4096;

/**
 * What puts an RSA key outside the bounds `keys import` accepts (`8192 bits, at most 4096`,
 * `public exponent 3, not 65537`); empty when it is within them. For keys already stored (the
 * system checks), whose import may predate the bounds.
 */
export function importBoundsProblems(modulusBits: number, publicExponent: bigint): string[] {
  const problems: string[] = [];
  if (modulusBits < MINIMUM_IMPORTED_BITS)
    problems.push(`${modulusBits} bits, fewer than ${MINIMUM_IMPORTED_BITS}`);
  if (modulusBits > MAXIMUM_IMPORTED_BITS)
    problems.push(`${modulusBits} bits, more than ${MAXIMUM_IMPORTED_BITS}`);
  if (publicExponent !== PUBLIC_EXPONENT)
    problems.push(`public exponent ${publicExponent}, not ${PUBLIC_EXPONENT}`);
  return problems;
}

/** The modulus size and public exponent of a public RSA JWK (`n`, `e`: big-endian base64url). */
export function rsaShape(publicJwk: JWK): { modulusBits: number; publicExponent: bigint } {
  const number = (member: string | undefined) => {
    const hex = Buffer.from(member ?? '', 'base64url').toString('hex');
    return hex === '' ? 0n : BigInt(`0x${hex}`);
  };
  const modulus = number(publicJwk.n);
  return {
    modulusBits: modulus === 0n ? 0 : modulus.toString(2).length,
    publicExponent: number(publicJwk.e),
  };
}

/** What the import signs and verifies once, to prove the private key belongs to the public one. */
const CONSISTENCY_PROBE = Buffer.from('aa-oidc signing-key import check', 'utf8');

/**
 * True when an RS256 signature made with the private key, as the key store will load it, verifies
 * with the public key JWKS publishes. A PEM whose private parts do not belong to its modulus (a
 * damaged or hand-edited file) parses, but relying parties would reject every token it signs.
 * (OpenSSL redoes a signature whose CRT result fails its own check, so a key with one bad part
 * may still sign correctly, if slower; this catches the keys whose signatures fail.)
 */
function signsVerifiably(privateJwk: JWK, publicJwk: JWK): boolean {
  try {
    const signature = sign(
      'sha256',
      CONSISTENCY_PROBE,
      createPrivateKey({ key: privateJwk as JsonWebKey, format: 'jwk' }),
    );
    return verify(
      'sha256',
      CONSISTENCY_PROBE,
      createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' }),
      signature,
    );
  } catch {
    return false;
  }
}

/**
 * An RSA private key in PEM (PKCS#1 `BEGIN RSA PRIVATE KEY` or PKCS#8 `BEGIN PRIVATE KEY`), as the
 * Python plugin's `OIDC_RSA_PRIVATE_KEY` holds it, in the form a generated key has. Throws an Error
 * whose message says what is wrong and never contains key material.
 */
export async function signingKeyFromPem(pem: string): Promise<GeneratedSigningKey> {
  if (/ENCRYPTED/.test(pem)) {
    throw new Error('the PEM key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)');
  }
  const privateKeys = pem.match(/-----BEGIN (RSA )?PRIVATE KEY-----/g)?.length ?? 0;
  if (privateKeys === 0) {
    throw new Error(
      'expected an RSA private key in PEM form (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)',
    );
  }
  // The parser would take the first and ignore the rest: which key becomes the signing key must not
  // depend on the order of a concatenated file.
  if (privateKeys > 1) {
    throw new Error(`the PEM holds ${privateKeys} private keys; import one key per file`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new Error('the PEM private key cannot be parsed');
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new Error(`expected an RSA key for RS256 (got ${String(key.asymmetricKeyType)})`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MINIMUM_IMPORTED_BITS) {
    throw new Error(`the RSA key has ${bits} bits; at least ${MINIMUM_IMPORTED_BITS} are needed`);
  }
  if (bits > MAXIMUM_IMPORTED_BITS) {
    throw new Error(
      `the RSA key has ${bits} bits; at most ${MAXIMUM_IMPORTED_BITS} are accepted (every token is signed with the active key, ` +
        'and a larger key makes each signature many times slower): use a key of 2048 to 4096 bits',
    );
  }
  // A small exponent (3, 17) invites the signature forgeries of lax verifiers (Bleichenbacher 2006),
  // an even one is no RSA key at all, and some relying parties' libraries refuse any other than
  // 65537 (Go's crypto/rsa takes none above 2^31 - 1). Every generator uses 65537.
  const exponent = key.asymmetricKeyDetails?.publicExponent;
  if (exponent !== PUBLIC_EXPONENT) {
    throw new Error(
      `the RSA key's public exponent is ${String(exponent)}; a signing key must have ${PUBLIC_EXPONENT} ` +
        '(what openssl and every current key generator use): generate a new key (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048)',
    );
  }
  const privateJwk = key.export({ format: 'jwk' }) as JWK;
  const publicJwk = publicPart(privateJwk);
  if (!signsVerifiably(privateJwk, publicJwk)) {
    throw new Error(
      'the RSA private key is inconsistent: a signature made with it does not verify with its public key (its private parts do not belong to its modulus; a damaged or edited file?), so relying parties would reject every token it signs: export the key again from its source (openssl rsa -check -noout -in KEY says what is wrong)',
    );
  }
  return { kid: await thumbprintOf(publicJwk), publicJwk, privateJwk };
}

/**
 * Parses a decrypted private JWK into a key object (the expensive step: done once per key when
 * loaded) and checks that it is the key its row says it is.
 */
export async function importPrivateJwk(privateJwk: JWK, kid: string, publicJwk: JWK): Promise<KeyObject> {
  const thumbprint = await thumbprintOf(privateJwk);
  if (thumbprint !== kid || privateJwk.n !== publicJwk.n || privateJwk.e !== publicJwk.e) {
    throw new KeyDecryptionError(
      kid,
      `signing key ${kid}: private key does not match its kid (damaged row?)`,
    );
  }
  try {
    return createPrivateKey({ key: privateJwk as JsonWebKey, format: 'jwk' });
  } catch (error) {
    throw new KeyDecryptionError(
      kid,
      `signing key ${kid}: private key cannot be parsed (${(error as Error).message})`,
    );
  }
}
