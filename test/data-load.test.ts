import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadDataset, readFeatureMatrix } from '../src/data/load.js';
import { csrFromRows } from '../src/data/csr.js';
import { writeXcText } from '../src/io/xc-text.js';
import { writeSparseText } from '../src/io/sparse-text.js';
import { writeNpy } from '../src/io/npy.js';
import type { CsrMatrix } from '../src/data/types.js';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'xmc-data-load-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DATA = resolve(__dirname, '..', '..', 'shared', 'data');
const labels = csrFromRows(6, [[0, 5], [2], []]);
const sparse = csrFromRows(4, [[1], [0, 3], [2]], [[0.5], [1, 2], [3]]);

const plain = (m: CsrMatrix) => ({ rows: m.rows, cols: m.cols, indptr: [...m.indptr], indices: [...m.indices], values: m.values && [...m.values] });

describe('data - loading datasets', () => {
  it('loads one XC text file given as a path or as {xc}', async () => {
    const path = join(dir, 'd.txt');
    await writeXcText(path, { features: sparse, labels, source: '' });
    for (const spec of [path, { xc: path }]) {
      const ds = await loadDataset(spec);
      expect(plain(ds.features as CsrMatrix)).toEqual(plain(sparse));
      expect(plain(ds.labels)).toEqual(plain(labels));
      expect(ds.source).toBe(path);
    }
  });

  it('loads sparse-text features or .npy features with a sparse-text label file', async () => {
    const x = join(dir, 'X.txt');
    const y = join(dir, 'Y.txt');
    const npy = join(dir, 'X.npy');
    await writeSparseText(x, sparse);
    await writeSparseText(y, labels);
    const dense = Float32Array.from([1, 2, 3, 4, 5, 6]);
    await writeNpy(npy, { kind: 'dense', rows: 3, cols: 2, data: dense });
    const a = await loadDataset({ features: x, labels: y });
    expect(plain(a.features as CsrMatrix)).toEqual(plain(sparse));
    expect(plain(a.labels)).toEqual(plain(labels));
    const b = await loadDataset({ features: npy, labels: y });
    expect(b.features).toEqual({ kind: 'dense', rows: 3, cols: 2, data: dense });
    expect(plain(b.labels)).toEqual(plain(labels));
    // .npy is recognised by content, not by name
    const renamed = join(dir, 'features.bin');
    await writeNpy(renamed, { kind: 'dense', rows: 3, cols: 2, data: dense });
    expect((await readFeatureMatrix(renamed)).kind).toBe('dense');
  });

  it.skipIf(!existsSync(join(DATA, 'delicious_test.txt')))('loads a real data set with one row of labels per point', async () => {
    const ds = await loadDataset(join(DATA, 'delicious_test.txt'));
    expect(ds.features.rows).toBe(ds.labels.rows);
    expect(ds.labels.indptr.length).toBe(ds.labels.rows + 1);
    expect(ds.labels.indptr[ds.labels.rows]).toBe(ds.labels.indices.length);
  });
});
