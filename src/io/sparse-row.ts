/**
 * Parser of the two parts a sparse text line can have, shared by the XC text
 * format (src/io/xc-text.ts) and the sparse matrix text format
 * (src/io/sparse-text.ts):
 *
 * - an id list `3,14,15` (XC labels), and
 * - entries `id:value id:value ...` separated by spaces or tabs (features,
 *   or the columns of a sparse matrix; in a binary matrix `id` alone is also
 *   accepted and values are dropped).
 *
 * Both parse straight from the line's bytes into reusable scratch arrays,
 * check every id against the header's count, sort the row, and throw
 * DataFormatError naming the file, the line and the token on any problem.
 */
import { DataFormatError } from '../errors.js';
import { dedupeSortedRow, sortRowEntries } from '../data/csr.js';
import { COLON, COMMA, SPACE, TAB, parseId, parseValue, quoteToken, skipBlanks, tokenEnd } from './tokens.js';

/** Reusable arrays for one row; `count` entries are valid after a parse. */
export class RowScratch {
  ids = new Uint32Array(256);
  values = new Float32Array(256);
  count = 0;

  /** Makes room for `n` entries (keeps nothing). */
  ensure(n: number): void {
    if (n <= this.ids.length) return;
    const capacity = Math.max(n, this.ids.length * 2);
    this.ids = new Uint32Array(capacity);
    this.values = new Float32Array(capacity);
  }
}

/** What the ids of a part are called in messages, and their range. */
export interface IdDomain {
  /** 'label', 'feature' or 'column' */
  noun: string;
  /** ids must be < limit */
  limit: number;
  /** for the out-of-range message, e.g. 'the header says 159 labels' */
  limitText: string;
}

const DIGIT_0 = 0x30;

function fail(file: string, line: number, reason: string): never {
  throw new DataFormatError({ file, line }, reason);
}

/**
 * Parses the comma-separated id list `bytes[start, end)` (one token, no
 * blanks) into `out`, sorted and without repeats (labels are a set).
 */
export function parseIdList(bytes: Uint8Array, start: number, end: number, domain: IdDomain,
  file: string, line: number, out: RowScratch): void {
  out.ensure(((end - start) >> 1) + 1);
  const ids = out.ids;
  let n = 0;
  let p = start;
  for (;;) {
    const idStart = p;
    let id = 0;
    while (p < end) {
      const d = bytes[p] - DIGIT_0;
      if (d < 0 || d > 9) break;
      id = id * 10 + d;
      p++;
    }
    if (p < end && bytes[p] !== COMMA) {
      let q = p;
      while (q < end && bytes[q] !== COMMA) q++;
      fail(file, line, `malformed ${domain.noun} id ${quoteToken(bytes, idStart, q)} in ${quoteToken(bytes, start, end)} (expected comma-separated integers)`);
    }
    if (p === idStart) {
      fail(file, line, `empty ${domain.noun} id (stray comma) in ${quoteToken(bytes, start, end)}`);
    }
    if (id >= domain.limit) {
      fail(file, line, `${domain.noun} id ${parseId(bytes, idStart, p)} out of range: ${domain.limitText} (ids 0..${domain.limit - 1})`);
    }
    ids[n++] = id;
    if (p === end) break;
    p++; // the comma
  }
  sortRowEntries(ids, null, 0, n);
  out.count = dedupeSortedRow(ids, 0, n);
}

/**
 * Parses the blank-separated `id:value` entries of `bytes[start, end)` into
 * `out`, sorted by id. A repeated id is an error, except in a binary matrix
 * (a set), where repeats are merged.
 */
export function parseEntries(bytes: Uint8Array, start: number, end: number, domain: IdDomain, binary: boolean,
  file: string, line: number, out: RowScratch): void {
  out.ensure(((end - start) >> 1) + 1);
  const ids = out.ids;
  const values = out.values;
  let n = 0;
  let p = skipBlanks(bytes, start, end);
  while (p < end) {
    const tokenStart = p;
    let id = 0;
    while (p < end) {
      const d = bytes[p] - DIGIT_0;
      if (d < 0 || d > 9) break;
      id = id * 10 + d;
      p++;
    }
    const idEnd = p;
    const atBlank = p === end || bytes[p] === SPACE || bytes[p] === TAB;
    if (!(p < end && bytes[p] === COLON) && !(binary && atBlank && idEnd > tokenStart)) {
      const te = tokenEnd(bytes, tokenStart, end);
      const token = quoteToken(bytes, tokenStart, te);
      let colon = tokenStart;
      while (colon < te && bytes[colon] !== COLON) colon++;
      if (colon === te) {
        if (binary) fail(file, line, `malformed ${domain.noun} id ${token} (expected id or id:value)`);
        fail(file, line, `missing ':' in ${domain.noun} entry ${token} (expected id:value)`);
      }
      fail(file, line, `malformed ${domain.noun} id ${quoteToken(bytes, tokenStart, colon)} in ${token} (expected a non-negative integer)`);
    }
    if (idEnd === tokenStart) {
      fail(file, line, `malformed ${domain.noun} id '' in ${quoteToken(bytes, tokenStart, tokenEnd(bytes, tokenStart, end))} (expected a non-negative integer)`);
    }
    if (id >= domain.limit) {
      fail(file, line, `${domain.noun} id ${parseId(bytes, tokenStart, idEnd)} out of range: ${domain.limitText} (ids 0..${domain.limit - 1})`);
    }
    let value = 1;
    if (!atBlank) {
      const valueStart = p + 1;
      const te = tokenEnd(bytes, valueStart, end);
      const v = parseValue(bytes, valueStart, te);
      if (v === undefined) {
        fail(file, line, `malformed value ${quoteToken(bytes, valueStart, te)} in ${quoteToken(bytes, tokenStart, te)} (expected a decimal number)`);
      }
      value = Math.fround(v);
      if (!Number.isFinite(value)) {
        const what = Number.isNaN(v) ? 'NaN value' : Number.isFinite(v) ? 'value overflows float32' : 'infinite value';
        fail(file, line, `${what} in ${quoteToken(bytes, tokenStart, te)}`);
      }
      p = te;
    }
    ids[n] = id;
    values[n] = value;
    n++;
    p = skipBlanks(bytes, p, end);
  }
  const dup = sortRowEntries(ids, binary ? null : values, 0, n);
  if (binary) {
    out.count = dedupeSortedRow(ids, 0, n);
  } else {
    if (dup >= 0) fail(file, line, `${domain.noun} id ${dup} appears twice in the line`);
    out.count = n;
  }
}
