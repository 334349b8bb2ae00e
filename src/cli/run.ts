import { runCli } from './main.ts';

// `aa-oidc … | head` closes the pipe early: that ends the output, it is not a failure. Any other
// failure to write (a full disk, an I/O error) leaves the output incomplete: one line on stderr says
// so, naming the stream and the cause, and the exit code is 1 (what the command did stays done).
for (const [stream, name] of [
  [process.stdout, 'standard output'],
  [process.stderr, 'standard error'],
] as const) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    if (stream !== process.stderr) {
      process.stderr.write(
        `aa-oidc: cannot write to ${name} (${error.message.replace(/, write$/, '')}); what the command printed is incomplete\n`,
      );
    }
    process.exit(1);
  });
}

process.exitCode = await runCli(process.argv.slice(2));
