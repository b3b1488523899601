import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { command } from '../src/cli/commands/stats.js';
import { main } from '../src/cli/main.js';
import { quantile } from '../src/data/stats.js';
import { writeNpy } from '../src/io/npy.js';

const ROOT = resolve(__dirname, '..');
const DATA = resolve(ROOT, '..', 'shared', 'data');
const BIBTEX = join(DATA, 'bibtex_train.txt');
const BIBTEX_TEST = join(DATA, 'bibtex_test.txt');

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'xmc-stats-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a function with process.stdout/stderr captured. */
async function capture(run: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { out += String(s); return true; });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { err += String(s); return true; });
  try {
    const code = await run();
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

/** Reference figures of an XC file by plain string splitting. */
function reference(path: string) {
  const lines = readFileSync(path, 'utf8').split('\n');
  const [points, features, labels] = lines[0].split(' ').map(Number);
  const perLabel = new Array(labels).fill(0);
  let labelEntries = 0;
  let featureEntries = 0;
  for (const line of lines.slice(1, points + 1)) {
    const tokens = line.split(' ').filter((t) => t !== '');
    if (line[0] !== ' ' && tokens.length && !tokens[0].includes(':')) {
      for (const l of new Set(tokens.shift()!.split(','))) { perLabel[Number(l)]++; labelEntries++; }
    }
    featureEntries += tokens.length;
  }
  return { points, features, labels, perLabel, labelEntries, featureEntries };
}

describe('stats - xmc stats command', () => {
  it('quantiles interpolate linearly like numpy', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([10, 20, 30, 40, 50], 0.9)).toBe(46);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.5)).toBe(0);
  });

  it.skipIf(!existsSync(BIBTEX))('reports bibtex shape and label statistics (text and JSON)', async () => {
    const ref = reference(BIBTEX);
    const text = await capture(() => command.run([BIBTEX]));
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/points\s+4,880\n/);
    expect(text.out).toMatch(/features\s+1,836\n/);
    expect(text.out).toMatch(/labels\s+159\n/);
    expect(text.out).toContain(`labels per point    ${(ref.labelEntries / ref.points).toFixed(2)} mean`);
    const json = JSON.parse((await capture(() => command.run(['--json', BIBTEX]))).out);
    const s = json.files[0];
    expect([s.format, s.points, s.features, s.labels]).toEqual(['xc-text', ref.points, ref.features, ref.labels]);
    expect(s.labelStats.labelsPerPoint.mean).toBeCloseTo(ref.labelEntries / ref.points, 12);
    expect(s.featuresPerPoint.mean).toBeCloseTo(ref.featureEntries / ref.points, 12);
    const sorted = ref.perLabel.slice().sort((a, b) => a - b);
    expect(s.labelStats.labelFrequencyQuantiles).toEqual({
      min: sorted[0], p25: quantile(sorted, 0.25), p50: quantile(sorted, 0.5), p75: quantile(sorted, 0.75),
      p90: quantile(sorted, 0.9), p99: quantile(sorted, 0.99), max: sorted[sorted.length - 1],
    });
    expect(s.labelStats.pointsPerLabel.labelsWithoutPoints).toBe(ref.perLabel.filter((c) => c === 0).length);
    expect(json.combined).toBeNull();
  });

  it.skipIf(!existsSync(BIBTEX_TEST))('combines train and test: bibtex has 2.40 labels per point overall', async () => {
    const a = reference(BIBTEX);
    const b = reference(BIBTEX_TEST);
    const { out } = await capture(() => command.run([BIBTEX, BIBTEX_TEST]));
    const overall = (a.labelEntries + b.labelEntries) / (a.points + b.points);
    expect(overall.toFixed(2)).toBe('2.40');
    expect(out).toMatch(/all 2 files \(XC text\)\n  points\s+7,395\n/);
    expect(out).toContain(`labels per point    ${overall.toFixed(2)} mean`);
  });

  it('reports label files, labels with no point, and .npy files', async () => {
    const labels = join(dir, 'Y.txt');
    writeFileSync(labels, '4 5\n0:1 1:1\n\n1:1\n1:1 3:1\n');
    const npy = join(dir, 'X.npy');
    await writeNpy(npy, { kind: 'dense', rows: 2, cols: 3, data: Float32Array.from([0, 1, 2, 0, 0, 3]) }, 'f2');
    const json = JSON.parse((await capture(() => command.run(['--json', labels, npy]))).out);
    const [y, x] = json.files;
    expect([y.format, y.points, y.labels, y.features]).toEqual(['sparse-text-labels', 4, 5, null]);
    expect(y.labelStats.labelsPerPoint).toEqual({ mean: 5 / 4, min: 0, max: 2 });
    expect(y.labelStats.pointsWithoutLabels).toBe(1);
    expect(y.labelStats.pointsPerLabel).toEqual({ mean: 1, min: 0, max: 3, labelsWithoutPoints: 2 });
    expect(y.labelStats.labelFrequencyQuantiles).toMatchObject({ min: 0, p50: 1, max: 3 });
    expect([x.format, x.points, x.features, x.dtype, x.featuresPerPoint]).toEqual(['npy', 2, 3, 'float16', { mean: 1.5, min: 1, max: 2 }]);
    const asFeatures = JSON.parse((await capture(() => command.run(['--json', '--sparse-as', 'features', labels]))).out).files[0];
    expect([asFeatures.format, asFeatures.features, asFeatures.featuresPerPoint.mean]).toEqual(['sparse-text-features', 5, 1.25]);
  });

  it('exits 2 with a one-line message naming the file and line for bad data', async () => {
    const bad = join(dir, 'bad.txt');
    writeFileSync(bad, '2 3 4\n0 1:1\n1 5:1\n');
    const r = await capture(() => main(['stats', bad]));
    expect(r.code).toBe(2);
    expect(r.err).toBe(`xmc stats: ${bad}, line 3: feature id 5 out of range: the header says 3 features (ids 0..2)\n`);
    const none = await capture(() => main(['stats']));
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/give at least one data file/);
  });

  const built = existsSync(join(ROOT, 'dist', 'src', 'cli', 'commands', 'stats.js'));
  it.skipIf(!built || !existsSync(BIBTEX))('runs end to end as `node bin/xmc.js stats` (needs `npm run build:ts`)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'xmc.js'), 'stats', '--json', BIBTEX], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout).files[0];
    expect([s.points, s.features, s.labels]).toEqual([4880, 1836, 159]);
  });
});
