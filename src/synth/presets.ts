/**
 * Presets of the synthetic data generator: the sizes of real XMC data sets
 * (Extreme Classification Repository figures) and small sets for tests and
 * demos, plus the parameters of the generative model. docs/SYNTHETIC_DATA.md
 * explains every parameter and how the values were chosen.
 */

/** Parameters of the generative model (see native/cpu/synth_model.h). */
export interface SynthModelParameters {
  /** mean number of labels per point (k = 1 + Poisson(Gamma-distributed mean - 1)) */
  meanLabelsPerPoint: number;
  /** hard cap on labels per point */
  maxLabelsPerPoint: number;
  /** Gamma shape of the labels-per-point over-dispersion (smaller = wider spread) */
  labelCountShape: number;
  /** popularity of rank r is (r + 1 + zipfOffset)^-zipfExponent */
  zipfExponent: number;
  zipfOffset: number;
  /** mean number of (non-general) labels per topic; topics = round(labels / labelsPerTopic) */
  labelsPerTopic: number;
  /** a label heavier than this share of an average topic's mass is a general (topic-less) label */
  maxTopicShare: number;
  /** probability that a drawn topic label is replaced by a draw from the point's topic */
  topicMix: number;
  /** dimension of the latent space of prototypes */
  latentDim: number;
  /** dimension of the written features */
  featureDim: number;
  /** share of a prototype's direction that comes from its topic's center (correlation within a topic) */
  prototypeTopicShare: number;
  /** Gamma shape of a point's label mixing weights (1 = exponential, one label often dominates; larger = more even) */
  mixConcentration: number;
  /** standard deviation (as a norm) of the noise added to the latent code */
  latentNoise: number;
  /** norm of the noise added to the unit feature vector before the final normalisation */
  featureNoise: number;
  /** scale of W z before tanh */
  gain: number;
}

export interface SynthPreset {
  readonly name: string;
  readonly description: string;
  readonly trainPoints: number;
  readonly testPoints: number;
  readonly labels: number;
  readonly model: Readonly<SynthModelParameters>;
}

/**
 * The model's defaults: Amazon-670K-like label statistics, and noise levels
 * tuned on `small` so that a per-label centroid baseline is well above chance
 * and well below perfect (bench/synth-check.mjs).
 */
export const DEFAULT_MODEL: Readonly<SynthModelParameters> = Object.freeze({
  meanLabelsPerPoint: 5.45,
  maxLabelsPerPoint: 48,
  labelCountShape: 2,
  zipfExponent: 0.65,
  zipfOffset: 10,
  labelsPerTopic: 200,
  maxTopicShare: 0.125,
  topicMix: 0.8,
  latentDim: 64,
  featureDim: 768,
  prototypeTopicShare: 0.5,
  mixConcentration: 2,
  latentNoise: 0.7,
  featureNoise: 1.0,
  gain: 2,
});

function preset(name: string, description: string, trainPoints: number, testPoints: number, labels: number,
  model: Partial<SynthModelParameters> = {}): SynthPreset {
  return Object.freeze({ name, description, trainPoints, testPoints, labels, model: Object.freeze({ ...DEFAULT_MODEL, ...model }) });
}

export const PRESETS: Readonly<Record<string, SynthPreset>> = Object.freeze({
  tiny: preset('tiny', 'unit tests: 2,000 / 500 points, 500 labels', 2_000, 500, 500,
    { labelsPerTopic: 25 }),
  small: preset('small', 'demos and the learnability check: 20,000 / 5,000 points, 5,000 labels', 20_000, 5_000, 5_000,
    { labelsPerTopic: 50 }),
  synth100k: preset('synth100k', '100,000 labels, 120,000 / 40,000 points: a CPU model on 2 cores within ~30 minutes',
    120_000, 40_000, 100_000),
  amazon670k: preset('amazon670k', 'Amazon-670K shape: 490,449 / 153,025 points, 670,091 labels, 5.45 labels per point',
    490_449, 153_025, 670_091),
  wiki500k: preset('wiki500k', 'Wiki-500K shape: 1,779,881 / 769,421 points, 501,070 labels, 4.75 labels per point',
    1_779_881, 769_421, 501_070,
    { meanLabelsPerPoint: 4.75, zipfExponent: 0.9, maxLabelsPerPoint: 48 }),
  amazon3m: preset('amazon3m', 'Amazon-3M shape: 1,717,899 / 742,507 points, 2,812,281 labels, 36.04 labels per point',
    1_717_899, 742_507, 2_812_281,
    { meanLabelsPerPoint: 36.04, zipfExponent: 0.8, maxLabelsPerPoint: 256, labelsPerTopic: 1000 }),
});

export const PRESET_NAMES: readonly string[] = Object.freeze(Object.keys(PRESETS));

/** The sizes of a preset at `scale` (points and labels multiplied, per-point/per-label ratios kept). */
export interface ScaledShape {
  trainPoints: number;
  testPoints: number;
  labels: number;
  topics: number;
}

export function scaledShape(p: SynthPreset, scale: number, labelsPerTopic = p.model.labelsPerTopic): ScaledShape {
  const labels = Math.round(p.labels * scale);
  return {
    trainPoints: Math.round(p.trainPoints * scale),
    testPoints: Math.round(p.testPoints * scale),
    labels,
    topics: Math.max(1, Math.round(labels / labelsPerTopic)),
  };
}
