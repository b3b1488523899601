import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { floatToHalfBits, generateSynthetic, PRESETS, SYNTH_FILES, type SynthMeta, type SynthResult } from '../src/synth/index.js';
import { npyRows, parseLabels, parseNpy } from './synth-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'xmc-synth-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
function freshDir(): string {
  return join(root, `run-${counter++}`);
}

function readAll(dir: string): Record<string, Buffer> {
  return Object.fromEntries(Object.values(SYNTH_FILES).map((name) => [name, readFileSync(join(dir, name))]));
}

describe('synth - determinism', () => {
  let base: Record<string, Buffer>;
  beforeAll(async () => {
    const dir = freshDir();
    await generateSynthetic({ preset: 'tiny', outDir: dir, seed: 7, threads: 1 });
    base = readAll(dir);
  });

  it('same seed gives identical bytes, whatever the thread count', async () => {
    for (const threads of [1, 2, 3]) {
      const dir = freshDir();
      await generateSynthetic({ preset: 'tiny', outDir: dir, seed: 7, threads });
      const again = readAll(dir);
      for (const name of Object.values(SYNTH_FILES)) expect(again[name].equals(base[name]), `${name} with ${threads} threads`).toBe(true);
    }
  });

  it('a different seed gives different features and labels', async () => {
    const dir = freshDir();
    await generateSynthetic({ preset: 'tiny', outDir: dir, seed: 8, threads: 2 });
    const other = readAll(dir);
    for (const name of [SYNTH_FILES.trainFeatures, SYNTH_FILES.trainLabels, SYNTH_FILES.testFeatures, SYNTH_FILES.testLabels]) {
      expect(other[name].equals(base[name]), name).toBe(false);
    }
  });

  it('train and test splits differ (each point has its own stream per split)', () => {
    const train = parseNpy(join(root, 'run-0', SYNTH_FILES.trainFeatures));
    const test = parseNpy(join(root, 'run-0', SYNTH_FILES.testFeatures));
    const rowBytes = 768 * 2;
    expect(train.bytes.subarray(train.dataOffset, train.dataOffset + rowBytes)
      .equals(test.bytes.subarray(test.dataOffset, test.dataOffset + rowBytes))).toBe(false);
  });
});

describe('synth - reference output', () => {
  // The bytes of `tiny`, seed 1, float16, as generated on the development machine
  // (x86-64). The generator uses no libm and no FMA, so every machine must give
  // the same bytes. A deliberate change of the output must bump kSynthVersion
  // (native/cpu/synth.cc) and update these digests.
  const expected: Record<string, string> = {
    [SYNTH_FILES.trainFeatures]: '14b89c22819c6f1be9aadf043f86b95493fbedbd488d64fe3c70e0753cd56c13',
    [SYNTH_FILES.trainLabels]: '5ad3b05c2e78d64492e0f9e07eacab196453ffbf647f3cfcb44fafe4ff9fc934',
    [SYNTH_FILES.testFeatures]: '1b8f317e733abf341d4e3c35bec21dde14af0b5b3d8a115d82acabca323a9be2',
    [SYNTH_FILES.testLabels]: '7468e74a1c3f49ed43a58738931c340ff10be77b2229b39af3ece72978b2584b',
  };

  it('generator version 1 reproduces the recorded SHA-256 of every data file', async () => {
    const r = await generateSynthetic({ preset: 'tiny', outDir: freshDir(), seed: 1, dtype: 'float16', threads: 2 });
    expect(r.meta.generatorVersion).toBe(1);
    const got = Object.fromEntries(Object.keys(expected).map((name) =>
      [name, createHash('sha256').update(readFileSync(join(r.outDir, name))).digest('hex')]));
    expect(got).toEqual(expected);
  });
});

describe('synth - files', () => {
  let half: SynthResult;
  let single: SynthResult;
  beforeAll(async () => {
    half = await generateSynthetic({ preset: 'tiny', outDir: freshDir(), threads: 2 });
    single = await generateSynthetic({ preset: 'tiny', outDir: freshDir(), threads: 2, dtype: 'float32' });
  });

  it('writes exactly the five files, none left under a temporary name', () => {
    expect(readdirSync(half.outDir).sort()).toEqual(Object.values(SYNTH_FILES).sort());
  });

  it('npy headers: version 1.0, C order, <f2 / <f4, shape (points, 768), data at a multiple of 64', () => {
    const preset = PRESETS.tiny;
    for (const [result, descr, width] of [[half, '<f2', 2], [single, '<f4', 4]] as const) {
      for (const [file, rows] of [[result.files.trainFeatures, preset.trainPoints], [result.files.testFeatures, preset.testPoints]] as const) {
        const npy = parseNpy(file);
        expect(npy.version).toEqual([1, 0]);
        expect(npy.descr).toBe(descr);
        expect(npy.fortranOrder).toBe(false);
        expect(npy.shape).toEqual([rows, 768]);
        expect(npy.dataOffset % 64).toBe(0);
        expect(statSync(file).size).toBe(npy.dataOffset + rows * 768 * width);
      }
    }
  });

  it('features are finite unit vectors, and the float16 file is the float32 file rounded to nearest even', () => {
    const f32 = parseNpy(single.files.testFeatures);
    const f16 = parseNpy(half.files.testFeatures);
    const values = new Float32Array(f32.bytes.buffer.slice(f32.bytes.byteOffset + f32.dataOffset, f32.bytes.byteOffset + f32.bytes.length));
    let nonFinite = 0, worstNorm = 0;
    for (let r = 0; r < f32.shape[0]; r++) {
      let n = 0;
      for (let c = 0; c < 768; c++) {
        const v = values[r * 768 + c];
        if (!Number.isFinite(v)) nonFinite++;
        n += v * v;
      }
      worstNorm = Math.max(worstNorm, Math.abs(Math.sqrt(n) - 1));
    }
    expect(nonFinite).toBe(0);
    expect(worstNorm).toBeLessThan(1e-5);
    const expected = Buffer.from(floatToHalfBits(values).buffer);
    expect(f16.bytes.subarray(f16.dataOffset).equals(expected)).toBe(true);
    let worstNorm16 = 0;
    for (const row of npyRows(f16)) worstNorm16 = Math.max(worstNorm16, Math.abs(Math.hypot(...row) - 1));
    expect(worstNorm16).toBeLessThan(2e-3);
  });

  it('label files: header rows/labels, one line per point, ids in range, strictly increasing', () => {
    for (const [file, rows] of [[half.files.trainLabels, PRESETS.tiny.trainPoints], [half.files.testLabels, PRESETS.tiny.testPoints]] as const) {
      const f = parseLabels(file);
      expect(f.rows).toBe(rows);
      expect(f.cols).toBe(PRESETS.tiny.labels);
      expect(f.labels.length).toBe(rows);
      const problems: string[] = [];
      f.labels.forEach((ls, i) => {
        if (ls.length === 0) problems.push(`point ${i} has no labels`);
        ls.forEach((l, j) => {
          if (!(l >= 0 && l < PRESETS.tiny.labels)) problems.push(`point ${i}: label ${l} out of range`);
          if (j > 0 && l <= ls[j - 1]) problems.push(`point ${i}: labels not increasing`);
        });
      });
      expect(problems).toEqual([]);
    }
  });

  it('meta.json matches the files and the options', () => {
    const meta = JSON.parse(readFileSync(half.files.meta, 'utf8')) as SynthMeta;
    expect(meta).toEqual(half.meta);
    expect(meta.preset).toBe('tiny');
    expect(meta.seed).toBe(1);
    expect(meta.scale).toBe(1);
    expect(meta.dtype).toBe('float16');
    expect(meta.generatorVersion).toBeGreaterThanOrEqual(1);
    const train = parseLabels(half.files.trainLabels);
    const occurrences = train.labels.reduce((a, l) => a + l.length, 0);
    expect(meta.counts.train.points).toBe(train.rows);
    expect(meta.counts.train.labelOccurrences).toBe(occurrences);
    expect(meta.counts.train.maxLabelsPerPoint).toBe(Math.max(...train.labels.map((l) => l.length)));
    const used = new Set(train.labels.flat()).size;
    expect(meta.counts.train.labelsWithPoints).toBe(used);
    expect(meta.counts.trainLabelFrequency.labelsWithoutPoints).toBe(PRESETS.tiny.labels - used);
  });
});

describe('synth - shape of a scaled-down preset', () => {
  // amazon670k at 1%: 4,904 train points, 6,701 labels; the per-point and per-label ratios must hold.
  let meta: SynthMeta;
  let counts: number[];
  beforeAll(async () => {
    const r = await generateSynthetic({ preset: 'amazon670k', scale: 0.01, outDir: freshDir(), threads: 2 });
    meta = r.meta;
    const labels = parseLabels(r.files.trainLabels);
    counts = new Array(labels.cols).fill(0);
    for (const ls of labels.labels) for (const l of ls) counts[l]++;
  });

  it('sizes follow the scale', () => {
    expect(meta.counts.train.points).toBe(Math.round(490_449 * 0.01));
    expect(meta.counts.test.points).toBe(Math.round(153_025 * 0.01));
    expect(meta.counts.labels).toBe(Math.round(670_091 * 0.01));
  });

  it('mean labels per point and points per label are near the preset (5.45, 3.99)', () => {
    expect(meta.counts.train.meanLabelsPerPoint).toBeGreaterThan(5.45 * 0.95);
    expect(meta.counts.train.meanLabelsPerPoint).toBeLessThan(5.45 * 1.05);
    expect(meta.counts.test.meanLabelsPerPoint).toBeGreaterThan(5.45 * 0.93);
    expect(meta.counts.test.meanLabelsPerPoint).toBeLessThan(5.45 * 1.07);
    expect(meta.counts.train.meanPointsPerLabel).toBeGreaterThan(3.99 * 0.93);
    expect(meta.counts.train.meanPointsPerLabel).toBeLessThan(3.99 * 1.07);
  });

  it('label frequencies are power-law shaped: a small median, a heavy head', () => {
    const sorted = [...counts].sort((a, b) => b - a);
    const total = sorted.reduce((a, b) => a + b, 0);
    const top1 = sorted.slice(0, Math.ceil(sorted.length / 100)).reduce((a, b) => a + b, 0);
    const median = sorted[Math.floor(sorted.length / 2)];
    expect(median).toBeLessThanOrEqual(4);
    expect(top1 / total).toBeGreaterThan(0.08);  // 1% of labels hold > 8x their fair share
    expect(sorted[0]).toBeGreaterThan(20 * Math.max(1, median));
    const few = counts.filter((c) => c >= 1 && c <= 3).length;
    expect(few / counts.length).toBeGreaterThan(0.3);  // many labels with 1-3 points
    expect(meta.counts.trainLabelFrequency.median).toBe(median);
    expect(meta.counts.trainLabelFrequency.max).toBe(sorted[0]);
  });
});
