import { describe, expect, it } from 'vitest';
import { l2NormalizeRows } from '../src/data/normalize.js';
import { applyIdf, fitIdf } from '../src/data/tfidf.js';
import { csrFromRows } from '../src/data/csr.js';
import type { CsrMatrix, DenseMatrix } from '../src/data/types.js';

describe('data - L2 row normalisation', () => {
  it('scales dense rows to unit length and leaves zero rows zero', () => {
    const m: DenseMatrix = { kind: 'dense', rows: 3, cols: 2, data: Float32Array.from([3, 4, 0, 0, -1, 0]) };
    const n = l2NormalizeRows(m);
    expect(Array.from(n.data)).toEqual([0.6, 0.8, 0, 0, -1, 0].map(Math.fround));
    expect(Array.from(m.data)).toEqual([3, 4, 0, 0, -1, 0]); // input untouched
    l2NormalizeRows(m, { inPlace: true });
    expect(m.data).toEqual(n.data);
  });

  it('scales CSR rows, including binary ones (values become 1/sqrt(nnz))', () => {
    const m = csrFromRows(5, [[0, 4], [], [2]], [[3, 4], [], [0]]);
    const n = l2NormalizeRows(m);
    expect(Array.from(n.values!)).toEqual([0.6, 0.8, 0].map(Math.fround));
    expect(n.indices).toBe(m.indices);
    const b = l2NormalizeRows(csrFromRows(5, [[0, 1, 2, 3], []]));
    expect(Array.from(b.values!)).toEqual([0.5, 0.5, 0.5, 0.5]);
    let sum = 0;
    for (const v of b.values!) sum += v * v;
    expect(sum).toBeCloseTo(1, 6);
  });
});

describe('data - tf-idf', () => {
  it('fits smooth idf on the training rows and applies it to any split', () => {
    // 4 training rows; column 0 in all, column 1 in one, column 2 in none.
    const train = csrFromRows(3, [[0, 1], [0], [0], [0]], [[2, 1], [1], [1], [0.5]]);
    const idf = fitIdf(train);
    const N = 4;
    expect(idf[0]).toBeCloseTo(Math.log((1 + N) / (1 + 4)) + 1, 6);
    expect(idf[1]).toBeCloseTo(Math.log((1 + N) / (1 + 1)) + 1, 6);
    expect(idf[2]).toBeCloseTo(Math.log((1 + N) / (1 + 0)) + 1, 6);
    const test = csrFromRows(3, [[1, 2]], [[3, 1]]);
    const t = applyIdf(test, idf);
    expect(t.values![0]).toBeCloseTo(3 * idf[1], 5);
    expect(t.values![1]).toBeCloseTo(idf[2], 5);
    // binary input: tf = 1
    const tb = applyIdf(csrFromRows(3, [[0, 1]]) as CsrMatrix, idf);
    expect(Array.from(tb.values!)).toEqual([idf[0], idf[1]]);
  });

  it('does not count explicit zeros as occurrences, and checks the width', () => {
    const train = csrFromRows(2, [[0, 1], [1]], [[0, 1], [1]]);
    const idf = fitIdf(train);
    expect(idf[0]).toBeCloseTo(Math.log(3 / 1) + 1, 6);
    expect(() => applyIdf(csrFromRows(3, [[0]]), idf)).toThrow(/idf has 2 columns but the matrix has 3/);
  });
});
