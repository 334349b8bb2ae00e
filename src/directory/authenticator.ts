/**
 * How a person proves who they are at the login page. The interaction routes know only this
 * interface: the built-in directory supplies a password authenticator (src/directory/builtin/
 * login.ts); another directory supplies its own (Alliance Auth's password hashes), and a sign-in
 * through another identity provider (EVE SSO) is a second kind beside it. Throttling, CSRF and the
 * provider's interaction stay in the routes, the same for every authenticator.
 */

/**
 * The outcome of one sign-in attempt. `refused` never says why to the person signing in (it would
 * tell whether a username exists); `reason` is for the log only.
 */
export type AuthenticationResult =
  | {
      outcome: 'authenticated';
      /** The directory's user id; the provider's account id is its decimal string. */
      userId: number;
      /** Authentication method references (RFC 8176) for the id_token's `amr`. */
      amr: string[];
    }
  /**
   * The password was right, but someone else chose it (the bootstrap superuser's): the person signs
   * in only once they have chosen their own (`PasswordAuthenticator.replacePassword`).
   */
  | { outcome: 'password_change_required'; userId: number; username: string }
  | { outcome: 'refused'; reason: 'invalid' | 'inactive' };

/** The outcome of choosing one's own password after `password_change_required`. */
export type PasswordReplacement =
  | { outcome: 'authenticated'; userId: number; amr: string[] }
  /** The new password is not acceptable; `message` says why, for the person (never the password). */
  | { outcome: 'unacceptable'; message: string }
  /** No change is pending for this user any more (done meanwhile, deactivated, deleted). */
  | { outcome: 'not_pending' };

/**
 * One password sign-in attempt for one typed username, the user looked up once: first the name the
 * login throttle counts it against, then (once the throttle has let it through) the password check.
 */
export interface PasswordAttempt {
  /**
   * The name the attempt counts against in the login throttle. It depends on `username` alone, never
   * on whether the directory has such a user: a key that changed with the answer would let a 429 tell
   * whether a name is real. Every spelling the directory finds as one user must give one key (after
   * the throttle's own fold, `accountKey`: NFKC, lower case), or each spelling would have a budget of
   * its own for guessing that user's password: `username` as typed where the directory compares names
   * as that fold does; else the typed name as the directory compares it (Alliance Auth on MySQL or
   * MariaDB, whose collation finds `zoe` for `zóe` or `ZOË`: `allianceAuthThrottleKey`).
   */
  readonly throttledName: string;
  /**
   * Checks the password, of the user looked up for this attempt (none: it fails after the same hash
   * work). The password is never cut: one longer than `MAX_PASSWORD_LENGTH` is refused as a wrong
   * one. Takes the same time whether or not the username exists, and never puts the password in an
   * error, a log line or an event.
   */
  authenticate(password: string): Promise<AuthenticationResult>;
}

/** Username and password, checked by the directory that holds the user. */
export interface PasswordAuthenticator {
  readonly kind: 'password';
  /**
   * Starts a sign-in attempt with `username`, as typed, stripped as Django's login form strips it
   * (`stripPythonWhitespace`) but never cut: read as the directory compares names (NFKC next, as
   * Django does), and one longer than any it holds is no user's. The routes reserve the attempt's
   * place in the login throttle (`throttledName`) before any password is verified (`authenticate`).
   * A directory that cannot be read here fails the attempt at once,
   * before the throttle: asked again past it, one that does not answer would double the wait. A
   * directory that compares names as the throttle's key does reads nothing here, and its user when
   * the password is checked.
   */
  prepare(username: string): Promise<PasswordAttempt>;
  /**
   * After `password_change_required`, once the caller has made sure this very sign-in gave the
   * current password: sets the person's own password (it must differ from the one they were given)
   * and signs them in.
   */
  replacePassword(userId: number, newPassword: string): Promise<PasswordReplacement>;
  /**
   * Stamps the last login of a sign-in that is complete, every factor given (a right password whose
   * second factor was never given, or was wrong, is no login). Absent: the directory keeps no such
   * stamp here (Alliance Auth's `last_login` is left alone).
   */
  recordSignIn?(userId: number): Promise<void>;
}

/** Where a sign-in through another identity provider sends the browser first. */
export interface ExternalAuthorizationRequest {
  url: string;
  /** Kept by the caller (in a signed cookie) and compared with what comes back. */
  state: string;
  codeVerifier: string;
}

/**
 * What the identity provider proved, before the directory is asked anything. `subject` (the
 * character, `eve:<id>`) is the account the login throttle counts the attempt against (an external
 * one: no name typed into the password form shares its budget); `identity` is
 * what `judge` needs. `rejected`: the answer did not verify (never shown in detail to the person);
 * `unavailable`: the identity provider cannot be reached now, try again later.
 */
export type ExternalVerification<Identity> =
  | { outcome: 'verified'; subject: string; identity: Identity }
  | { outcome: 'failed'; kind: 'rejected' | 'unavailable'; message: string };

/**
 * A sentence for the person, in parts: a name from elsewhere (a character's, as EVE SSO gives it) is
 * a part of its own, which the page shows isolated (a right-to-left name in a `<bdi>`), so that the
 * sentence's own words and punctuation keep their order around it.
 */
export type MessageParts = readonly string[];

/**
 * Whether the directory lets a verified person in. `referred`: the person proved who they are at
 * the identity provider, but only the directory's own site can let them in (register, record a new
 * owner, choose a main character); `message` says what to do there, `referTo` is where. `failed`:
 * the directory refuses (as `ExternalVerification`'s failure).
 */
export type ExternalSignInResult =
  | { outcome: 'authenticated'; userId: number; amr: string[] }
  | { outcome: 'referred'; reason: string; message: MessageParts; referTo: string }
  | { outcome: 'failed'; kind: 'rejected' | 'unavailable'; message: string };

/**
 * A sign-in through another identity provider (EVE SSO): the login page offers a button labelled
 * with `label`; the browser goes to `authorizationRequest(…).url` and comes back to the callback with
 * a code, which `verify` redeems and, once the login throttle has room for the account it proves,
 * `judge` decides on. Two steps, so that the directory is asked only under the throttle.
 */
export interface ExternalAuthenticator<Identity = unknown> {
  readonly kind: 'external';
  /** Who the button names: "Sign in with <label>". */
  readonly label: string;
  /** Short, URL-safe: the path segment of its routes (`eve`). */
  readonly id: string;
  authorizationRequest(redirectUri: string): ExternalAuthorizationRequest;
  /** Redeems the code at the identity provider and verifies who it proves; asks the directory nothing. */
  verify(code: string, redirectUri: string, codeVerifier: string): Promise<ExternalVerification<Identity>>;
  /** Asks the directory whether the verified person may sign in (only under the login throttle). */
  judge(identity: Identity): Promise<ExternalSignInResult>;
}

/** Every kind of authenticator the login page can offer. */
export type Authenticator = PasswordAuthenticator | ExternalAuthenticator;
