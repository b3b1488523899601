/**
 * `xmc demo`: the README's quick start in one command. Trains the paper's
 * method (dense-ffi: input -> 4096, ReLU -> FFI fan-in 32 -> labels) on bibtex
 * from ../shared/data (or, where that folder is absent, on the synthetic
 * `small` preset), then writes top-5 test predictions and evaluates them:
 * the same three commands a user would run (train, predict, eval).
 */
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from '../command.js';
import { numberOption, parseOptions } from '../command.js';
import { packageRoot } from '../../native/index.js';
import { generateSynthetic } from '../../synth/index.js';
import { command as train } from './train.js';
import { command as predict } from './predict.js';
import { command as evaluate } from './eval.js';

const HELP = `usage: xmc demo [--out DIR] [--epochs N] [--device cpu|cuda|auto] [--synthetic]

Trains dense-ffi (the paper's method: intermediate 4096, fan-in 32) on bibtex
(../shared/data; the synthetic 'small' preset where that is missing),
predicts the test set's top 5 and evaluates it. Everything lands in DIR
(default runs/demo, replaced on each run).

  --out DIR      the demo's folder (default runs/demo)
  --epochs N     at most N epochs (default 30; early stopping ends it sooner)
  --device D     cpu | cuda | auto (default auto)
  --synthetic    use the synthetic 'small' preset even where bibtex is there`;

export const command: Command = {
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values: v } = parseOptions(args, {
      out: { type: 'string' }, epochs: { type: 'string' }, device: { type: 'string' }, synthetic: { type: 'boolean' },
    });
    const root = packageRoot();
    const out = resolve(v.out ?? join(root, 'runs', 'demo'));
    const epochs = numberOption('--epochs', v.epochs, 30, { min: 1, integer: true });
    const device = v.device ?? 'auto';
    rmSync(out, { recursive: true, force: true });

    const shared = resolve(root, '..', 'shared', 'data');
    let trainArgs: string[], testArgs: string[], testLabels: string, trainLabels: string;
    if (!v.synthetic && existsSync(join(shared, 'bibtex_train.txt')) && existsSync(join(shared, 'bibtex_test.txt'))) {
      trainLabels = join(shared, 'bibtex_train.txt');
      testLabels = join(shared, 'bibtex_test.txt');
      trainArgs = ['--train', trainLabels];
      testArgs = ['--test', testLabels];
      process.stderr.write(`demo: bibtex from ${shared}\n`);
    } else {
      const data = join(out, 'data');
      process.stderr.write(`demo: ${v.synthetic ? 'asked for synthetic data' : `${shared} not found`}; generating the synthetic 'small' preset into ${data}\n`);
      await generateSynthetic({ preset: 'small', outDir: data, seed: 1 });
      trainLabels = join(data, 'train.labels.txt');
      testLabels = join(data, 'test.labels.txt');
      trainArgs = ['--train', trainLabels, '--train-features', join(data, 'train.features.npy')];
      testArgs = ['--test', testLabels, '--test-features', join(data, 'test.features.npy')];
    }

    const run = join(out, 'run');
    const predictions = join(out, 'predictions.txt');
    const steps: [string, Command, string[]][] = [
      ['train', train, [...trainArgs, ...testArgs, '--setup', 'dense-ffi', '--intermediate', '4096', '--fan-in', '32',
        '--epochs', String(epochs), '--device', device, '--out', run]],
      ['predict', predict, ['--run', run, ...(trainArgs[2] === '--train-features'
        ? ['--data', testLabels, '--features', testArgs[3]] : ['--data', testLabels]), '--k', '5', '--out', predictions, '--device', device]],
      ['eval', evaluate, ['--predictions', predictions, '--labels', testLabels, '--train-labels', trainLabels]],
    ];
    for (const [name, cmd, cmdArgs] of steps) {
      process.stderr.write(`\ndemo: xmc ${name} ${cmdArgs.join(' ')}\n`);
      const code = await cmd.run(cmdArgs);
      if (code !== 0) return code;
    }
    process.stderr.write(`\ndemo: done; the run, its metrics history and predictions are in ${out}\n`);
    return 0;
  },
};
