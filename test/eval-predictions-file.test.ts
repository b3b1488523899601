import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataFormatError } from '../src/errors.js';
import { formatScore, readPredictions, writePredictions } from '../src/io/predictions.js';
import { createTopK, topKOfScores, type TopK } from '../src/topk/topk.js';

const dir = mkdtempSync(join(tmpdir(), 'xmc-predictions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

async function readAll(path: string, options = {}): Promise<TopK[]> {
  const out: TopK[] = [];
  for await (const block of readPredictions(path, options)) out.push(block);
  return out;
}

async function readError(path: string, options = {}): Promise<DataFormatError> {
  try {
    await readAll(path, options);
  } catch (err) {
    expect(err).toBeInstanceOf(DataFormatError);
    return err as DataFormatError;
  }
  throw new Error(`expected ${path} to fail`);
}

describe('eval - prediction file reader', () => {
  it('reads lines as ranked TopK rows; an empty line is a point with no predictions', async () => {
    const p = file('basic.txt', '3:0.9 1:0.5\n\n0:2 4:1 2:-1\n');
    const [block, ...rest] = await readAll(p);
    expect(rest).toHaveLength(0);
    expect(block.rows).toBe(3);
    expect(block.k).toBe(3); // longest line
    expect(Array.from(block.labels)).toEqual([3, 1, -1, -1, -1, -1, 0, 4, 2]);
    expect(Array.from(block.scores)).toEqual([Math.fround(0.9), 0.5, -Infinity, -Infinity, -Infinity, -Infinity, 2, 1, -1]);
  });

  it('keeps the best k of a line, ranking lines that are out of order (ties by smaller label)', async () => {
    const p = file('unsorted.txt', '5:0.1 7:0.8 2:0.8 9:0.3\r\n1:1');
    const [block] = await readAll(p, { k: 3 });
    expect(block.k).toBe(3);
    expect(Array.from(block.labels)).toEqual([2, 7, 9, 1, -1, -1]);
  });

  it('ranks a long shuffled line (beyond the initial buffers) and finds duplicates in long lines', async () => {
    const n = 600;
    const entries = Array.from({ length: n }, (_, i) => ({ label: i, score: Math.floor(i / 3) })); // ties in threes
    const shuffled = [...entries].sort((a, b) => ((a.label * 7919) % n) - ((b.label * 7919) % n));
    const p = file('long.txt', shuffled.map((e) => `${e.label}:${e.score}`).join(' ') + '\n');
    const [block] = await readAll(p);
    expect(block.k).toBe(n);
    // best first: highest score, ties by smaller label
    const expected = [...entries].sort((a, b) => b.score - a.score || a.label - b.label).map((e) => e.label);
    expect(Array.from(block.labels)).toEqual(expected);
    const dup = file('longdup.txt', '\n' + Array.from({ length: 40 }, (_, i) => `${i === 39 ? 17 : i}:1`).join(' ') + '\n');
    expect((await readError(dup)).message).toMatch(/line 2: label 17 appears more than once/);
  });

  it('yields blocks of at most blockRows points, in order', async () => {
    const lines = Array.from({ length: 10 }, (_, i) => `${i}:1`).join('\n') + '\n';
    const blocks = await readAll(file('blocks.txt', lines), { blockRows: 4, k: 2 });
    expect(blocks.map((b) => b.rows)).toEqual([4, 4, 2]);
    expect(blocks.flatMap((b) => Array.from({ length: b.rows }, (_, r) => b.labels[r * b.k]))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('an empty file has no points; a last line without newline counts', async () => {
    expect(await readAll(file('empty.txt', ''))).toHaveLength(0);
    const [b] = await readAll(file('nonl.txt', '1:1\n2:1'));
    expect(b.rows).toBe(2);
  });

  it('names file, line and problem: malformed token, negative label, NaN score, label range, duplicates', async () => {
    const bad = (name: string, text: string) => file(name, text);
    let e = await readError(bad('m1.txt', '1:1\n2:0.5 oops\n'));
    expect(e.location).toEqual({ file: join(dir, 'm1.txt'), line: 2 });
    expect(e.message).toMatch(/m1\.txt, line 2: malformed token 'oops': expected label:score/);
    e = await readError(bad('m2.txt', '\n\n1.5:3\n'));
    expect(e.message).toMatch(/line 3: malformed token '1.5:3': label '1.5' is not a non-negative integer/);
    e = await readError(bad('m3.txt', '4:x\n'));
    expect(e.message).toMatch(/line 1: malformed token '4:x': score 'x' is not a number/);
    e = await readError(bad('m4.txt', '4:\n'));
    expect(e.message).toMatch(/missing score/);
    e = await readError(bad('neg.txt', '1:1\n-3:0.2\n'));
    expect(e.message).toMatch(/neg\.txt, line 2: negative label -3/);
    e = await readError(bad('nan.txt', '1:1 2:NaN\n'));
    expect(e.message).toMatch(/nan\.txt, line 1: NaN score in '2:NaN'/);
    e = await readError(bad('range.txt', '1:1\n\n5:1\n'), { numLabels: 5 });
    expect(e.message).toMatch(/range\.txt, line 3: label 5 in '5:1' is >= the number of labels 5/);
    e = await readError(bad('dup.txt', '1:1 1:0.5\n'));
    expect(e.message).toMatch(/line 1: label 1 appears more than once/);
  });
});

describe('eval - prediction file writer', () => {
  it('round-trips TopK blocks bit for bit, pads dropped, empty rows as empty lines', async () => {
    const scores = new Float32Array([0.1, 0.7, 1e-8, -3.25, 123456.789, Math.PI, 0.5, 0.5]);
    const t = topKOfScores(scores, 2, 4, 3);
    const empty = createTopK(1, 3);
    const p = join(dir, 'out.txt');
    expect(await writePredictions(p, [t, empty])).toBe(3);
    const text = readFileSync(p, 'utf8');
    expect(text.split('\n')).toEqual(['1:0.7 0:0.1 2:1e-8', '0:123456.79 1:3.1415927 2:0.5', '', '']);
    const [back] = await readAll(p, { k: 3 });
    expect(Array.from(back.labels)).toEqual([...Array.from(t.labels), -1, -1, -1]);
    expect(Array.from(back.scores)).toEqual([...Array.from(t.scores), -Infinity, -Infinity, -Infinity]);
  });

  it('formatScore gives the shortest text that reads back as the same float32', () => {
    for (const v of [0, 1, -1, 0.1, 1 / 3, 1e-30, 3.4e38, 16777217, -0.000123456]) {
      const f = Math.fround(v);
      const text = formatScore(f);
      expect(Math.fround(Number(text))).toBe(f);
      expect(text.replace(/[-.]|e.*$/g, '').replace(/^0+/, '').length).toBeLessThanOrEqual(9);
    }
    expect(formatScore(Math.fround(0.1))).toBe('0.1');
  });

  it('is atomic: a failed write leaves the old file and no temporary file', async () => {
    const p = file('keep.txt', 'old\n');
    const bad = createTopK(1, 1);
    bad.labels[0] = 0;
    bad.scores[0] = NaN;
    await expect(writePredictions(p, bad)).rejects.toThrow(/NaN score for label 0 of point 0/);
    expect(readFileSync(p, 'utf8')).toBe('old\n');
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});
