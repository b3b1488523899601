// pm2 ecosystem of a distributed run: nats-server, the encoder, the
// coordinator and one worker per GPU (CUDA_VISIBLE_DEVICES=i). README.md
// ("Distributed training") and docs/DISTRIBUTED.md explain it.
//
//   XMC_RUN=runs/a670k XMC_TRAIN=... XMC_TEST=... XMC_TRAIN_ARGS="--setup dense-ffi --epochs 30" \
//     npx pm2 start ecosystem.config.js
//
// Environment:
//   XMC_RUN         run directory (required); the run id is its base name
//   XMC_GPUS        workers = label shards (default: GPUs counted by nvidia-smi, else 1)
//   XMC_NATS_PORT   NATS port (default 4222); XMC_NATS_HOST listen address (default 127.0.0.1)
//   XMC_NATS_URL    connect to this server instead (workers on another host); with it no
//                   nats-server is started here
//   XMC_ROLES       comma list of processes to start here (default nats,encoder,coordinator,workers)
//   XMC_WORKER_FIRST  index of this host's first shard (several hosts; default 0)
//   XMC_TRAIN, XMC_TEST  data (XC text, or labels with XMC_TRAIN_FEATURES / XMC_TEST_FEATURES)
//   XMC_TRAIN_ARGS  further `xmc train` options for a new run (--shards is set from XMC_GPUS)
//   XMC_THREADS     CPU threads per worker (CPU runs)
//   XMC_WORKER_ARGS further `xmc cluster worker` options, e.g. "--tf32 --bf16-gathers"
//
// Written as an ES module with a named `apps` export: this package is
// "type": "module", and pm2 loads the file with require(), which Node >= 20.19
// allows for ES modules without top-level await (it sees the named exports).
import { execFileSync } from 'node:child_process';
import { resolve, basename } from 'node:path';

const env = process.env;
const run = env.XMC_RUN ? resolve(env.XMC_RUN) : null;

function gpuCount() {
  if (env.XMC_GPUS) return Math.max(1, Number.parseInt(env.XMC_GPUS, 10) || 1);
  try {
    return Math.max(1, execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8' }).trim().split('\n').filter((l) => l.startsWith('GPU')).length);
  } catch {
    return 1;
  }
}

function split(args) {
  return (args ?? '').split(/\s+/).filter(Boolean);
}

function buildApps() {
  if (!run) return [];
  const gpus = gpuCount();
  const port = env.XMC_NATS_PORT ?? '4222';
  const host = env.XMC_NATS_HOST ?? '127.0.0.1';
  const url = env.XMC_NATS_URL ?? `nats://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  const roles = new Set(split((env.XMC_ROLES ?? (env.XMC_NATS_URL ? 'workers' : 'nats,encoder,coordinator,workers')).replace(/,/g, ' ')));
  const runId = basename(run).replace(/[^A-Za-z0-9_-]/g, '_');
  const common = ['--run', run, '--nats', url, '--run-id', runId];
  const logs = (name) => ({ out_file: `${run}/logs/${name}.log`, error_file: `${run}/logs/${name}.log`, merge_logs: true, time: true });
  // Exit code 64 (XMC_DONE_EXIT_CODE) means "the run is over": not restarted. Anything else
  // is (pm2 reports a process killed by a signal, kill -9 included, with exit code 0).
  const restarts = { autorestart: true, stop_exit_codes: [64], restart_delay: 1000, max_restarts: 50 };
  const done = { XMC_DONE_EXIT_CODE: '64' };
  const xmc = resolve(import.meta.dirname, 'bin', 'xmc.js');
  const apps = [];
  if (roles.has('nats')) {
    apps.push({
      name: `${runId}-nats`, script: 'nats-server', interpreter: 'none', args: ['-c', resolve(import.meta.dirname, 'config', 'nats.conf')],
      env: { XMC_NATS_HOST: host, XMC_NATS_PORT: port, XMC_NATS_STORE: `${run}/nats/jetstream` },
      ...logs('nats'), autorestart: true, restart_delay: 1000,
    });
  }
  if (roles.has('coordinator')) {
    const data = [];
    if (env.XMC_TRAIN) data.push('--train', env.XMC_TRAIN);
    if (env.XMC_TRAIN_FEATURES) data.push('--train-features', env.XMC_TRAIN_FEATURES);
    if (env.XMC_TEST) data.push('--test', env.XMC_TEST);
    if (env.XMC_TEST_FEATURES) data.push('--test-features', env.XMC_TEST_FEATURES);
    apps.push({ name: `${runId}-coordinator`, script: xmc, args: ['cluster', 'coordinator', ...common, ...data, '--shards', String(gpus), ...split(env.XMC_TRAIN_ARGS)], env: done, ...logs('coordinator'), ...restarts });
  }
  if (roles.has('encoder')) {
    apps.push({ name: `${runId}-encoder`, script: xmc, args: ['cluster', 'encoder', ...common], env: done, ...logs('encoder'), ...restarts });
  }
  if (roles.has('workers')) {
    const first = Number.parseInt(env.XMC_WORKER_FIRST ?? '0', 10);
    const local = env.XMC_WORKER_FIRST ? Number.parseInt(env.XMC_LOCAL_GPUS ?? String(gpus), 10) : gpus;
    for (let i = 0; i < local; i++) {
      const shard = first + i;
      const threads = env.XMC_THREADS ? ['--threads', env.XMC_THREADS] : [];
      apps.push({
        name: `${runId}-worker-${shard}`, script: xmc, args: ['cluster', 'worker', ...common, '--shard', String(shard), ...threads, ...split(env.XMC_WORKER_ARGS)],
        env: { CUDA_VISIBLE_DEVICES: String(i), ...done }, ...logs(`worker-${shard}`), ...restarts,
      });
    }
  }
  return apps;
}

export const apps = buildApps();
