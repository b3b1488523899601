/**
 * Fixtures of the serving tests: a 2-shard dense-ffi model trained for one
 * epoch on bibtex (about a second on CPU), the test set's first rows as
 * request inputs, and `xmc predict` (the CLI, from dist/) on the same rows
 * for the answers to compare with.
 */
import { expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset } from '../src/data/load.js';
import type { CsrMatrix } from '../src/data/types.js';
import { createBackend } from '../src/native/backend.js';
import { runTraining } from '../src/train/run.js';
import { root } from './dist-helpers.js';

export const dataDir = join(root, '..', 'shared', 'data');
export const haveBibtex = existsSync(join(dataDir, 'bibtex_train.txt')) && existsSync(join(dataDir, 'bibtex_test.txt'));

/** Trains the fixture model into `out` (2 shards, H 256, 1 epoch, CPU). */
export async function trainBibtex(out: string, shards = 2): Promise<void> {
  const backend = createBackend('cpu', { threads: 2 });
  const r = await runTraining({
    train: join(dataDir, 'bibtex_train.txt'), test: join(dataDir, 'bibtex_test.txt'), out, backend,
    options: { setup: 'dense-ffi', intermediate: 256, fanIn: 16, shards, epochs: 1, seed: 3 },
    reporter: { message() {}, step() {}, epochEnd() {} },
  });
  r.model.dispose();
}

/** The test set's features (CSR, raw values as in the file). */
export async function bibtexTest(): Promise<CsrMatrix> {
  const d = await loadDataset(join(dataDir, 'bibtex_test.txt'));
  return d.features as CsrMatrix;
}

/** Row r of a CSR matrix as a sparse request input. */
export function sparseInput(m: CsrMatrix, r: number): { indices: number[]; values: number[] } {
  const s = m.indptr[r];
  const e = m.indptr[r + 1];
  return { indices: Array.from(m.indices.subarray(s, e)), values: Array.from(m.values!.subarray(s, e)) };
}

/** Row r densified (raw values). */
export function denseInput(m: CsrMatrix, r: number): number[] {
  const row = new Array<number>(m.cols).fill(0);
  for (let e = m.indptr[r]; e < m.indptr[r + 1]; e++) row[m.indices[e]] = m.values![e];
  return row;
}

export interface Predicted {
  labels: number[];
  scores: number[];
}

/** `xmc predict` through the CLI; one {labels, scores} per point. */
export function xmcPredict(args: string[]): Predicted[] {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'xmc.js'), 'predict', '--device', 'cpu', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`xmc predict failed: ${r.stderr}`);
  const out = args[args.indexOf('--out') + 1];
  return readFileSync(out, 'utf8').split('\n').filter((l, i, a) => i < a.length - 1 || l !== '').map((line) => {
    const pairs = line.trim() === '' ? [] : line.trim().split(' ').map((p) => p.split(':'));
    return { labels: pairs.map((p) => Number(p[0])), scores: pairs.map((p) => Number(p[1])) };
  });
}

/**
 * The service's answer for a row against `xmc predict`'s line: scores equal to float32 rounding (relative
 * 1e-5: the service computes a row in a batch of other rows, and OpenBLAS may round a row differently with
 * the batch around it: on AMD Zen kernels it did, 2026-12-04), labels equal except where two scores are
 * that close (a swap of near ties; at the last place, with a label beyond `xmc predict`'s k).
 */
export function expectSamePrediction(got: Predicted, want: Predicted, what: string, tol = 1e-5): void {
  expect(got.labels.length, `${what}: labels`).toBe(want.labels.length);
  const near = (a: number, b: number) => Math.abs(a - b) <= tol * (1 + Math.abs(b));
  for (let i = 0; i < want.labels.length; i++) {
    expect(near(got.scores[i], want.scores[i]), `${what}: score ${i}: ${got.scores[i]} against ${want.scores[i]}`).toBe(true);
    if (got.labels[i] === want.labels[i]) continue;
    const j = want.labels.indexOf(got.labels[i]);
    const tie = j >= 0 ? near(want.scores[j], want.scores[i]) : i === want.labels.length - 1;
    expect(tie, `${what}: label ${i} is ${got.labels[i]}, xmc predict has ${want.labels[i]} (not a near tie)`).toBe(true);
  }
}
