import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readXcHeader, readXcRows, readXcText, scanXcText, writeXcText } from '../src/io/xc-text.js';
import { csrFromRows } from '../src/data/csr.js';
import type { CsrMatrix, Dataset } from '../src/data/types.js';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'xmc-io-xc-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DATA = resolve(__dirname, '..', '..', 'shared', 'data');

function rowsOf(m: CsrMatrix): { ids: number[]; values: number[] | null }[] {
  const out = [];
  for (let r = 0; r < m.rows; r++) {
    const a = m.indptr[r];
    const b = m.indptr[r + 1];
    out.push({ ids: Array.from(m.indices.subarray(a, b)), values: m.values ? Array.from(m.values.subarray(a, b)) : null });
  }
  return out;
}

/** A random dataset with empty rows, unsorted input and non-trivial float values. */
function randomDataset(seed: number, points: number, features: number, labels: number): Dataset {
  const rand = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed / 2 ** 32; };
  const fRows: number[][] = [];
  const fVals: number[][] = [];
  const lRows: number[][] = [];
  for (let i = 0; i < points; i++) {
    const f = new Set<number>();
    const nf = rand() < 0.1 ? 0 : 1 + Math.floor(rand() * 10);
    while (f.size < nf) f.add(Math.floor(rand() * features));
    fRows.push([...f]);
    fVals.push([...f].map(() => Math.fround((rand() - 0.3) * 10 ** Math.floor(rand() * 8 - 4))));
    const l = new Set<number>();
    const nl = rand() < 0.15 ? 0 : 1 + Math.floor(rand() * 4);
    while (l.size < nl) l.add(Math.floor(rand() * labels));
    lRows.push([...l]);
  }
  return { features: csrFromRows(features, fRows, fVals), labels: csrFromRows(labels, lRows), source: 'random' };
}

describe('io - XC text format', () => {
  it('round-trips a dataset (write then read), including points without labels or features', async () => {
    const ds = randomDataset(1, 300, 50, 20);
    const path = join(dir, 'round.txt');
    await writeXcText(path, ds);
    const back = await readXcText(path);
    expect(back.features.rows).toBe(300);
    expect(back.features.cols).toBe(50);
    expect(back.labels.cols).toBe(20);
    expect(rowsOf(back.features as CsrMatrix)).toEqual(rowsOf(ds.features as CsrMatrix));
    expect(rowsOf(back.labels)).toEqual(rowsOf(ds.labels));
    // the writer leaves no temporary file behind
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('writes dense features as their nonzero entries', async () => {
    const path = join(dir, 'dense.txt');
    await writeXcText(path, {
      features: { kind: 'dense', rows: 2, cols: 3, data: Float32Array.from([0, 1.5, 0, 2, 0, 0]) },
      labels: csrFromRows(4, [[3], []]),
      source: 'dense',
    });
    expect(readFileSync(path, 'utf8')).toBe('2 3 4\n3 1:1.5\n 0:2\n');
  });

  it('reads the format variants: no labels, no features, blanks, CRLF, unsorted ids, repeated labels', async () => {
    const path = join(dir, 'variants.txt');
    writeFileSync(path, '6 10 5\r\n 3:1 1:2\r\n0,4\r\n2:0.5\r\n4,1,4 9:1e-1  0:3\t5:-2\r\n\r\n   \r\n\r\n');
    const ds = await readXcText(path);
    expect(rowsOf(ds.labels).map((r) => r.ids)).toEqual([[], [0, 4], [], [1, 4], [], []]);
    expect(rowsOf(ds.features as CsrMatrix)).toEqual([
      { ids: [1, 3], values: [2, 1] },
      { ids: [], values: [] },
      { ids: [2], values: [0.5] },
      { ids: [0, 5, 9], values: [3, -2, Math.fround(0.1)] },
      { ids: [], values: [] },
      { ids: [], values: [] },
    ]);
  });

  it('streams rows through the async iterator and the callback with the same content', async () => {
    const ds = randomDataset(2, 120, 30, 9);
    const path = join(dir, 'stream.txt');
    await writeXcText(path, ds);
    expect(await readXcHeader(path)).toEqual({ points: 120, features: 30, labels: 9 });
    const fromIterator = [];
    for await (const row of readXcRows(path)) fromIterator.push({ labels: Array.from(row.labels), ids: Array.from(row.featureIds), index: row.index, line: row.lineNumber });
    const fromScan: typeof fromIterator = [];
    await scanXcText(path, { row: (r) => fromScan.push({ labels: Array.from(r.labels), ids: Array.from(r.featureIds), index: r.index, line: r.lineNumber }) });
    expect(fromIterator).toEqual(fromScan);
    expect(fromIterator.map((r) => r.labels)).toEqual(rowsOf(ds.labels).map((r) => r.ids));
    expect(fromIterator[5]).toMatchObject({ index: 5, line: 7 });
  });

  it.skipIf(!existsSync(join(DATA, 'bibtex_train.txt')))('reads the real bibtex file like a plain string-splitting reader', async () => {
    const path = join(DATA, 'bibtex_train.txt');
    const ds = await readXcText(path);
    // Independent reference: split the text with String.split.
    const lines = readFileSync(path, 'utf8').split('\n').filter((l, i) => i === 0 || l.trim() !== '');
    const [n, f, l] = lines[0].split(' ').map(Number);
    expect([ds.features.rows, ds.features.cols, ds.labels.cols]).toEqual([n, f, l]);
    expect([n, f, l]).toEqual([4880, 1836, 159]);
    let labelEntries = 0;
    let featureEntries = 0;
    for (const line of lines.slice(1)) {
      const tokens = line.split(' ').filter((t) => t !== '');
      if (line[0] !== ' ' && !tokens[0].includes(':')) labelEntries += new Set(tokens.shift()!.split(',')).size;
      featureEntries += tokens.length;
    }
    expect(ds.labels.indptr[ds.labels.rows]).toBe(labelEntries);
    expect(ds.features.kind === 'csr' && ds.features.indptr[ds.features.rows]).toBe(featureEntries);
    const r7 = lines[8].split(' ');
    const first = ds.features.kind === 'csr' ? ds.features.indices[ds.features.indptr[7]] : -1;
    expect(first).toBe(Math.min(...r7.filter((t) => t.includes(':')).map((t) => Number(t.split(':')[0]))));
  });
});
