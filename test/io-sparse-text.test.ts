import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSparseText, readSparseTextHeader, writeSparseText } from '../src/io/sparse-text.js';
import { readLabelMatrix } from '../src/io/labels.js';
import { writeXcText } from '../src/io/xc-text.js';
import { csrFromRows } from '../src/data/csr.js';
import type { CsrMatrix } from '../src/data/types.js';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'xmc-io-sparse-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const plain = (m: CsrMatrix) => ({
  rows: m.rows, cols: m.cols, indptr: Array.from(m.indptr), indices: Array.from(m.indices), values: m.values ? Array.from(m.values) : null,
});

describe('io - sparse text format', () => {
  it('round-trips a valued matrix with empty rows', async () => {
    const m = csrFromRows(8, [[0, 7], [], [3], [], [1, 2, 5]], [[0.25, -3], [], [1e-7], [], [1, 2, 3.5]]);
    const path = join(dir, 'x.txt');
    await writeSparseText(path, m);
    expect(readFileSync(path, 'utf8')).toBe('5 8\n0:0.25 7:-3\n\n3:1e-7\n\n1:1 2:2 5:3.5\n');
    expect(plain(await readSparseText(path))).toEqual(plain(m));
    expect(await readSparseTextHeader(path)).toEqual({ rows: 5, cols: 8 });
  });

  it('round-trips a binary label matrix; a label file may use bare ids, repeats are merged', async () => {
    const m = csrFromRows(6, [[5, 0], [], [2]]);
    const path = join(dir, 'y.txt');
    await writeSparseText(path, m);
    expect(readFileSync(path, 'utf8')).toBe('3 6\n0:1 5:1\n\n2:1\n');
    expect(plain(await readSparseText(path, { binary: true }))).toEqual(plain(m));
    writeFileSync(path, '3 6\r\n5 0:1 5:1\r\n\r\n2\r\n\r\n');
    expect(plain(await readSparseText(path, { binary: true }))).toEqual(plain(m));
  });

  it('reads labels from either a sparse label file or an XC text file', async () => {
    const labels = csrFromRows(4, [[1, 3], [], [0]]);
    const sparse = join(dir, 'labels.txt');
    const xc = join(dir, 'data.txt');
    await writeSparseText(sparse, labels);
    await writeXcText(xc, { features: csrFromRows(2, [[0], [1], []], [[1], [2], []]), labels, source: 't' });
    expect(plain(await readLabelMatrix(sparse))).toEqual(plain(labels));
    expect(plain(await readLabelMatrix(xc))).toEqual(plain(labels));
  });
});
