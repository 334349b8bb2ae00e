/**
 * Preloaded (`node --import`) into a CLI process by a test: as the process exits, says on stderr
 * how many SIGINT and SIGTERM listeners it still has (`signal listeners at exit: SIGINT 0, SIGTERM 0`),
 * so that a test sees whether a command that ended stopped listening for signals.
 */
process.on('exit', () => {
  process.stderr.write(
    `signal listeners at exit: SIGINT ${process.listenerCount('SIGINT')}, SIGTERM ${process.listenerCount('SIGTERM')}\n`,
  );
});
