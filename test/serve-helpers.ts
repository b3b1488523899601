/**
 * Fixtures of the serving tests: a 2-shard dense-ffi model trained for one
 * epoch on bibtex (about a second on CPU), the test set's first rows as
 * request inputs, and `xmc predict` (the CLI, from dist/) on the same rows
 * for the answers to compare with.
 */
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

/** Scores as float32 (the service answers float32 values as JSON numbers; the file holds round-tripping decimals). */
export const f32 = (xs: number[]): number[] => xs.map((x) => Math.fround(x));
