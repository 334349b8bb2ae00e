/**
 * What `work` settles to, or `late` when that takes longer than `deadlineMs` (`work` goes on; it must
 * not reject).
 */
export async function within<T>(work: Promise<T>, deadlineMs: number, late: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve) => {
    timer = setTimeout(resolve, deadlineMs, late);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
