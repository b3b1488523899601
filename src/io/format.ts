/** Number formatting for the text writers. */

/**
 * A short decimal that reads back as exactly the float32 `v`: integers below
 * 1e9 as integers, otherwise the first of 6..9 significant digits that
 * round-trips through Math.fround (9 always does for float32), without
 * trailing zeros ("0.1", not "0.100000"), in exponent form when the plain
 * form would be long ("1.5e-7", "1.23457e+20").
 */
export function formatFloat32(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
  for (let digits = 6; digits <= 9; digits++) {
    const text = v.toPrecision(digits);
    const n = Number(text);
    if (Math.fround(n) === v) {
      const short = text.includes('e') ? String(n) : trimFraction(text);
      return short.length > 12 ? n.toExponential() : short;
    }
  }
  return String(v); // not reached for float32 values; exact for any double
}

/** "0.500000" -> "0.5", "3.00000" -> "3" (text has a '.' and no exponent). */
function trimFraction(text: string): string {
  if (!text.includes('.')) return text;
  let end = text.length;
  while (text.charCodeAt(end - 1) === 0x30) end--;
  if (text.charCodeAt(end - 1) === 0x2e) end--;
  return text.slice(0, end);
}
