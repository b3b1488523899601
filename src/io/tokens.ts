/**
 * Byte-level parsing of the tokens of the sparse text formats: unsigned
 * decimal ids and decimal floating-point values, straight from the bytes of
 * a line (no substring, no regex). Both return a sentinel for malformed input
 * so the caller can say which token of which line was wrong.
 *
 * Values: `[+-]digits[.digits][(e|E)[+-]digits]` (or `.5`, `5.`), plus the
 * words nan/inf/infinity (any case, signed), which parse to NaN/Infinity so
 * the reader can reject them with a specific message. The result is the
 * double nearest to the decimal (Clinger's fast path when the significand has
 * at most 15 digits and the power of ten is at most 22, which covers almost
 * every data file; otherwise Number() on the validated text), i.e. exactly
 * what Number(text) gives; stored into a Float32Array it is then rounded to
 * float32 like any JS number.
 */

/** Returned by parseId for a token that is not a decimal integer. */
export const MALFORMED_ID = -1;

const DIGIT_0 = 0x30;
const PLUS = 0x2b;
const MINUS = 0x2d;
const DOT = 0x2e;
const LOWER_E = 0x65;
const UPPER_E = 0x45;
export const SPACE = 0x20;
export const TAB = 0x09;
export const COLON = 0x3a;
export const COMMA = 0x2c;

/**
 * Parses `bytes[start, end)` as an unsigned decimal integer. Returns
 * MALFORMED_ID when empty or not all digits; values past 2^53 come back as
 * Infinity (out of every range, but well-formed).
 */
export function parseId(bytes: Uint8Array, start: number, end: number): number {
  if (start >= end) return MALFORMED_ID;
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = bytes[i] - DIGIT_0;
    if (c < 0 || c > 9) return MALFORMED_ID;
    v = v * 10 + c;
  }
  return v <= Number.MAX_SAFE_INTEGER ? v : Infinity;
}

const POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
  1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/**
 * Parses `bytes[start, end)` as a decimal number (see the module comment).
 * Returns undefined when malformed.
 */
export function parseValue(bytes: Uint8Array, start: number, end: number): number | undefined {
  let i = start;
  if (i >= end) return undefined;
  let negative = false;
  if (bytes[i] === PLUS || bytes[i] === MINUS) {
    negative = bytes[i] === MINUS;
    i++;
  }
  if (i < end && (bytes[i] | 0x20) >= 0x61 && (bytes[i] | 0x20) <= 0x7a) return parseWord(bytes, i, end, negative);

  let mantissa = 0;
  let significant = 0; // digits accumulated into mantissa, leading zeros excluded
  let exponent = 0;
  let exact = true;
  let sawDigit = false;
  for (; i < end; i++) {
    const c = bytes[i] - DIGIT_0;
    if (c < 0 || c > 9) break;
    sawDigit = true;
    if (significant < 15) {
      mantissa = mantissa * 10 + c;
      if (mantissa !== 0) significant++;
    } else {
      exponent++;
      if (c !== 0) exact = false;
    }
  }
  if (i < end && bytes[i] === DOT) {
    i++;
    for (; i < end; i++) {
      const c = bytes[i] - DIGIT_0;
      if (c < 0 || c > 9) break;
      sawDigit = true;
      if (significant < 15) {
        mantissa = mantissa * 10 + c;
        if (mantissa !== 0) significant++;
        exponent--;
      } else if (c !== 0) {
        exact = false;
      }
    }
  }
  if (!sawDigit) return undefined;
  if (i < end && (bytes[i] === LOWER_E || bytes[i] === UPPER_E)) {
    i++;
    let expNegative = false;
    if (i < end && (bytes[i] === PLUS || bytes[i] === MINUS)) {
      expNegative = bytes[i] === MINUS;
      i++;
    }
    let e = 0;
    const digitsStart = i;
    for (; i < end; i++) {
      const c = bytes[i] - DIGIT_0;
      if (c < 0 || c > 9) break;
      if (e < 1e6) e = e * 10 + c;
    }
    if (i === digitsStart) return undefined;
    exponent += expNegative ? -e : e;
  }
  if (i !== end) return undefined;
  if (exact && exponent >= -22 && exponent <= 22) {
    const value = exponent < 0 ? mantissa / POW10[-exponent] : mantissa * POW10[exponent];
    return negative ? -value : value;
  }
  // Slow path, validated above: Number() accepts exactly this syntax (sign included).
  return Number(latin1(bytes, start, end));
}

function parseWord(bytes: Uint8Array, start: number, end: number, negative: boolean): number | undefined {
  const word = latin1(bytes, start, end).toLowerCase();
  if (word === 'nan') return NaN;
  if (word === 'inf' || word === 'infinity') return negative ? -Infinity : Infinity;
  return undefined;
}

/** The bytes as a string, one char per byte (for short tokens and messages). */
export function latin1(bytes: Uint8Array, start: number, end: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

/** A token for an error message: UTF-8, quoted, cut to 40 characters. */
export function quoteToken(bytes: Uint8Array, start: number, end: number): string {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + start, Math.min(end - start, 60)).toString('utf8');
  return `'${text.length > 40 || end - start > 60 ? text.slice(0, 40) + '...' : text}'`;
}

/** Index of the first byte in [start, end) that is not a space or tab. */
export function skipBlanks(bytes: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && (bytes[i] === SPACE || bytes[i] === TAB)) i++;
  return i;
}

/** Index of the first space or tab in [start, end), or end. */
export function tokenEnd(bytes: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && bytes[i] !== SPACE && bytes[i] !== TAB) i++;
  return i;
}

/** Index of `byte` in [start, end), or -1. */
export function indexOfByte(bytes: Uint8Array, byte: number, start: number, end: number): number {
  for (let i = start; i < end; i++) if (bytes[i] === byte) return i;
  return -1;
}

/** True when the line is empty or only blanks. */
export function isBlank(bytes: Uint8Array, start: number, end: number): boolean {
  return skipBlanks(bytes, start, end) === end;
}
