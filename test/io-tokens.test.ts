import { describe, expect, it } from 'vitest';
import { MALFORMED_ID, parseId, parseValue } from '../src/io/tokens.js';
import { formatFloat32 } from '../src/io/format.js';

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const value = (s: string) => parseValue(bytes(s), 0, s.length);

describe('io - token parsing', () => {
  it('parses ids and rejects non-digits', () => {
    expect(parseId(bytes('0'), 0, 1)).toBe(0);
    expect(parseId(bytes('4294967295'), 0, 10)).toBe(4294967295);
    expect(parseId(bytes(''), 0, 0)).toBe(MALFORMED_ID);
    expect(parseId(bytes('1a'), 0, 2)).toBe(MALFORMED_ID);
    expect(parseId(bytes('-1'), 0, 2)).toBe(MALFORMED_ID);
    expect(parseId(bytes('99999999999999999999'), 0, 20)).toBe(Infinity);
  });

  it('parses decimals exactly as Number() does', () => {
    const cases = ['1', '0', '-0', '+3', '0.5', '.5', '5.', '1e3', '1E-3', '-2.5e+2', '0.1', '0.30000000000000004',
      '123456789012345678901234567890', '1e-30', '3.4028235e38', '0.000001234', '1.7976931348623157e308', '4.9e-324',
      '00012', '1.00000000000000000000001', '9007199254740993'];
    for (const c of cases) expect(value(c), c).toBe(Number(c));
    let seed = 7;
    const rand = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed / 2 ** 32; };
    for (let i = 0; i < 20000; i++) {
      const x = (rand() - 0.5) * 10 ** Math.floor(rand() * 40 - 20);
      for (const s of [String(x), x.toExponential(Math.floor(rand() * 18)), x.toFixed(Math.floor(rand() * 12)), x.toPrecision(1 + Math.floor(rand() * 20))]) {
        expect(value(s), s).toBe(Number(s));
      }
    }
  });

  it('returns undefined for malformed values and NaN/Infinity for the words', () => {
    for (const bad of ['', '-', '.', 'e5', '1e', '1e+', '1.2.3', 'abc', '1,', '0x10', '1_0', '1 ', '--1', 'nanx']) {
      expect(value(bad), bad).toBeUndefined();
    }
    expect(value('nan')).toBeNaN();
    expect(value('NaN')).toBeNaN();
    expect(value('inf')).toBe(Infinity);
    expect(value('-Infinity')).toBe(-Infinity);
  });

  it('formats float32 values so that they read back exactly', () => {
    let seed = 99;
    const rand = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed / 2 ** 32; };
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    for (let i = 0; i < 20000; i++) {
      bits[0] = Math.floor(rand() * 2 ** 32);
      if (!Number.isFinite(f[0])) continue;
      const text = formatFloat32(f[0]);
      expect(Math.fround(Number(text)), text).toBe(f[0]);
      expect(text.length, text).toBeLessThanOrEqual(16);
    }
    expect(formatFloat32(Math.fround(0.1))).toBe('0.1');
    expect(formatFloat32(1)).toBe('1');
    expect(formatFloat32(0.5)).toBe('0.5');
  });
});
