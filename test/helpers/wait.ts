/**
 * Polls `check` until it holds; fails naming `what` when it does not within a generous deadline
 * (generous because a loaded machine is slow, never because the code under test may be). The
 * deadline only bounds a failure: no test asserts how long anything took.
 */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  deadlineMs = 60_000,
  intervalMs = 100,
): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out after ${deadlineMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
