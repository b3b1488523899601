import { describe, expect, it } from 'vitest';
import type { CsrMatrix } from '../src/data/types.js';
import { OptionError } from '../src/errors.js';
import { inversePropensities, labelCounts, parsePropensityModel, PROPENSITY_PRESETS } from '../src/metrics/propensity.js';

// w_l = 1 + C (n_l + B)^-A,  C = (ln N - 1)(B + 1)^A   (Jain et al., KDD 2016)
// Numbers below for N = 100 (ln 100 = 4.605170186):
//   default   A=0.55 B=1.5: C = 3.605170186 * 2.5^0.55 (= 1.655263) = 5.967504781
//             n=0: 1 + C * 1.5^-0.55 (= 0.800110) = 5.774661451
//             n=10: 1 + C * 11.5^-0.55 (= 0.260985) = 2.557431533
//             n=99: 1 + C * 100.5^-0.55 (= 0.079215) = 1.472717240
//   amazon    A=0.6 B=2.6:  C = 3.605170186 * 3.6^0.6 = 7.775123057; n=0: 1 + C * 2.6^-0.6 = 5.382513500
//   wikipedia A=0.5 B=0.4:  C = 3.605170186 * sqrt(1.4) = 4.265694890; n=0: 1 + C / sqrt(0.4) = 7.744655828
// A label seen once (n=1) has w = 1 + (ln N - 1) = ln N under every model: (1+B)^A cancels.
describe('metrics - propensity model', () => {
  it('matches hand-computed inverse propensities for the default preset', () => {
    const w = inversePropensities(new Uint32Array([0, 1, 10, 99]), PROPENSITY_PRESETS.default, 100);
    expect(w[0]).toBeCloseTo(5.774661451, 8);
    expect(w[1]).toBeCloseTo(Math.log(100), 12);
    expect(w[2]).toBeCloseTo(2.557431533, 8);
    expect(w[3]).toBeCloseTo(1.472717240, 8);
  });

  it('matches hand-computed values for the amazon and wikipedia presets', () => {
    const a = inversePropensities([0, 1], parsePropensityModel('amazon'), 100);
    expect(a[0]).toBeCloseTo(5.382513500, 8);
    expect(a[1]).toBeCloseTo(Math.log(100), 12);
    const wk = inversePropensities([0, 1], parsePropensityModel('wikipedia'), 100);
    expect(wk[0]).toBeCloseTo(7.744655828, 8);
    expect(wk[1]).toBeCloseTo(Math.log(100), 12);
  });

  it('decreases with the label count (rare labels weigh more)', () => {
    const w = inversePropensities([0, 1, 2, 5, 50, 500], PROPENSITY_PRESETS.default, 1000);
    for (let i = 1; i < w.length; i++) expect(w[i]).toBeLessThan(w[i - 1]);
  });

  it('takes counts and N from a training label matrix', () => {
    // 4 points, 3 labels: label 0 in 3 points, label 1 in 1, label 2 in none
    const m: CsrMatrix = { kind: 'csr', rows: 4, cols: 3, indptr: Uint32Array.from([0, 2, 3, 3, 4]),
      indices: Uint32Array.from([0, 1, 0, 0]), values: null };
    expect(Array.from(labelCounts(m))).toEqual([3, 1, 0]);
    const fromMatrix = inversePropensities(m, { A: 0.55, B: 1.5 });
    const fromCounts = inversePropensities([3, 1, 0], { A: 0.55, B: 1.5 }, 4);
    expect(Array.from(fromMatrix)).toEqual(Array.from(fromCounts));
    expect(fromMatrix[1]).toBeCloseTo(Math.log(4), 12); // n = 1 -> ln N
  });

  it('parses presets and custom A,B; rejects anything else with an OptionError', () => {
    expect(parsePropensityModel('default')).toEqual({ A: 0.55, B: 1.5 });
    expect(parsePropensityModel('0.7,3')).toEqual({ A: 0.7, B: 3 });
    expect(() => parsePropensityModel('wiki')).toThrow(OptionError);
    expect(() => parsePropensityModel('0.5')).toThrow(/neither a preset/);
    expect(() => parsePropensityModel('x,1')).toThrow(/A in 'x,1'/);
    expect(() => parsePropensityModel('0.5,-1')).toThrow(/B in '0.5,-1'/);
  });
});
