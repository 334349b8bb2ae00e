/** Shared by the bench's parent process and the engines it starts. */
export { MODULUS_BITS } from '../src/keys/crypto.ts';

/** The scope every flow of the bench asks for. */
export const BENCH_SCOPE = 'openid profile email';

/** The equivalent confidential client both engines know. */
export interface BenchClient {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
}
