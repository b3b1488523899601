/** `xmc synth`: write a synthetic data set at a real data set's scale (docs/SYNTHETIC_DATA.md). */
import type { Command } from '../command.js';
import { choiceOption, numberOption, parseOptions } from '../command.js';
import { OptionError } from '../../errors.js';
import { PRESETS, PRESET_NAMES, SYNTH_DTYPES, generateSynthetic, type SynthProgress } from '../../synth/index.js';

const help = [
  'usage: xmc synth --preset NAME --out DIR [--seed S] [--scale F] [--dtype float16|float32] [--threads T] [--force]',
  '',
  'Writes train/test features (.npy, 768 columns), sparse label files (pyxclib format) and meta.json into DIR.',
  'The bytes depend only on (preset, seed, scale, dtype), never on --threads.',
  '',
  'options:',
  '  --preset NAME   one of the presets below',
  '  --out DIR       output folder; must be empty or absent unless --force',
  '  --seed S        integer >= 0 (default 1)',
  '  --scale F       multiply points and labels by F > 0 (default 1)',
  '  --dtype T       float16 (default) or float32',
  '  --threads T     generator threads (default: all cores)',
  '  --force         write into a non-empty DIR (our five files are replaced)',
  '  --quiet         no progress on stderr',
  '',
  'presets:',
  ...PRESET_NAMES.map((n) => `  ${n.padEnd(12)} ${PRESETS[n].description}`),
].join('\n');

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export const command: Command = {
  help,
  async run(args: string[]): Promise<number> {
    const { values } = parseOptions(args, {
      preset: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      scale: { type: 'string' },
      dtype: { type: 'string' },
      threads: { type: 'string' },
      force: { type: 'boolean' },
      quiet: { type: 'boolean' },
    });
    if (values.preset === undefined) throw new OptionError('--preset', `required: one of ${PRESET_NAMES.join(', ')}`);
    if (values.out === undefined) throw new OptionError('--out', 'required: the output folder');
    const seed = numberOption('--seed', values.seed, 1, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true });
    const scale = numberOption('--scale', values.scale, 1);  // > 0 and not too small: checked by generateSynthetic
    const dtype = choiceOption('--dtype', values.dtype, 'float16', SYNTH_DTYPES);
    const threads = values.threads === undefined ? undefined : numberOption('--threads', values.threads, 1, { min: 1, max: 1024, integer: true });

    // Progress: one line every 5 s (runs shorter than that stay silent).
    let lastPrinted = 0;
    const onProgress = values.quiet ? undefined : (p: SynthProgress) => {
      if (p.elapsedSeconds - lastPrinted < 5 || p.pointsDone === p.pointsTotal) return;
      lastPrinted = p.elapsedSeconds;
      const pct = ((100 * p.pointsDone) / p.pointsTotal).toFixed(1);
      process.stderr.write(`xmc synth: ${p.split} ${p.pointsDone}/${p.pointsTotal} points (${pct}%), ` +
        `${Math.round(p.pointsPerSecond)} points/s, ETA ${formatSeconds(p.etaSeconds)}\n`);
    };

    const result = await generateSynthetic({ preset: values.preset, outDir: values.out, seed, scale, dtype, threads,
      force: values.force ?? false, onProgress });
    const c = result.meta.counts;
    const f = c.trainLabelFrequency;
    process.stdout.write([
      `wrote ${result.outDir} (${result.meta.preset}, seed ${result.meta.seed}, scale ${result.meta.scale}, ${result.meta.dtype})`,
      `  train: ${c.train.points} x ${c.featureDim}, ${c.train.meanLabelsPerPoint.toFixed(2)} labels/point, ` +
        `${c.train.meanPointsPerLabel.toFixed(2)} points/label, ${c.train.labelsWithPoints}/${c.labels} labels used`,
      `  test:  ${c.test.points} x ${c.featureDim}, ${c.test.meanLabelsPerPoint.toFixed(2)} labels/point`,
      `  train points per label: median ${f.median}, p90 ${f.p90}, p99 ${f.p99}, max ${f.max}; ` +
        `top 1% of labels hold ${(100 * f.top1PercentShare).toFixed(1)}% of occurrences`,
      `  ${result.elapsedSeconds.toFixed(1)} s, ${Math.round(result.pointsPerSecond)} points/s`,
    ].join('\n') + '\n');
    return 0;
  },
};
