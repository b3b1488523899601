/**
 * `xmc cluster <role>`: the processes of a distributed run (docs/DISTRIBUTED.md).
 * pm2 starts them from ecosystem.config.js; tests and bench/cluster.mjs
 * start them as child processes.
 */
import { resolve } from 'node:path';
import type { Command } from '../command.js';
import { choiceOption, numberOption, parseOptions } from '../command.js';
import { OptionError } from '../../errors.js';
import { loadDataset } from '../../data/load.js';
import { resolveTrainConfig } from '../../train/config.js';
import { dataDims, type Device } from '../../train/run.js';
import type { DataSpecs } from '../../train/trainer.js';
import { startNatsServer } from '../../distributed/nats.js';
import type { FeatureDtype } from '../../distributed/protocol.js';
import { statsPath } from '../../distributed/timing.js';
import { dataSpec, trainOptions } from './train.js';

const HELP = `usage: xmc cluster <role> --run RUN_DIR [options]

The processes of a distributed run (one NATS server, one encoder, one
coordinator, one worker per label shard); docs/DISTRIBUTED.md and the README
say how pm2 starts them.

roles:
  nats          runs nats-server with config/nats.conf, its JetStream store under RUN_DIR/nats
                  --port P (default 4222) --host H (default 127.0.0.1)
  coordinator   owns the run: epochs, lr schedule, evaluation, early stopping, metrics
                  a new run takes the options of \`xmc train\` (--train, --test, --setup,
                  --shards = the number of workers, ...); a run that exists continues
                  (only --epochs may change)
                  --max-ahead N        batches the encoder may run ahead of the slowest worker (16)
                  --features float32|float16   batch feature encoding (float32)
                  --request-timeout S  seconds before a commit/eval request to a worker is sent again (30)
  encoder       reads the training set, publishes each epoch's batches
  worker        trains label shard --shard I (0-based)
                  --device cpu|cuda|auto (auto) --threads T
                  --checkpoint-seconds S  seconds between checkpoints within an epoch (600; written in the
                                          background; the epoch's end is always checkpointed)
                  --checkpoint-every N    every N steps instead (0: off, the default)
                  --in-flight N           training steps queued on the device at most (2)
                  --tf32                  CUDA: dense products on TF32 tensor cores
                  --bf16-gathers          CUDA: the fused FFI kernels read the layer input as bfloat16

common:
  --run RUN_DIR       the run directory (shared by the processes of one host)
  --nats URL          the NATS server (default nats://127.0.0.1:4222)
  --run-id ID         run id in subjects and the stream name (default: RUN_DIR's base name)`;

const OPTIONS = {
  run: { type: 'string' },
  nats: { type: 'string' },
  'run-id': { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  shard: { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  'checkpoint-every': { type: 'string' },
  'checkpoint-seconds': { type: 'string' },
  'in-flight': { type: 'string' },
  tf32: { type: 'boolean' },
  'bf16-gathers': { type: 'boolean' },
  'max-ahead': { type: 'string' },
  features: { type: 'string' },
  'request-timeout': { type: 'string' },
  // the training options of `xmc train`
  train: { type: 'string' }, test: { type: 'string' }, 'train-features': { type: 'string' }, 'test-features': { type: 'string' },
  propensity: { type: 'string' }, setup: { type: 'string' }, 'fan-in': { type: 'string' }, intermediate: { type: 'string' },
  shards: { type: 'string' }, seed: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' },
  lr: { type: 'string' }, dropout: { type: 'string' }, loss: { type: 'string' }, 'rewire-interval': { type: 'string' },
  'rewire-fraction': { type: 'string' }, 'lr-factor': { type: 'string' }, 'lr-patience': { type: 'string' },
  'min-lr': { type: 'string' }, 'early-stop': { type: 'string' }, 'eval-batch-size': { type: 'string' },
} as const;

/**
 * The exit code of a process whose run is over: 0, or XMC_DONE_EXIT_CODE.
 * pm2 reports a process killed by a signal with exit code 0, so
 * ecosystem.config.js sets 64 and lists it in stop_exit_codes: then a
 * finished process stays stopped and a killed one is restarted.
 */
function doneExitCode(): number {
  const c = Number(process.env.XMC_DONE_EXIT_CODE ?? 0);
  return Number.isInteger(c) && c >= 0 && c < 256 ? c : 0;
}

/** The run id from a run directory's base name: [A-Za-z0-9_-], other characters become '_'. */
export function defaultRunId(runDir: string): string {
  const base = resolve(runDir).split('/').filter(Boolean).pop() ?? 'run';
  return base.replace(/[^A-Za-z0-9_-]/g, '_');
}

export const command: Command = {
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values: v, positionals } = parseOptions(args, OPTIONS, true);
    const role = positionals[0];
    if (!role) throw new OptionError('<role>', 'is required: nats, coordinator, encoder or worker');
    if (!v.run) throw new OptionError('--run', 'is required (the run directory)');
    const runDir = resolve(v.run);
    const url = v.nats ?? 'nats://127.0.0.1:4222';
    const runId = v['run-id'] ?? defaultRunId(runDir);
    const stopOnSignal = (stop: () => Promise<void>) => {
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { void stop().then(() => process.exit(0)); });
    };
    switch (role) {
      case 'nats': {
        const port = numberOption('--port', v.port, 4222, { min: 1, max: 65535, integer: true });
        const server = await startNatsServer({ runDir, port, host: v.host ?? '127.0.0.1' });
        process.stderr.write(`nats-server on ${server.url}, store ${runDir}/nats/jetstream\n`);
        stopOnSignal(() => server.stop());
        await new Promise<void>((r) => server.process.once('exit', () => r()));
        return server.process.exitCode ?? 1;
      }
      case 'coordinator': {
        const { runCoordinator, shutdownWorkers } = await import('../../../coordinator/coordinator.js');
        const options = trainOptions(v);
        const train = dataSpec('--train', v.train, v['train-features']);
        const test = dataSpec('--test', v.test, v['test-features']);
        let config;
        let data: DataSpecs | undefined;
        if (train !== undefined && test !== undefined) {
          const abs = (d: typeof train): typeof train => (typeof d === 'string' ? resolve(d) : 'xc' in d ? { xc: resolve(d.xc) } : { features: resolve(d.features), labels: resolve(d.labels) });
          data = { train: abs(train), test: abs(test) };
          const dims = dataDims(await loadDataset(data.train), await loadDataset(data.test));
          config = resolveTrainConfig(options, dims);
        }
        const result = await runCoordinator({
          url, runId, runDir, config, data,
          maxAhead: numberOption('--max-ahead', v['max-ahead'], 16, { min: 1, integer: true }),
          requestTimeoutSeconds: numberOption('--request-timeout', v['request-timeout'], 30, { min: 1 }),
          featureDtype: choiceOption<FeatureDtype>('--features', v.features, 'float32', ['float32', 'float16']),
        });
        await shutdownWorkers(url, runId, result.workers).catch(() => undefined);
        process.exitCode = doneExitCode();
        process.stdout.write(`${runDir}: ${result.history.length} epochs, stopped by ${result.stoppedBy}`
          + (result.best ? `; best epoch ${result.best.epoch}: P@1 ${(100 * result.best.metrics['P@1']).toFixed(2)}, P@3 ${(100 * result.best.metrics['P@3']).toFixed(2)}` : '') + '\n');
        return doneExitCode();
      }
      case 'encoder': {
        const { runEncoder } = await import('../../encoder/encoder.js');
        await runEncoder({ url, runId, statsFile: statsPath(runDir, 'encoder') });
        // The run is over: exit now rather than wait for lingering handles.
        process.exit(doneExitCode());
      }
      case 'worker': {
        const { runWorker } = await import('../../../workers/worker.js');
        const shard = numberOption('--shard', v.shard, NaN, { min: 0, integer: true });
        if (!Number.isInteger(shard)) throw new OptionError('--shard', 'is required (0-based shard index)');
        await runWorker({
          url, runId, runDir, shard,
          device: choiceOption<Device>('--device', v.device, 'auto', ['cpu', 'cuda', 'auto']),
          threads: v.threads === undefined ? undefined : numberOption('--threads', v.threads, 0, { min: 1, max: 1024, integer: true }),
          statsFile: statsPath(runDir, `worker-${shard}`),
          checkpointEvery: numberOption('--checkpoint-every', v['checkpoint-every'], 0, { min: 0, integer: true }),
          checkpointSeconds: numberOption('--checkpoint-seconds', v['checkpoint-seconds'], 600, { min: 1 }),
          maxInFlight: numberOption('--in-flight', v['in-flight'], 2, { min: 1, max: 64, integer: true }),
          gpu: { tf32: v.tf32, bf16Gathers: v['bf16-gathers'] },
        });
        // Shut down by the coordinator: exit now (the backend's thread pool would keep the process alive).
        process.exit(doneExitCode());
      }
      default:
        throw new OptionError('<role>', `unknown role '${role}': nats, coordinator, encoder or worker`);
    }
  },
};
