/** The contract of one `xmc` subcommand, and option parsing shared by all. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { OptionError } from '../errors.js';

export interface Command {
  /** Shown by `xmc <name> --help`. */
  help: string;
  /** Runs with the arguments after the subcommand name; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs, strict, with its errors turned into OptionError. */
export function parseOptions<O extends Options>(args: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    const msg = (err as Error).message;
    const m = /'(--?[\w-]+)/.exec(msg);
    throw new OptionError(m ? m[1] : '(arguments)', msg);
  }
}

/** Parses an option value as a number within [min, max], integer if asked. */
export function numberOption(name: string, value: string | undefined, fallback: number,
  { min = -Infinity, max = Infinity, integer = false }: { min?: number; max?: number; integer?: boolean } = {}): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new OptionError(name, `'${value}' is not a number`);
  if (integer && !Number.isInteger(n)) throw new OptionError(name, `'${value}' is not an integer`);
  if (n < min || n > max) throw new OptionError(name, `${value} is out of range [${min}, ${max}]`);
  return n;
}

/** Parses a value that must be one of `choices`. */
export function choiceOption<T extends string>(name: string, value: string | undefined, fallback: T, choices: readonly T[]): T {
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value)) {
    throw new OptionError(name, `'${value}' is not one of ${choices.join(', ')}`);
  }
  return value as T;
}
