/**
 * Deterministic pseudo-random numbers for shuffling: the same seed gives the
 * same sequence on every machine and Node version (integer arithmetic only:
 * BigInt for the 64-bit seeding, Math.imul and >>> for the generator).
 *
 * - splitmix64 (Steele, Lea, Flood 2014) expands a 64-bit seed into state.
 * - xoshiro128** (Blackman, Vigna 2018) generates 32-bit outputs: 128 bits
 *   of state, period 2^128 - 1, fast in 32-bit JS arithmetic.
 * - `below(n)` is unbiased (rejection of the top 2^32 mod n values).
 * - `shuffle` is Fisher-Yates from the last element down.
 */
import { XmcError } from '../errors.js';

const MASK64 = (1n << 64n) - 1n;

/** One splitmix64 step: the next state and the output for it. */
export function splitmix64(state: bigint): { state: bigint; value: bigint } {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return { state: next, value: z ^ (z >> 31n) };
}

/** A seed as an unsigned 64-bit integer (a number must be a safe non-negative integer). */
export function seed64(seed: number | bigint): bigint {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new XmcError(`random seed must be a non-negative integer, got ${seed}`);
    return BigInt(seed);
  }
  return seed & MASK64;
}

/** A seed for stream `stream` (e.g. an epoch) of a base seed: independent-looking, reproducible. */
export function deriveSeed(seed: number | bigint, stream: number): bigint {
  const base = splitmix64(seed64(seed)).value;
  return splitmix64(base ^ seed64(stream)).value;
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seeds the four state words from two splitmix64 outputs of `seed`. */
  constructor(seed: number | bigint) {
    let state = seed64(seed);
    const a = splitmix64(state);
    state = a.state;
    const b = splitmix64(state);
    this.s0 = Number(a.value & 0xffffffffn) | 0;
    this.s1 = Number(a.value >> 32n) | 0;
    this.s2 = Number(b.value & 0xffffffffn) | 0;
    this.s3 = Number(b.value >> 32n) | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the one forbidden state
  }

  /** A generator with the given raw state words (for reference test vectors). */
  static fromState(s0: number, s1: number, s2: number, s3: number): Xoshiro128 {
    const g = new Xoshiro128(0);
    g.s0 = s0 | 0; g.s1 = s1 | 0; g.s2 = s2 | 0; g.s3 = s3 | 0;
    return g;
  }

  /** The next 32-bit output, as a number in [0, 2^32). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n), n in [1, 2^32], without modulo bias. */
  below(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 4294967296) throw new XmcError(`below(n): n must be an integer in [1, 2^32], got ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }
}

/** Shuffles `a` in place (Fisher-Yates). */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(a: T, rng: Xoshiro128): T {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** A uniformly random permutation of 0..n-1. */
export function randomPermutation(n: number, rng: Xoshiro128): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, rng);
}
