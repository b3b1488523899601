/**
 * `xmc eval`: P@k, nDCG@k, PSP@k, PSnDCG@k, recall@k and coverage@k of a
 * prediction file against a label file, streaming the predictions (memory
 * O(numLabels) on top of the label matrix). docs/METRICS.md has the formulas.
 */
import { access, constants } from 'node:fs/promises';
import type { Command } from '../command.js';
import { parseOptions } from '../command.js';
import { DataFormatError, OptionError } from '../../errors.js';
import { readLabelMatrix } from '../../io/labels.js';
import { readPredictions } from '../../io/predictions.js';
import { XmcEvaluator, type EvaluationResult } from '../../metrics/evaluator.js';
import { inversePropensities, parsePropensityModel, type PropensityModel } from '../../metrics/propensity.js';

const HELP = `usage: xmc eval --predictions FILE --labels FILE [options]

Evaluates ranked predictions against the true labels of the same points.

  --predictions FILE   one line per point: 'label:score label:score ...' (docs/METRICS.md)
  --labels FILE        true labels: XC text ('N F L' header) or a sparse-text label file
  --train-labels FILE  training labels, for the propensities of PSP@k / PSnDCG@k
                       (without it those two are omitted)
  --propensity MODEL   default (A=0.55,B=1.5) | amazon (0.6,2.6) | wikipedia (0.5,0.4) | A,B
                       (default: default; needs --train-labels)
  --k LIST             cutoffs, comma-separated (default 1,3,5)
  --json               print JSON (values as fractions) instead of a table (values in %)`;

const MAX_K = 10_000;

/** Parses '1,3,5' into sorted distinct positive integers. */
function parseKs(text: string | undefined): number[] {
  if (text === undefined) return [1, 3, 5];
  const ks = text.split(',').map((part) => {
    const k = part.trim() === '' ? NaN : Number(part);
    if (!Number.isInteger(k) || k < 1 || k > MAX_K) {
      throw new OptionError('--k', `'${part}' in '${text}' is not an integer in [1, ${MAX_K}]`);
    }
    return k;
  });
  return [...new Set(ks)].sort((a, b) => a - b);
}

async function requireReadable(option: string, path: string | undefined): Promise<string> {
  if (path === undefined || path === '') throw new OptionError(option, 'is required');
  try {
    await access(path, constants.R_OK);
  } catch (err) {
    throw new OptionError(option, `cannot read '${path}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return path;
}

interface Report {
  predictions: string;
  labels: string;
  trainLabels: string | null;
  propensity: (PropensityModel & { trainPoints: number }) | null;
  result: EvaluationResult;
  notes: string[];
}

/** Metric rows of the table / keys of the JSON, in print order. */
const ROWS: { name: string; pick: (m: EvaluationResult['atK'][number]) => number | undefined }[] = [
  { name: 'P', pick: (m) => m.precision },
  { name: 'nDCG', pick: (m) => m.ndcg },
  { name: 'PSP', pick: (m) => m.psPrecision },
  { name: 'PSnDCG', pick: (m) => m.psNdcg },
  { name: 'R', pick: (m) => m.recall },
  { name: 'Cov', pick: (m) => m.coverage },
];

function formatTable(report: Report): string {
  const { result } = report;
  const out: string[] = [];
  out.push(`xmc eval: ${result.points} points (${result.pointsWithoutLabels} without labels), `
    + `${result.numLabels} labels (${result.labelsInTruth} present in the labels file)`);
  out.push(`  predictions: ${report.predictions}`);
  out.push(`  labels:      ${report.labels}`);
  if (report.propensity) {
    const p = report.propensity;
    out.push(`  propensity:  A=${p.A} B=${p.B}, counts from ${report.trainLabels} (N=${p.trainPoints})`);
  }
  const width = 9;
  out.push('');
  out.push('values in %'.padEnd(10) + result.atK.map((m) => `@${m.k}`.padStart(width)).join(''));
  for (const row of ROWS) {
    const values = result.atK.map(row.pick);
    if (values.every((v) => v === undefined)) continue;
    out.push(row.name.padEnd(10) + values.map((v) => (v === undefined || Number.isNaN(v) ? 'n/a' : (100 * v).toFixed(2)).padStart(width)).join(''));
  }
  for (const note of report.notes) out.push(`note: ${note}`);
  return out.join('\n') + '\n';
}

function formatJson(report: Report): string {
  const { result } = report;
  const metrics: Record<string, number | null> = {};
  for (const row of ROWS) {
    for (const m of result.atK) {
      const v = row.pick(m);
      if (v !== undefined) metrics[`${row.name}@${m.k}`] = Number.isNaN(v) ? null : v;
    }
  }
  return JSON.stringify({
    predictions: report.predictions,
    labels: report.labels,
    trainLabels: report.trainLabels,
    points: result.points,
    pointsWithoutLabels: result.pointsWithoutLabels,
    numLabels: result.numLabels,
    labelsInTruth: result.labelsInTruth,
    k: result.atK.map((m) => m.k),
    unit: 'fraction',
    propensity: report.propensity,
    metrics,
    notes: report.notes,
  }, null, 2) + '\n';
}

export const command: Command = {
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values } = parseOptions(args, {
      predictions: { type: 'string' },
      labels: { type: 'string' },
      'train-labels': { type: 'string' },
      propensity: { type: 'string' },
      k: { type: 'string' },
      json: { type: 'boolean' },
    });
    const ks = parseKs(values.k);
    const predictionsPath = await requireReadable('--predictions', values.predictions);
    const labelsPath = await requireReadable('--labels', values.labels);
    const trainPath = values['train-labels'] === undefined ? undefined
      : await requireReadable('--train-labels', values['train-labels']);
    if (values.propensity !== undefined && trainPath === undefined) {
      throw new OptionError('--propensity', 'needs --train-labels FILE (propensities come from training label counts)');
    }
    const model = parsePropensityModel(values.propensity ?? 'default');

    const truth = await readLabelMatrix(labelsPath);
    const numLabels = truth.cols;
    const notes: string[] = [];
    let weights: Float64Array | undefined;
    let propensity: Report['propensity'] = null;
    if (trainPath !== undefined) {
      const train = await readLabelMatrix(trainPath);
      if (train.cols !== numLabels) {
        throw new OptionError('--train-labels', `${trainPath} has ${train.cols} labels but ${labelsPath} has ${numLabels}`);
      }
      if (train.rows < 1) throw new OptionError('--train-labels', `${trainPath} has no points`);
      weights = inversePropensities(train, model);
      propensity = { ...model, trainPoints: train.rows };
    } else {
      notes.push('PSP@k and PSnDCG@k omitted: they need training label counts (--train-labels FILE)');
    }

    const evaluator = new XmcEvaluator({ ks, numLabels, inversePropensities: weights });
    let row = 0;
    for await (const block of readPredictions(predictionsPath, { k: ks[ks.length - 1], numLabels })) {
      if (row + block.rows > truth.rows) {
        throw new DataFormatError({ file: predictionsPath, line: truth.rows + 1 },
          `more points than the ${truth.rows} of ${labelsPath}`);
      }
      evaluator.add(block, truth, row);
      row += block.rows;
    }
    if (row !== truth.rows) {
      throw new DataFormatError({ file: predictionsPath },
        `has ${row} points (lines) but ${labelsPath} has ${truth.rows}`);
    }
    const report: Report = {
      predictions: predictionsPath, labels: labelsPath, trainLabels: trainPath ?? null,
      propensity, result: evaluator.result(), notes,
    };
    process.stdout.write(values.json ? formatJson(report) : formatTable(report));
    return 0;
  },
};
