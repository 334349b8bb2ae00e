import { InvalidArgumentError } from 'commander';

/**
 * A command-line number of the bench's scripts: `integer`, a whole number; `positive`, above 0 (else
 * 0 is allowed). A value that is not one is refused, naming the option.
 */
export function numberOption(name: string, { integer, positive }: { integer: boolean; positive: boolean }) {
  return (value: string): number => {
    const parsed = Number(value);
    if (
      !Number.isFinite(parsed) ||
      (positive ? parsed <= 0 : parsed < 0) ||
      (integer && !Number.isInteger(parsed))
    )
      throw new InvalidArgumentError(
        `${name} must be a ${integer ? 'whole ' : ''}number ${positive ? '> 0' : '≥ 0'} (got "${value}")`,
      );
    return parsed;
  };
}
