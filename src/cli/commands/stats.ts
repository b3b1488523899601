/**
 * `xmc stats FILE...`: shape and label statistics of data files (XC text,
 * sparse text, .npy), computed in one streaming pass per file. With several
 * files of the same shape (e.g. train and test), also the combined figures.
 */
import type { Command } from '../command.js';
import { choiceOption, parseOptions } from '../command.js';
import { OptionError } from '../../errors.js';
import { combineStats, fileStats, type FileStats, type FileStatsResult } from '../../data/stats.js';

const HELP = `usage: xmc stats [--json] [--sparse-as labels|features] FILE...

For each file prints points, features, labels, labels per point, points per
label (mean, and how many labels have no point), label-frequency quantiles
(points per label: min, 25%, 50%, 75%, 90%, 99%, max) and nonzero features
per point. With several files of the same shape, also all of them together.

Formats, told apart by content: .npy (dense features), XC text ('N F L'
header: labels and features), sparse text ('ROWS COLS' header).

options:
  --json                       one JSON document: {"files": [...], "combined": ...}
  --sparse-as labels|features  read sparse text files as labels (default) or features`;

const FORMAT_NAMES: Record<FileStats['format'], string> = {
  'xc-text': 'XC text',
  'sparse-text-labels': 'sparse text, labels',
  'sparse-text-features': 'sparse text, features',
  npy: '.npy dense features',
};

export const command: Command = {
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseOptions(args, {
      json: { type: 'boolean' },
      'sparse-as': { type: 'string' },
    }, true);
    const sparseAs = choiceOption('--sparse-as', values['sparse-as'], 'labels', ['labels', 'features'] as const);
    if (positionals.length === 0) throw new OptionError('FILE', 'give at least one data file');
    const results: FileStatsResult[] = [];
    for (const file of positionals) {
      const result = await fileStats(file, { sparseAs });
      results.push(result);
      if (!values.json) process.stdout.write(formatStats(result.stats) + '\n');
    }
    const combined = combineStats(results);
    if (values.json) {
      process.stdout.write(JSON.stringify({ files: results.map((r) => r.stats), combined }, null, 2) + '\n');
    } else if (combined) {
      process.stdout.write(formatStats(combined) + '\n');
    }
    return 0;
  },
};

const count = (n: number) => n.toLocaleString('en-US');
/** Integers grouped, other numbers with `digits` decimals. */
const num = (n: number, digits = 1) => (Number.isInteger(n) ? count(n) : n.toFixed(digits));
const mean = (n: number) => n.toFixed(2);

/** Human-readable block for one file. */
export function formatStats(s: FileStats): string {
  const rows: Array<[string, string]> = [];
  rows.push(['points', count(s.points)]);
  if (s.features !== null) rows.push(['features', count(s.features) + (s.dtype ? ` (${s.dtype})` : '')]);
  if (s.labels !== null) rows.push(['labels', count(s.labels)]);
  const l = s.labelStats;
  if (l) {
    rows.push(['labels per point', `${mean(l.labelsPerPoint.mean)} mean (min ${count(l.labelsPerPoint.min)}, max ${count(l.labelsPerPoint.max)}); ${count(l.pointsWithoutLabels)} points without labels`]);
    rows.push(['points per label', `${mean(l.pointsPerLabel.mean)} mean; ${count(l.pointsPerLabel.labelsWithoutPoints)} labels without points`]);
    const q = l.labelFrequencyQuantiles;
    rows.push(['label frequency', `min ${num(q.min)}, 25% ${num(q.p25)}, 50% ${num(q.p50)}, 75% ${num(q.p75)}, 90% ${num(q.p90)}, 99% ${num(q.p99)}, max ${num(q.max)}`]);
  }
  const f = s.featuresPerPoint;
  if (f) rows.push([s.format === 'npy' ? 'nonzeros per point' : 'features per point', `${mean(f.mean)} mean (min ${count(f.min)}, max ${count(f.max)})`]);
  const title = `${s.file} (${FORMAT_NAMES[s.format]}${s.bytes !== undefined ? `, ${count(s.bytes)} bytes` : ''})`;
  return [title, ...rows.map(([k, v]) => `  ${k.padEnd(20)}${v}`)].join('\n');
}
