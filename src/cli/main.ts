/**
 * `xmc` command-line entry point: dispatches to one module per subcommand
 * under src/cli/commands/. Each module exports `command: Command`.
 * Errors of this project (XmcError) are printed as one line and exit 2;
 * anything else is a bug and prints its stack.
 */
import { XmcError } from '../errors.js';
import type { Command } from './command.js';

/** Subcommands, loaded lazily so that `xmc stats` never loads the trainer. */
const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  stats: () => import('./commands/stats.js'),
  synth: () => import('./commands/synth.js'),
  eval: () => import('./commands/eval.js'),
  train: () => import('./commands/train.js'),
  predict: () => import('./commands/predict.js'),
  info: () => import('./commands/info.js'),
  demo: () => import('./commands/demo.js'),
  cluster: () => import('./commands/cluster.js'),
  status: () => import('./commands/status.js'),
  serve: () => import('./commands/serve.js'),
};

function usage(): string {
  return [
    'usage: xmc <command> [options]',
    '',
    'commands:',
    '  stats FILE...      shape and label statistics of data files',
    '  synth              write a synthetic data set at a real data set\'s scale',
    '  eval               evaluate a prediction file against labels (P@k, nDCG@k, PSP@k, ...)',
    '  train              train a model (dense, bottleneck, ffi, dense-ffi, dense-sparse) on one machine',
    '  predict            top-k predictions of a trained run, in the format xmc eval reads',
    '  info               native backends: CPU threads, CUDA devices',
    '  demo               the README quick start on the embedded default data',
    '  cluster ROLE       a process of a distributed run: nats, coordinator, encoder, worker',
    '  status RUN_DIR     progress of a distributed run: epochs, metrics, live workers',
    '  serve              inference service: shard workers, gateway, HTTP POST /v1/predict',
    '',
    'run `xmc <command> --help` for a command\'s options',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`xmc: unknown command '${name}'\n\n${usage()}\n`);
    return 2;
  }
  const { command } = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help + '\n');
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof XmcError) {
      process.stderr.write(`xmc ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
