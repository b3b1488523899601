/**
 * IEEE 754 binary16 <-> binary32 conversion, for .npy files with dtype '<f2'.
 *
 * binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
 * Largest finite 65504, smallest normal 2^-14, smallest subnormal 2^-24.
 *
 * float32 -> float16 rounds to nearest, ties to even, on the float32 bits:
 * values at or past 65520 become +-Infinity, values below 2^-25 become +-0,
 * values in between the normals go to subnormals (correctly rounded), NaN
 * stays NaN (quiet, top payload bits kept), the sign of zero is kept.
 * float16 -> float32 is exact (a 65536-entry table).
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float16 bits of the float32 bit pattern `x` (see the module comment for rounding). */
function halfFromFloatBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) {
    // Inf stays Inf; NaN keeps its top payload bits and is made quiet.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7c00 | 0x200 | (mant >>> 13);
  }
  const e = exp - 127 + 15; // exponent re-biased for float16
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal float16 (or zero): value = mant * 2^-24 with mant 10 bits.
    if (e < -10) return sign; // below half the smallest subnormal (incl. float32 subnormals)
    mant |= 0x800000; // the implicit leading bit
    const shift = 14 - e; // 14..24
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
    return sign | half; // a carry out of the mantissa gives the smallest normal, as it should
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry can ripple into the exponent (and up to Inf): still the right rounding.
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
  return half;
}

/** float16 bits nearest to `value` (first rounded to float32, as stored data is). */
export function float32ToFloat16Bits(value: number): number {
  scratchF32[0] = value;
  return halfFromFloatBits(scratchU32[0]);
}

/** The float32 value of float16 bits `h` (exact). */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

let table: Float32Array | null = null;

function halfTable(): Float32Array {
  if (table === null) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = float16BitsToFloat32(h);
  }
  return table;
}

/** Converts float16 bits to float32 values (into `out` when given). */
export function float16ToFloat32Array(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const t = halfTable();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

/** Converts float32 values to float16 bits (into `out` when given). */
export function float32ToFloat16Array(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfFromFloatBits(bits[i]);
  return out;
}

/** True when float16 bits `h` are Inf or NaN. */
export function isFloat16NonFinite(h: number): boolean {
  return (h & 0x7c00) === 0x7c00;
}
