/**
 * Why a file could not be read, and what to do, for the usual causes: `wanted.file` is what to name
 * instead, `wanted.orElse` another way out when there is no such file, and `wanted.access` an example
 * of the permissions that let aa-oidc read it.
 */
export function whyUnreadable(
  error: unknown,
  wanted: { file: string; orElse?: string; access?: string },
): string {
  switch (((error ?? {}) as NodeJS.ErrnoException).code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return `no such file; name ${wanted.file} (a relative path starts from the working directory)${wanted.orElse === undefined ? '' : `, or ${wanted.orElse}`}`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied; let the user aa-oidc runs as read it${wanted.access === undefined ? '' : ` (${wanted.access})`}`;
    case 'EISDIR':
      return `it is a directory; name ${wanted.file}`;
    default:
      return (error as Error).message;
  }
}
