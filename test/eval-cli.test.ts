import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { command } from '../src/cli/commands/eval.js';
import { main } from '../src/cli/main.js';
import { DataFormatError, OptionError } from '../src/errors.js';
import { readLabelMatrix } from '../src/io/labels.js';
import { writePredictions } from '../src/io/predictions.js';
import { inversePropensities, labelCounts, PROPENSITY_PRESETS } from '../src/metrics/propensity.js';
import { createTopK } from '../src/topk/topk.js';

const dir = mkdtempSync(join(tmpdir(), 'xmc-eval-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => { vi.restoreAllMocks(); });

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** Runs `xmc eval` with args, returning what it printed. */
async function run(args: string[]): Promise<string> {
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  });
  const code = await command.run(args);
  vi.restoreAllMocks();
  expect(code).toBe(0);
  return out;
}

// The hand example of test/metrics-evaluator.test.ts, as files (XC text format, 6 labels):
//   point 0: y = {0, 2}     predicted 2 1 0 3 4
//   point 1: y = {3, 4, 5}  predicted 5 0 2 4
//   point 2: y = {}         predicted 0 1 2
//   point 3: y = {3}        predicted 1
const labels = file('test.txt', '4 2 6\n0,2 0:1\n3,4,5 1:1\n 0:1 1:1\n3 1:0.5\n');
const predictions = file('pred.txt', '2:0.9 1:0.8 0:0.7 3:0.6 4:0.5\n5:3 0:2 2:1 4:0\n0:1 1:0.5 2:0.25\n1:0.1\n');
// 5 training points; counts n_l per label 0..5 = 3, 0, 1, 2, 1, 0
const train = file('train.txt', '5 2 6\n0,3 0:1\n0 1:1\n0,2,3 0:1\n4 1:1\n 0:1\n');

const d = (j: number) => 1 / Math.log2(j + 1);

describe('eval - xmc eval command', () => {
  it('prints P, nDCG, R, Cov in % and a note that PSP needs --train-labels', async () => {
    const out = await run(['--predictions', predictions, '--labels', labels]);
    expect(out).toMatch(/4 points \(1 without labels\), 6 labels \(5 present in the labels file\)/);
    expect(out).toMatch(/values in %\s+@1\s+@3\s+@5/);
    expect(out).toMatch(/^P\s+50\.00\s+25\.00\s+20\.00$/m);          // 2/4, 3/12, 4/20
    expect(out).toMatch(/^nDCG\s+50\.00\s+34\.72\s+/m);              // (0.919721 + 0.469279) / 4
    expect(out).toMatch(/^R\s+20\.83\s+33\.33\s+41\.67$/m);          // 5/24, 1/3, 5/12
    expect(out).toMatch(/^Cov\s+40\.00\s+60\.00\s+80\.00$/m);        // 2/5, 3/5, 4/5
    expect(out).not.toMatch(/^PSP/m);
    expect(out).toMatch(/note: PSP@k and PSnDCG@k omitted: they need training label counts \(--train-labels FILE\)/);
  });

  it('--json gives fractions, PSP/PSnDCG from --train-labels with the chosen propensity model', async () => {
    const out = await run(['--predictions', predictions, '--labels', labels, '--train-labels', train,
      '--propensity', 'wikipedia', '--k', '3,1', '--json']);
    const j = JSON.parse(out);
    expect(j.unit).toBe('fraction');
    expect(j.k).toEqual([1, 3]);
    expect(j.points).toBe(4);
    expect(j.propensity).toEqual({ A: 0.5, B: 0.4, trainPoints: 5 });
    expect(j.metrics['P@1']).toBeCloseTo(0.5, 12);
    expect(j.metrics['nDCG@3']).toBeCloseTo((1.5 / (1 + d(2)) + 1 / (1 + d(2) + d(3))) / 4, 12);
    // w(n) = 1 + (ln 5 - 1)(1.4)^0.5 (n + 0.4)^-0.5; n = 3, 0, 1, 2, 1, 0 for labels 0..5
    const w = (n: number) => 1 + (Math.log(5) - 1) * Math.sqrt(1.4) / Math.sqrt(n + 0.4);
    const w0 = w(3), w2 = w(1), w3 = w(2), w4 = w(1), w5 = w(0);
    // PSP@1: hits at rank 1: label 2 (point 0), label 5 (point 1); best: max w of each true set
    expect(j.metrics['PSP@1']).toBeCloseTo((w2 + w5) / (Math.max(w0, w2) + Math.max(w3, w4, w5) + w3), 12);
    // PSP@3: + label 0 at rank 3 of point 0; best: all of {0,2}, all of {3,4,5}, {3}
    expect(j.metrics['PSP@3']).toBeCloseTo((w2 + w0 + w5) / (w0 + w2 + w3 + w4 + w5 + w3), 12);
    expect(j.metrics['PSnDCG@1']).toBeCloseTo(j.metrics['PSP@1'], 12); // at k = 1 both are the same ratio
    expect(j.metrics['Cov@3']).toBeCloseTo(3 / 5, 12);
    expect(j.notes).toEqual([]);
  });

  it('table with --train-labels shows PSP and PSnDCG rows', async () => {
    const out = await run(['--predictions', predictions, '--labels', labels, '--train-labels', train]);
    expect(out).toMatch(/propensity:\s+A=0\.55 B=1\.5, counts from .*train\.txt \(N=5\)/);
    expect(out).toMatch(/^PSP\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d$/m);
    expect(out).toMatch(/^PSnDCG\s+\d+\.\d\d/m);
    expect(out).not.toMatch(/note:/);
  });

  it('fails naming both files when the numbers of points differ', async () => {
    const fewer = file('fewer.txt', '1:1\n2:1\n3:1\n');
    await expect(command.run(['--predictions', fewer, '--labels', labels])).rejects.toThrow(DataFormatError);
    await expect(command.run(['--predictions', fewer, '--labels', labels]))
      .rejects.toThrow(`${fewer}: has 3 points (lines) but ${labels} has 4`);
    const more = file('more.txt', '1:1\n2:1\n3:1\n\n4:1\n');
    await expect(command.run(['--predictions', more, '--labels', labels]))
      .rejects.toThrow(`${more}, line 5: more points than the 4 of ${labels}`);
  });

  it('fails naming the file and line of a predicted label id >= the number of labels', async () => {
    const bad = file('badlabel.txt', '1:1\n2:1 6:0.5\n\n\n');
    await expect(command.run(['--predictions', bad, '--labels', labels]))
      .rejects.toThrow(`${bad}, line 2: label 6 in '6:0.5' is >= the number of labels 6`);
  });

  it('rejects bad options with OptionError', async () => {
    await expect(command.run(['--labels', labels])).rejects.toThrow(/option --predictions: is required/);
    await expect(command.run(['--predictions', join(dir, 'nope.txt'), '--labels', labels]))
      .rejects.toThrow(/option --predictions: cannot read .*nope\.txt.*ENOENT/);
    await expect(command.run(['--predictions', predictions, '--labels', labels, '--k', '1,0']))
      .rejects.toThrow(OptionError);
    await expect(command.run(['--predictions', predictions, '--labels', labels, '--propensity', 'amazon']))
      .rejects.toThrow(/--propensity: needs --train-labels/);
    await expect(command.run(['--predictions', predictions, '--labels', labels, '--train-labels', train, '--propensity', 'x']))
      .rejects.toThrow(/--propensity: 'x' is neither a preset/);
    const otherL = file('train7.txt', '1 2 7\n6 0:1\n');
    await expect(command.run(['--predictions', predictions, '--labels', labels, '--train-labels', otherL]))
      .rejects.toThrow(/--train-labels: .*train7\.txt has 7 labels but .*test\.txt has 6/);
  });

  it('through the xmc dispatcher: errors print one line on stderr and exit 2', async () => {
    let err = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      err += String(chunk);
      return true;
    });
    const code = await main(['eval', '--predictions', file('short.txt', '1:1\n'), '--labels', labels]);
    expect(code).toBe(2);
    expect(err).toMatch(/^xmc eval: .*short\.txt: has 1 points \(lines\) but .*test\.txt has 4\n$/);
  });
});

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = join(repoRoot, '..', 'shared', 'data');
const haveBibtex = existsSync(join(dataDir, 'bibtex_train.txt')) && existsSync(join(dataDir, 'bibtex_test.txt'));
if (!haveBibtex) console.warn(`eval-cli: ${dataDir}/bibtex_{train,test}.txt not found, skipping the bibtex test`);

describe('eval - xmc eval on bibtex', () => {
  it.skipIf(!haveBibtex)('scores a popularity baseline as counted directly from the label files', async () => {
    const trainPath = join(dataDir, 'bibtex_train.txt');
    const testPath = join(dataDir, 'bibtex_test.txt');
    const trainY = await readLabelMatrix(trainPath);
    const testY = await readLabelMatrix(testPath);
    // Baseline: every test point gets the 5 most frequent training labels (ties by smaller id).
    const counts = labelCounts(trainY);
    const popular = Array.from(counts.keys()).sort((a, b) => counts[b] - counts[a] || a - b).slice(0, 5);
    const t = createTopK(testY.rows, 5);
    for (let r = 0; r < testY.rows; r++) popular.forEach((l, j) => { t.labels[r * 5 + j] = l; t.scores[r * 5 + j] = 5 - j; });
    const pred = join(dir, 'bibtex-popular.txt');
    expect(await writePredictions(pred, t)).toBe(testY.rows);

    const j = JSON.parse(await run(['--predictions', pred, '--labels', testPath, '--train-labels', trainPath, '--json']));
    // Direct counts: P@1 = share of test points having the most popular label; Cov@k from label presence.
    const has = (r: number, l: number) => Array.from(testY.indices.subarray(testY.indptr[r], testY.indptr[r + 1])).includes(l);
    let withTop = 0, hits5 = 0;
    for (let r = 0; r < testY.rows; r++) {
      if (has(r, popular[0])) withTop++;
      for (const l of popular) if (has(r, l)) hits5++;
    }
    const present = new Set(testY.indices);
    expect(j.points).toBe(testY.rows);
    expect(j.metrics['P@1']).toBeCloseTo(withTop / testY.rows, 12);
    expect(j.metrics['P@5']).toBeCloseTo(hits5 / (5 * testY.rows), 12);
    expect(j.metrics['Cov@5']).toBeCloseTo(popular.filter((l) => present.has(l)).length / present.size, 12);
    // PSP@1 = sum over points having the top label of its w / sum over points of their largest w.
    const w = inversePropensities(trainY, PROPENSITY_PRESETS.default);
    let best = 0;
    for (let r = 0; r < testY.rows; r++) {
      let m = 0;
      for (let e = testY.indptr[r]; e < testY.indptr[r + 1]; e++) m = Math.max(m, w[testY.indices[e]]);
      best += m;
    }
    expect(j.metrics['PSP@1']).toBeCloseTo((withTop * w[popular[0]]) / best, 12);
  });
});
