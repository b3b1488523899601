/**
 * `xmc predict`: top-k predictions of a trained run (its best epoch's
 * weights) for a data set, written in the prediction file format that
 * `xmc eval` reads (src/io/predictions.ts).
 */
import type { Command } from '../command.js';
import { choiceOption, numberOption, parseOptions } from '../command.js';
import { OptionError } from '../../errors.js';
import { loadDataset, readFeatureMatrix } from '../../data/load.js';
import type { FeatureMatrix } from '../../data/types.js';
import { writePredictions } from '../../io/predictions.js';
import { prepareFeatures } from '../../model/inputs.js';
import { predictBlocks } from '../../model/predict.js';
import { createDeviceBackend, loadRunModel, type Device } from '../../train/run.js';

const HELP = `usage: xmc predict --run RUN_DIR --data FILE [--features FILE] --out FILE [options]

Writes the top-k labels of every point ('label:score ...' per line, best
first) as predicted by the best epoch of a run (checkpoint-best.ckpt).

  --run RUN_DIR          a directory written by \`xmc train\`
  --data FILE            XC text file (its labels are not used), or with --features the
                         matching label file (may be omitted)
  --features FILE        features: .npy (dense), sparse text or XC text
  --k K                  labels per point (default 5)
  --out FILE             the prediction file
  --batch-size N         rows per batch (default 512)
  --device cpu|cuda|auto (default auto)
  --threads T            CPU threads (default: all)
  --tf32                 CUDA: dense products on TF32 tensor cores (about 1e-3 relative error)
  --bf16-gathers         CUDA: the fused FFI top-k (k <= 16) reads its input as bfloat16
  --int8-topk            the top-k (k <= 16) rounds its input to int8 with a scale per row: on
                         CUDA faster (it found 98% of the float32 top-5 labels in docs/PERFORMANCE.md);
                         on the CPU the same rounding, to check what it costs in accuracy`;

export const command: Command = {
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values: v } = parseOptions(args, {
      run: { type: 'string' },
      data: { type: 'string' },
      features: { type: 'string' },
      k: { type: 'string' },
      out: { type: 'string' },
      'batch-size': { type: 'string' },
      device: { type: 'string' },
      threads: { type: 'string' },
      tf32: { type: 'boolean' },
      'bf16-gathers': { type: 'boolean' },
      'int8-topk': { type: 'boolean' },
    });
    if (!v.run) throw new OptionError('--run', 'is required (a run directory of `xmc train`)');
    if (!v.out) throw new OptionError('--out', 'is required (the prediction file to write)');
    if (!v.data && !v.features) throw new OptionError('--data', 'is required (or --features)');
    const k = numberOption('--k', v.k, 5, { min: 1, max: 10_000, integer: true });
    const batchRows = numberOption('--batch-size', v['batch-size'], 512, { min: 1, max: 1 << 20, integer: true });
    const device = choiceOption<Device>('--device', v.device, 'auto', ['cpu', 'cuda', 'auto']);
    const threads = v.threads === undefined ? undefined : numberOption('--threads', v.threads, 0, { min: 1, max: 1024, integer: true });

    const backend = createDeviceBackend(device, threads, { tf32: v.tf32, bf16Gathers: v['bf16-gathers'], int8TopK: v['int8-topk'] });
    const { model } = await loadRunModel(backend, v.run);
    try {
      let features: FeatureMatrix;
      let source: string;
      if (v.features) {
        features = await readFeatureMatrix(v.features);
        source = v.features;
      } else {
        const data = await loadDataset(v.data!);
        features = data.features;
        source = data.source;
      }
      const inputs = prepareFeatures(features, model.config.inputDim, source);
      const rows = await writePredictions(v.out, predictBlocks(backend, model, inputs, { k, batchRows }));
      process.stderr.write(`xmc predict: ${rows} points, top ${k} of ${model.config.numLabels} labels -> ${v.out}\n`);
    } finally {
      model.dispose();
    }
    return 0;
  },
};
