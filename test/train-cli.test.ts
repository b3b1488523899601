import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/main.js';
import type { DenseMatrix } from '../src/data/types.js';
import { writeNpy } from '../src/io/npy.js';
import { syntheticDataset, writeXcText } from './train-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'xmc-train-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => { vi.restoreAllMocks(); });

const trainFile = join(dir, 'train.txt');
const testFile = join(dir, 'test.txt');
writeXcText(trainFile, syntheticDataset({ n: 200, features: 20, labels: 10, seed: 1, sparse: true }));
writeXcText(testFile, syntheticDataset({ n: 80, features: 20, labels: 10, seed: 2, sparse: true }));

/** Runs `xmc ARGS`, capturing what it prints. */
async function xmc(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const capture = (sink: 'out' | 'err') => (chunk: string | Uint8Array) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    if (sink === 'out') stdout += text; else stderr += text;
    return true;
  };
  vi.spyOn(process.stdout, 'write').mockImplementation(capture('out') as typeof process.stdout.write);
  vi.spyOn(process.stderr, 'write').mockImplementation(capture('err') as typeof process.stderr.write);
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    vi.restoreAllMocks();
  }
}

const common = ['--train', trainFile, '--test', testFile, '--threads', '2', '--device', 'cpu'];

describe('train - CUDA-only flags', () => {
  it('--tf32 and --bf16-gathers (train, predict) with --device cpu exit 2 naming the flag, before any work', async () => {
    const out = join(dir, 'gpu-flags');
    const trained = await xmc('train', ...common, '--out', out, '--tf32');
    expect(trained.code).toBe(2);
    expect(trained.stderr).toMatch(/--tf32.*applies to the CUDA backend, and --device cpu was given/);
    expect(existsSync(join(out, 'config.json'))).toBe(false);
    const bf16 = await xmc('train', ...common, '--out', out, '--bf16-gathers');
    expect(bf16.stderr).toMatch(/--bf16-gathers.*CUDA backend/);
    const predicted = await xmc('predict', '--run', out, '--data', testFile, '--out', join(dir, 'p.txt'), '--device', 'cpu', '--tf32');
    expect(predicted.code).toBe(2);
    expect(predicted.stderr).toMatch(/--tf32.*CUDA backend/);
  });
});

describe('train - xmc train, predict, eval end to end', () => {
  it('the predictions of the best epoch score in xmc eval what the run recorded for that epoch', async () => {
    const run = join(dir, 'run');
    const trained = await xmc('train', ...common, '--setup', 'dense-ffi', '--intermediate', '32', '--fan-in', '4',
      '--epochs', '4', '--batch-size', '16', '--lr', '0.005', '--rewire-interval', '7', '--out', run);
    expect(trained.stderr).toMatch(/model dense-ffi: 20 -> 32 \(ReLU\) -> FFI k=4 -> 10/);
    expect(trained.stderr).toMatch(/memory estimate: [\d.]+ KiB \(parameters/);
    expect(trained.stderr).toMatch(/memory: estimated [\d.]+ KiB, measured peak [\d.]+ [KM]iB/);
    expect(trained.stderr).toMatch(/epoch 4\/4 {2}loss [\d.e-]+ {2}lr 0.00500 {2}P@1 [\d.]+/);
    expect(trained.code).toBe(0);
    for (const f of ['config.json', 'metrics.jsonl', 'checkpoint-last.ckpt', 'checkpoint-best.ckpt', 'summary.json']) {
      expect(existsSync(join(run, f))).toBe(true);
    }
    const history = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(history.map((h) => h.epoch)).toEqual([1, 2, 3, 4]);
    expect(Object.keys(history[0])).toEqual(['epoch', 'step', 'lr', 'loss', 'P@1', 'P@3', 'P@5', 'nDCG@3', 'nDCG@5', 'PSP@3', 'PSP@5', 'seconds']);
    expect(history[3].step).toBe(4 * 13);
    const summary = JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8'));
    const best = history.find((h) => h.epoch === summary.bestEpoch);
    expect(best['P@3']).toBe(Math.max(...history.map((h) => h['P@3'])));
    expect(summary.memory.peakBytes).toBeGreaterThan(0);

    const preds = join(dir, 'preds.txt');
    const predicted = await xmc('predict', '--run', run, '--data', testFile, '--k', '5', '--out', preds, '--device', 'cpu');
    expect(predicted.code).toBe(0);
    const lines = readFileSync(preds, 'utf8').trim().split('\n');
    expect(lines.length).toBe(80);
    expect(lines[0].split(' ').length).toBe(5);

    const evaluated = await xmc('eval', '--predictions', preds, '--labels', testFile, '--train-labels', trainFile, '--json');
    expect(evaluated.code).toBe(0);
    const report = JSON.parse(evaluated.stdout);
    for (const name of ['P@1', 'P@3', 'P@5', 'nDCG@3', 'nDCG@5', 'PSP@3', 'PSP@5']) {
      expect(report.metrics[name]).toBeCloseTo(best[name], 12);
    }
    expect(best['P@1']).toBeGreaterThan(0.5); // the synthetic labels are learnable
  });

  it('runs with nothing but a data set and an output directory (defaults)', async () => {
    const run = join(dir, 'defaults');
    const r = await xmc('train', ...common, '--epochs', '1', '--out', run);
    expect(r.code).toBe(0);
    const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).config;
    expect(config.model).toMatchObject({ setup: 'dense-ffi', intermediate: 4096, fanIn: 32, shards: 1, seed: 0 });
    expect(config).toMatchObject({ batchSize: 32, lr: 1e-3, dropout: 0.1, loss: 'squared-hinge', rewireInterval: 1000, rewireFraction: 0.1, earlyStopPatience: 4, lrFactor: 0.5, lrPatience: 2, minLr: 1e-4 });
  });
});

describe('train - dense .npy features with separate label files', () => {
  it('trains on .npy embeddings + XC label files and predicts from --features', async () => {
    const trainSet = syntheticDataset({ n: 120, features: 16, labels: 8, seed: 4 });
    const testSet = syntheticDataset({ n: 40, features: 16, labels: 8, seed: 5 });
    const [trainNpy, testNpy, trainLabels, testLabels] = ['train.npy', 'test.npy', 'train-labels.txt', 'test-labels.txt'].map((f) => join(dir, f));
    await writeNpy(trainNpy, trainSet.features as DenseMatrix);
    await writeNpy(testNpy, testSet.features as DenseMatrix);
    writeXcText(trainLabels, trainSet);
    writeXcText(testLabels, testSet);
    const run = join(dir, 'npy-run');
    const trained = await xmc('train', '--train', trainLabels, '--train-features', trainNpy, '--test', testLabels, '--test-features', testNpy,
      '--setup', 'bottleneck', '--intermediate', '16', '--epochs', '3', '--batch-size', '8', '--lr', '0.01', '--threads', '2', '--device', 'cpu', '--out', run);
    expect(trained.code).toBe(0);
    expect(trained.stderr).toMatch(/model bottleneck: 16 -> 16 \(ReLU\) -> 8/);
    const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
    expect(config.data.train).toEqual({ features: trainNpy, labels: trainLabels });
    const preds = join(dir, 'npy-preds.txt');
    expect((await xmc('predict', '--run', run, '--features', testNpy, '--k', '3', '--out', preds, '--device', 'cpu')).code).toBe(0);
    expect(readFileSync(preds, 'utf8').trim().split('\n').length).toBe(40);
    const history = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(Math.max(...history.map((h) => h['P@1']))).toBeGreaterThan(0.5);
  });

  it('a test set of another feature width is refused, naming the file', async () => {
    const narrow = join(dir, 'narrow.npy');
    const trainNpy = join(dir, 'train.npy');
    await writeNpy(narrow, syntheticDataset({ n: 40, features: 12, labels: 8, seed: 5 }).features as DenseMatrix);
    const r = await xmc('train', '--train', join(dir, 'train-labels.txt'), '--train-features', trainNpy, '--test', join(dir, 'test-labels.txt'),
      '--test-features', narrow, '--setup', 'dense', '--epochs', '1', '--device', 'cpu', '--out', join(dir, 'narrow-run'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/narrow\.npy.*: has 12 features per row, the model takes 16/);
  });
});

describe('train - bad options are rejected naming the option', () => {
  const cases: [string, string[], RegExp][] = [
    ['an unknown setup', ['--setup', 'wide'], /option --setup: 'wide' is not one of dense, bottleneck, ffi, dense-ffi, dense-sparse/],
    ['a fan-in above the FFI layer input', ['--setup', 'dense-ffi', '--intermediate', '16', '--fan-in', '17'], /option --fan-in: 17 exceeds the input of the FFI layer \(intermediate 16 units\)/],
    ['a fan-in above the input dimension', ['--setup', 'ffi', '--fan-in', '21'], /option --fan-in: 21 exceeds the input dimension \(20 features\)/],
    ['more shards than labels', ['--shards', '11'], /option --shards: 11 shards for 10 labels/],
    ['a negative learning rate', ['--lr=-0.001'], /option --lr: must be positive, got -0.001/],
    ['a zero learning rate', ['--lr', '0'], /option --lr: must be positive/],
    ['dropout 1', ['--dropout', '1'], /option --dropout: 1 is out of range/],
    ['an unknown loss', ['--loss', 'hinge'], /option --loss: 'hinge' is not one of squared-hinge, bce/],
    ['zero epochs', ['--epochs', '0'], /option --epochs: 0 is out of range/],
    ['a fractional batch size', ['--batch-size', '2.5'], /option --batch-size: '2.5' is not an integer/],
    ['an intermediate size for dense', ['--setup', 'dense', '--intermediate', '64'], /option --intermediate: setup dense has no intermediate layer/],
    ['a fan-in for bottleneck', ['--setup', 'bottleneck', '--fan-in', '8'], /option --fan-in: setup bottleneck has a dense output layer/],
    ['a bad propensity model', ['--propensity', 'foo'], /option --propensity: 'foo' is neither a preset/],
    ['an unknown device', ['--device', 'tpu'], /option --device: 'tpu' is not one of cpu, cuda, auto/],
    ['an unknown option', ['--learning-rate', '1'], /option --learning-rate: Unknown option/],
  ];
  for (const [what, args, message] of cases) {
    it(`rejects ${what}`, async () => {
      const out = join(dir, `bad-${what.replace(/\W+/g, '-')}`);
      const r = await xmc('train', ...common, ...args, '--out', out);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(existsSync(join(out, 'checkpoint-last.ckpt'))).toBe(false);
    });
  }

  it('rejects a missing --out or --train', async () => {
    expect((await xmc('train', ...common)).stderr).toMatch(/option --out: is required/);
    expect((await xmc('train', '--test', testFile, '--out', join(dir, 'x'))).stderr).toMatch(/option --train: is required/);
  });

  it('--device cuda without the CUDA backend fails with a clean message', async () => {
    const r = await xmc('train', '--train', trainFile, '--test', testFile, '--device', 'cuda', '--out', join(dir, 'cuda'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^xmc train: CUDA backend unavailable/);
  });

  it('xmc predict: a directory without a run is refused', async () => {
    const r = await xmc('predict', '--run', join(dir, 'nothing'), '--data', testFile, '--out', join(dir, 'p.txt'), '--device', 'cpu');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/option --run: .*nothing holds no checkpoint/);
  });
});
