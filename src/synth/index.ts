/**
 * Synthetic XMC data at a real data set's scale (docs/SYNTHETIC_DATA.md).
 *
 * `generateSynthetic` validates the options, runs the native generator off
 * the JS thread (native/cpu/synth.cc) and writes into `outDir`:
 *   train.features.npy, test.features.npy   dense features, C order, '<f2' or '<f4'
 *   train.labels.txt,   test.labels.txt     pyxclib sparse labels ("rows cols", then "l:1 l:1 ...")
 *   meta.json                               preset, seed, scale, dtype, version, parameters, counts
 * Every file is written under a `.partial` name and renamed once all data
 * files are complete; meta.json comes last, so its presence marks a complete set.
 * The bytes depend only on (preset, seed, scale, dtype), never on `threads`.
 */
import { availableParallelism } from 'node:os';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NativeError, OptionError } from '../errors.js';
import { native } from '../native/index.js';
import { PRESETS, PRESET_NAMES, scaledShape, type SynthModelParameters, type SynthPreset } from './presets.js';

export { PRESETS, PRESET_NAMES, DEFAULT_MODEL, scaledShape } from './presets.js';
export type { SynthPreset, SynthModelParameters, ScaledShape } from './presets.js';

export const SYNTH_DTYPES = ['float16', 'float32'] as const;
export type SynthDtype = (typeof SYNTH_DTYPES)[number];

/** File names inside the output folder. */
export const SYNTH_FILES = Object.freeze({
  trainFeatures: 'train.features.npy',
  trainLabels: 'train.labels.txt',
  testFeatures: 'test.features.npy',
  testLabels: 'test.labels.txt',
  meta: 'meta.json',
});
export type SynthFiles = { -readonly [K in keyof typeof SYNTH_FILES]: string };

export interface SynthProgress {
  split: 'train' | 'test';
  /** points written so far, train and test together */
  pointsDone: number;
  pointsTotal: number;
  elapsedSeconds: number;
  pointsPerSecond: number;
  etaSeconds: number;
}

export interface SynthOptions {
  /** a key of PRESETS */
  preset: string;
  outDir: string;
  /** integer in [0, 2^53 - 1]; default 1 */
  seed?: number;
  /** multiplies points and labels; default 1 */
  scale?: number;
  /** default float16 */
  dtype?: SynthDtype;
  /** generator threads; default os.availableParallelism(). Never changes the output. */
  threads?: number;
  /** write into a non-empty outDir (our files are replaced, others left alone) */
  force?: boolean;
  /**
   * overrides of the preset's model parameters (experiments, tuning); they are
   * recorded in meta.json and, like the preset, fully determine the output.
   */
  model?: Partial<SynthModelParameters>;
  /** called at most every 250 ms from the JS thread; exceptions it throws are ignored */
  onProgress?: (progress: SynthProgress) => void;
}

export interface SplitCounts {
  points: number;
  labelOccurrences: number;
  meanLabelsPerPoint: number;
  minLabelsPerPoint: number;
  maxLabelsPerPoint: number;
  /** labels with at least one point in this split */
  labelsWithPoints: number;
  /** labelOccurrences / labels (the repository's "points per label") */
  meanPointsPerLabel: number;
}

/** How many points each label has in a split. Quantiles are nearest-rank over all labels (zeros included). */
export interface LabelFrequencySummary {
  min: number;
  p10: number;
  p25: number;
  median: number;
  p75: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  labelsWithoutPoints: number;
  /** labels with 1, 2 or 3 points */
  labelsWith1To3Points: number;
  /** share of all label occurrences held by the 1% most frequent labels */
  top1PercentShare: number;
}

export interface SynthMeta {
  format: 'xmc-synth';
  generatorVersion: number;
  preset: string;
  seed: number;
  scale: number;
  dtype: SynthDtype;
  files: SynthFiles;
  parameters: SynthModelParameters & { trainPoints: number; testPoints: number; labels: number; topics: number };
  counts: {
    featureDim: number;
    labels: number;
    /** the most popular labels, which belong to no topic */
    generalLabels: number;
    nonemptyTopics: number;
    train: SplitCounts;
    test: SplitCounts;
    trainLabelFrequency: LabelFrequencySummary;
    testLabelFrequency: LabelFrequencySummary;
  };
}

export interface SynthResult {
  outDir: string;
  /** absolute paths of the written files */
  files: SynthFiles;
  meta: SynthMeta;
  elapsedSeconds: number;
  /** train and test points per second of wall time */
  pointsPerSecond: number;
}

interface NativeSplit {
  points: number;
  labelOccurrences: number;
  minLabelsPerPoint: number;
  maxLabelsPerPoint: number;
  featureBytes: number;
  labelBytes: number;
  labelCounts: Uint32Array;
}

interface NativeSynthResult {
  generatorVersion: number;
  generalLabels: number;
  nonemptyTopics: number;
  train: NativeSplit;
  test: NativeSplit;
}

interface SynthNative {
  synthGenerate(params: Record<string, number>, paths: Record<string, string>, options: { dtype: SynthDtype; threads: number },
    onProgress?: (done: number, total: number, split: 'train' | 'test', elapsed: number) => void): Promise<NativeSynthResult>;
  synthFloatToHalf(values: Float32Array): Uint16Array;
  synthVersion: number;
}

function synthNative(): SynthNative {
  const addon = native() as unknown as Partial<SynthNative>;
  if (typeof addon.synthGenerate !== 'function' || typeof addon.synthFloatToHalf !== 'function') {
    throw new NativeError('the native addon has no synthGenerate: rebuild it with `npm run build:native`');
  }
  return addon as SynthNative;
}

/** IEEE binary16 bits of each value, rounded to nearest even (the generator's own conversion). */
export function floatToHalfBits(values: Float32Array): Uint16Array {
  return synthNative().synthFloatToHalf(values);
}

const MAX_POINTS = 2 ** 32 - 1;
const MAX_LABELS = 2 ** 32 - 2;

/** The validated, defaulted options and the derived sizes. Throws OptionError naming the option. */
export function resolveSynthOptions(options: SynthOptions) {
  const preset: SynthPreset | undefined = Object.hasOwn(PRESETS, options.preset) ? PRESETS[options.preset] : undefined;
  if (!preset) throw new OptionError('--preset', `unknown preset '${options.preset}': use one of ${PRESET_NAMES.join(', ')}`);
  const scale = options.scale ?? 1;
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0) {
    throw new OptionError('--scale', `must be a number > 0, got ${String(scale)}`);
  }
  const seed = options.seed ?? 1;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new OptionError('--seed', `must be an integer in [0, ${Number.MAX_SAFE_INTEGER}], got ${String(seed)}`);
  }
  const dtype = options.dtype ?? 'float16';
  if (!(SYNTH_DTYPES as readonly string[]).includes(dtype)) {
    throw new OptionError('--dtype', `'${String(dtype)}' is not one of ${SYNTH_DTYPES.join(', ')}`);
  }
  const threads = options.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) {
    throw new OptionError('--threads', `must be an integer in [1, 1024], got ${String(threads)}`);
  }
  if (typeof options.outDir !== 'string' || options.outDir === '') throw new OptionError('--out', 'an output folder is required');
  const overrides = options.model ?? {};
  for (const [key, value] of Object.entries(overrides)) {
    if (!Object.hasOwn(preset.model, key)) throw new OptionError(`model.${key}`, 'is not a model parameter');
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new OptionError(`model.${key}`, `must be a finite number, got ${String(value)}`);
  }
  const model: SynthModelParameters = { ...preset.model, ...overrides };
  if (!(model.labelsPerTopic >= 1)) throw new OptionError('model.labelsPerTopic', 'must be >= 1');
  const shape = scaledShape(preset, scale, model.labelsPerTopic);
  if (shape.labels < 1 || shape.trainPoints < 1 || shape.testPoints < 1) {
    throw new OptionError('--scale', `${scale} is too small for preset ${preset.name}: it gives ${shape.trainPoints} train points, ` +
      `${shape.testPoints} test points and ${shape.labels} labels (each must be >= 1)`);
  }
  if (shape.trainPoints > MAX_POINTS || shape.testPoints > MAX_POINTS || shape.labels > MAX_LABELS) {
    throw new OptionError('--scale', `${scale} is too large for preset ${preset.name}: at most ${MAX_POINTS} points per split and ${MAX_LABELS} labels`);
  }
  return { preset, model, scale, seed, dtype, threads, shape, outDir: resolve(options.outDir), force: options.force ?? false };
}

function checkOutDir(outDir: string, force: boolean): void {
  if (existsSync(outDir)) {
    if (!statSync(outDir).isDirectory()) throw new OptionError('--out', `${outDir} exists and is not a folder`);
    if (!force && readdirSync(outDir).length > 0) {
      throw new OptionError('--out', `${outDir} is not empty: pass --force to write into it anyway`);
    }
  } else {
    mkdirSync(outDir, { recursive: true });
  }
}

/** Nearest-rank quantiles and head/tail figures of per-label point counts. */
export function summarizeLabelCounts(counts: Uint32Array): LabelFrequencySummary {
  const n = counts.length;
  const sorted = Uint32Array.from(counts).sort();
  const at = (p: number) => (n === 0 ? 0 : sorted[Math.floor(p * (n - 1))]);
  let total = 0, without = 0, few = 0;
  for (let i = 0; i < n; i++) {
    const c = sorted[i];
    total += c;
    if (c === 0) without++;
    else if (c <= 3) few++;
  }
  let top = 0;
  const topCount = Math.ceil(n / 100);
  for (let i = n - 1; i >= n - topCount && i >= 0; i--) top += sorted[i];
  return {
    min: at(0), p10: at(0.1), p25: at(0.25), median: at(0.5), p75: at(0.75), p90: at(0.9), p99: at(0.99), p999: at(0.999),
    max: n === 0 ? 0 : sorted[n - 1],
    labelsWithoutPoints: without,
    labelsWith1To3Points: few,
    top1PercentShare: total === 0 ? 0 : top / total,
  };
}

function splitCounts(s: NativeSplit): SplitCounts {
  let withPoints = 0;
  for (let i = 0; i < s.labelCounts.length; i++) if (s.labelCounts[i] > 0) withPoints++;
  return {
    points: s.points,
    labelOccurrences: s.labelOccurrences,
    meanLabelsPerPoint: s.points === 0 ? 0 : s.labelOccurrences / s.points,
    minLabelsPerPoint: s.minLabelsPerPoint,
    maxLabelsPerPoint: s.maxLabelsPerPoint,
    labelsWithPoints: withPoints,
    meanPointsPerLabel: s.labelCounts.length === 0 ? 0 : s.labelOccurrences / s.labelCounts.length,
  };
}

/** Writes a synthetic data set; resolves once every file is complete under its final name. */
export async function generateSynthetic(options: SynthOptions): Promise<SynthResult> {
  const o = resolveSynthOptions(options);
  const addon = synthNative();
  checkOutDir(o.outDir, o.force);

  const files = Object.fromEntries(Object.entries(SYNTH_FILES).map(([k, name]) => [k, join(o.outDir, name)])) as SynthFiles;
  const partial = (path: string) => `${path}.partial`;
  const dataKeys = ['trainFeatures', 'trainLabels', 'testFeatures', 'testLabels'] as const;
  const m = o.model;
  const params = {
    seed: o.seed,
    trainPoints: o.shape.trainPoints,
    testPoints: o.shape.testPoints,
    labels: o.shape.labels,
    topics: o.shape.topics,
    meanLabelsPerPoint: m.meanLabelsPerPoint,
    maxLabelsPerPoint: m.maxLabelsPerPoint,
    labelCountShape: m.labelCountShape,
    zipfExponent: m.zipfExponent,
    zipfOffset: m.zipfOffset,
    maxTopicShare: m.maxTopicShare,
    topicMix: m.topicMix,
    latentDim: m.latentDim,
    featureDim: m.featureDim,
    prototypeTopicShare: m.prototypeTopicShare,
    mixConcentration: m.mixConcentration,
    latentNoise: m.latentNoise,
    featureNoise: m.featureNoise,
    gain: m.gain,
  };
  const onProgress = options.onProgress;
  const progress = onProgress && ((done: number, total: number, split: 'train' | 'test', elapsed: number) => {
    const rate = elapsed > 0 ? done / elapsed : 0;
    try {
      onProgress({ split, pointsDone: done, pointsTotal: total, elapsedSeconds: elapsed, pointsPerSecond: rate,
        etaSeconds: rate > 0 ? (total - done) / rate : Infinity });
    } catch { /* a progress display must not stop the generator */ }
  });

  const start = performance.now();
  let pending: Promise<NativeSynthResult>;
  try {
    // Throws synchronously only for parameters the native model rejects (checked before any file is opened).
    pending = addon.synthGenerate(params,
      Object.fromEntries(dataKeys.map((k) => [k, partial(files[k])])), { dtype: o.dtype, threads: o.threads }, progress);
  } catch (err) {
    throw new OptionError('model', (err as Error).message);
  }
  let out: NativeSynthResult;
  try {
    out = await pending;
  } catch (err) {
    for (const k of dataKeys) {
      try { rmSync(partial(files[k]), { force: true }); } catch { /* not ours to remove (e.g. a folder): leave it */ }
    }
    throw new NativeError(`synthetic data generation failed: ${(err as Error).message}`, { cause: err });
  }
  for (const k of dataKeys) renameSync(partial(files[k]), files[k]);
  const elapsedSeconds = (performance.now() - start) / 1000;

  const { labelsPerTopic, ...modelParameters } = m;
  const meta: SynthMeta = {
    format: 'xmc-synth',
    generatorVersion: out.generatorVersion,
    preset: o.preset.name,
    seed: o.seed,
    scale: o.scale,
    dtype: o.dtype,
    files: { ...SYNTH_FILES },
    parameters: {
      trainPoints: o.shape.trainPoints, testPoints: o.shape.testPoints, labels: o.shape.labels, topics: o.shape.topics,
      labelsPerTopic, ...modelParameters,
    },
    counts: {
      featureDim: m.featureDim,
      labels: o.shape.labels,
      generalLabels: out.generalLabels,
      nonemptyTopics: out.nonemptyTopics,
      train: splitCounts(out.train),
      test: splitCounts(out.test),
      trainLabelFrequency: summarizeLabelCounts(out.train.labelCounts),
      testLabelFrequency: summarizeLabelCounts(out.test.labelCounts),
    },
  };
  writeFileSync(partial(files.meta), JSON.stringify(meta, null, 2) + '\n');
  renameSync(partial(files.meta), files.meta);
  const points = o.shape.trainPoints + o.shape.testPoints;
  return { outDir: o.outDir, files, meta, elapsedSeconds, pointsPerSecond: elapsedSeconds > 0 ? points / elapsedSeconds : 0 };
}
