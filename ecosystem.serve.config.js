// pm2 ecosystem of the inference service (docs/SERVING.md): nats-server, one
// shard worker per GPU (CUDA_VISIBLE_DEVICES=i; on a host without GPUs, one
// CPU worker per shard) and the gateway (NATS service + HTTP), the latter
// as one pm2 app in fork mode running `xmc serve gateway --gateways N`: its
// own node:cluster primary forks the N gateway processes that share the port.
//
// Why not pm2's cluster mode (exec_mode 'cluster', instances N): the pm2
// daemon would be the cluster primary, and /metrics needs a primary that
// sums the processes' metrics (prom-client's AggregatorRegistry; under pm2
// each instance would report its own counts only). `xmc serve gateway
// --gateways N` is its own primary and does that; bin/xmc.js, an ES module,
// runs in pm2's fork mode as it does from a shell.
//
//   XMC_SERVE=runs/a670k npx pm2 start ecosystem.serve.config.js
//
// Environment:
//   XMC_SERVE        run directory to serve (required): single-process or distributed run
//   XMC_SHARDS       shards of the run (default: read from RUN/config.json); one worker each
//   XMC_GPUS         GPUs to spread the workers over (default: counted by nvidia-smi, else 0 = CPU)
//   XMC_NATS_PORT    port of the nats-server started here (default 4222, loopback only)
//   XMC_NATS_URL     use this NATS server instead (no nats-server started here); credentials
//                    in XMC_NATS_TOKEN or XMC_NATS_USER/XMC_NATS_PASS (required beyond loopback)
//   XMC_ROLES        comma list of processes to start here (default nats,workers,gateway)
//   XMC_SERVE_HOST   HTTP address (default 127.0.0.1); beyond loopback XMC_SERVE_TOKEN is required
//   XMC_SERVE_PORT   HTTP port (default 8080)
//   XMC_GATEWAYS     gateway processes sharing the port (default: min(4, cores / 2) with GPUs, else 1)
//   XMC_SERVE_ARGS   further `xmc serve gateway` options (--timeout-ms, --max-k, --labels FILE, ...)
//   XMC_WORKER_ARGS  further `xmc serve worker` options (--max-wait-ms, --max-batch-rows, --threads)
//
// Same form as ecosystem.config.js: an ES module with a named `apps` export.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve, basename, join } from 'node:path';

const env = process.env;
const run = env.XMC_SERVE ? resolve(env.XMC_SERVE) : null;

function gpuCount() {
  if (env.XMC_GPUS !== undefined) return Math.max(0, Number.parseInt(env.XMC_GPUS, 10) || 0);
  try {
    return execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8' }).trim().split('\n').filter((l) => l.startsWith('GPU')).length;
  } catch {
    return 0;
  }
}

const split = (args) => (args ?? '').split(/\s+/).filter(Boolean);

function buildApps() {
  if (!run) return [];
  const shards = env.XMC_SHARDS ? Number.parseInt(env.XMC_SHARDS, 10) : JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).config.model.shards;
  const gpus = gpuCount();
  const port = env.XMC_NATS_PORT ?? '4222';
  const url = env.XMC_NATS_URL ?? `nats://127.0.0.1:${port}`;
  const roles = new Set(split((env.XMC_ROLES ?? (env.XMC_NATS_URL ? 'workers,gateway' : 'nats,workers,gateway')).replace(/,/g, ' ')));
  const model = basename(run).replace(/[^A-Za-z0-9_-]/g, '_');
  const common = ['--run', run, '--model', model, '--nats', url];
  const logs = (name) => ({ out_file: `${run}/logs/serve-${name}.log`, error_file: `${run}/logs/serve-${name}.log`, merge_logs: true, time: true });
  const restarts = { autorestart: true, restart_delay: 1000, max_restarts: 50 };
  const xmc = resolve(import.meta.dirname, 'bin', 'xmc.js');
  const apps = [];
  if (roles.has('nats')) {
    apps.push({
      name: `${model}-serve-nats`, script: 'nats-server', interpreter: 'none', args: ['-c', resolve(import.meta.dirname, 'config', 'nats.conf')],
      env: { XMC_NATS_HOST: '127.0.0.1', XMC_NATS_PORT: port, XMC_NATS_STORE: `${run}/serve/nats/jetstream` },
      ...logs('nats'), ...restarts,
    });
  }
  if (roles.has('workers')) {
    for (let shard = 0; shard < shards; shard++) {
      const device = gpus > 0 ? ['--device', 'cuda'] : ['--device', 'cpu'];
      apps.push({
        name: `${model}-serve-worker-${shard}`, script: xmc, args: ['serve', 'worker', ...common, '--shard', String(shard), ...device, ...split(env.XMC_WORKER_ARGS)],
        env: gpus > 0 ? { CUDA_VISIBLE_DEVICES: String(shard % gpus) } : {}, ...logs(`worker-${shard}`), ...restarts,
      });
    }
  }
  if (roles.has('gateway')) {
    // The same default as `xmc serve` all-in-one (src/serve/cluster.ts defaultGateways).
    const gateways = env.XMC_GATEWAYS ?? String(gpus > 0 ? Math.max(1, Math.min(4, Math.floor(availableParallelism() / 2))) : 1);
    apps.push({
      name: `${model}-serve-gateway`, script: xmc, exec_mode: 'fork',
      args: ['serve', 'gateway', ...common, '--host', env.XMC_SERVE_HOST ?? '127.0.0.1', '--port', env.XMC_SERVE_PORT ?? '8080', '--gateways', gateways, ...split(env.XMC_SERVE_ARGS)],
      // pm2 stops the primary with SIGINT; it stops its gateway processes before it exits.
      kill_timeout: 8000,
      ...logs('gateway'), ...restarts,
    });
  }
  return apps;
}

export const apps = buildApps();
