/** The one-line integer headers of the sparse text formats (`N F L`, `rows cols`). */
import { DataFormatError } from '../errors.js';
import { readPrefix } from './files.js';

/** Longest header line looked at; real headers are a few dozen bytes. */
const MAX_HEADER_BYTES = 4096;
const MAX_DIMENSION = 0xffff_ffff;

/** The first line of a file (without '\n' / '\r\n'); '' for an empty file. */
export async function readHeaderLine(path: string): Promise<string> {
  const prefix = Buffer.from(await readPrefix(path, MAX_HEADER_BYTES));
  const nl = prefix.indexOf(0x0a);
  if (nl < 0 && prefix.length === MAX_HEADER_BYTES) {
    throw new DataFormatError({ file: path, line: 1 }, `bad header: no end of line in the first ${MAX_HEADER_BYTES} bytes`);
  }
  const line = prefix.subarray(0, nl < 0 ? prefix.length : nl).toString('latin1');
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** Integers of a header line, whatever their count (null if any field is not an integer). */
export function headerIntegers(text: string): number[] | null {
  const fields = text.trim().split(/[ \t]+/);
  if (fields.length === 1 && fields[0] === '') return null;
  const out: number[] = [];
  for (const f of fields) {
    if (!/^\d+$/.test(f)) return null;
    out.push(Number(f));
  }
  return out;
}

/**
 * Parses a header of exactly `count` non-negative integers, each at most
 * 2^32 - 1 (ids are stored as Uint32).
 */
export function parseHeaderLine(file: string, text: string, count: number, shape: string): number[] {
  const shown = text.length > 60 ? text.slice(0, 60) + '...' : text;
  if (text.trim() === '') throw new DataFormatError({ file, line: 1 }, `bad header: empty line, expected ${shape}`);
  const values = headerIntegers(text);
  if (values === null || values.length !== count) {
    throw new DataFormatError({ file, line: 1 }, `bad header '${shown}': expected ${shape}`);
  }
  for (const v of values) {
    if (v > MAX_DIMENSION) throw new DataFormatError({ file, line: 1 }, `bad header '${shown}': ${v} is larger than ${MAX_DIMENSION}`);
  }
  return values;
}
