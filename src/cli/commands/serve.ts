/**
 * `xmc serve`: the sharded top-k inference service (docs/SERVING.md).
 *
 *   xmc serve --run DIR             everything on one host (nats-server, shard workers, gateway + HTTP)
 *   xmc serve worker --shard I ...  one shard worker (pm2: one per GPU)
 *   xmc serve gateway ...           the gateway: NATS service and HTTP
 */
import { readFileSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Command } from '../command.js';
import { choiceOption, numberOption, parseOptions } from '../command.js';
import { OptionError } from '../../errors.js';
import { logger } from '../../distributed/nats.js';
import { checkGpuOptions, type Device, type GpuOptions } from '../../train/run.js';
import type { BatcherOptions } from '../../serve/batcher.js';
import { defaultGateways, startGatewayCluster } from '../../serve/cluster.js';
import { checkNatsAuth, connectServe, natsAuthFrom } from '../../serve/connect.js';
import { DEFAULT_TIMEOUT_MS, Gateway } from '../../serve/gateway.js';
import { DEFAULT_BODY_LIMIT, startHttp, checkHttpBind, type HttpOptions } from '../../serve/http.js';
import { readServedRun } from '../../serve/load.js';
import { cudaUnavailableReason } from '../../native/cuda-backend.js';
import { ServeMetrics } from '../../serve/metrics.js';
import { modelNameOf } from '../../serve/protocol.js';
import { DEFAULT_LIMITS, startLocalService, waitReady } from '../../serve/service.js';
import { DEFAULT_BATCH, startShardWorker } from '../../serve/shard-worker.js';

const HELP = `usage: xmc serve [worker|gateway] --run RUN_DIR [options]

Serves a trained run (single-process \`xmc train\`, any --shards, or a
distributed \`xmc cluster\` run): each request goes to every label shard's
worker over NATS and their top-k lists are merged. docs/SERVING.md has the API.

roles:
  (none)        all on this host: nats-server (unless --nats), one worker per shard
                (child processes, restarted when they die; --in-process: in this
                process), the gateway; prints the URL once every shard answers
  worker        shard worker --shard I (0-based)
  gateway       the gateway: NATS service xmc-serve and HTTP

common:
  --run RUN_DIR          the run directory
  --model NAME           name in NATS subjects (default: RUN_DIR's base name)
  --nats URL             NATS server (worker/gateway: default nats://127.0.0.1:4222)
  --nats-token T         NATS token (or XMC_NATS_TOKEN)
  --nats-user U --nats-pass P   NATS user/password (or XMC_NATS_USER, XMC_NATS_PASS)
                         a NATS server beyond loopback needs one of them

worker:
  --shard I              the label shard
  --device cpu|cuda|auto (default auto)
  --threads T            CPU threads (default: the cores, divided among the shards all-in-one)
  --max-wait-ms MS       longest wait for more requests before a batch goes (default ${DEFAULT_BATCH.maxWaitMs})
  --max-batch-rows N     rows that fill a batch (default ${DEFAULT_BATCH.maxRows})
  --batches-in-flight N  batches a worker runs at once (default 1; 2 packs the next batch while one computes)
  --in-process           (all-in-one) workers in this process, one shared backend
  --gpus G               (all-in-one) spread the workers over G GPUs (CUDA_VISIBLE_DEVICES = shard mod G)
  --tf32                 CUDA: dense products on TF32 tensor cores (about 1e-3 relative error)
  --bf16-gathers         CUDA: the fused top-k (k <= 16) reads its input as bfloat16
  --int8-topk            the top-k (k <= 16) rounds its input to int8 with a scale per row: on
                         CUDA faster (it found 98% of the float32 top-5 labels in docs/PERFORMANCE.md);
                         on the CPU the same rounding, to check what it costs in accuracy

gateway:
  --gateways N           gateway processes sharing the HTTP port (node:cluster; /metrics sums them);
                         default all-in-one: min(4, cores/2) when the workers run on CUDA, else 1;
                         \`xmc serve gateway\`: 1
  --host H               HTTP address (default 127.0.0.1); beyond loopback needs --token
  --port P               HTTP port (default 8080; 0: any free port)
  --token T              API token, 'Authorization: Bearer T' (or XMC_SERVE_TOKEN)
  --timeout-ms MS        deadline of a shard's answer (default ${DEFAULT_TIMEOUT_MS}); past it: 503
  --max-k K              largest k a client may ask for (default ${DEFAULT_LIMITS.maxK})
  --k K                  k when a request gives none (default ${DEFAULT_LIMITS.defaultK})
  --max-inputs N         inputs per request (default ${DEFAULT_LIMITS.maxInputs})
  --body-limit BYTES     largest request body (default ${DEFAULT_BODY_LIMIT})
  --labels FILE          label names, one per line (line i = label i): answers get names`;

const OPTIONS = {
  run: { type: 'string' }, model: { type: 'string' }, nats: { type: 'string' },
  'nats-token': { type: 'string' }, 'nats-user': { type: 'string' }, 'nats-pass': { type: 'string' },
  shard: { type: 'string' }, device: { type: 'string' }, threads: { type: 'string' },
  'max-wait-ms': { type: 'string' }, 'max-batch-rows': { type: 'string' }, 'batches-in-flight': { type: 'string' }, 'in-process': { type: 'boolean' }, gpus: { type: 'string' },
  tf32: { type: 'boolean' }, 'bf16-gathers': { type: 'boolean' }, 'int8-topk': { type: 'boolean' },
  host: { type: 'string' }, port: { type: 'string' }, token: { type: 'string' }, 'timeout-ms': { type: 'string' },
  'max-k': { type: 'string' }, k: { type: 'string' }, 'max-inputs': { type: 'string' }, 'body-limit': { type: 'string' },
  labels: { type: 'string' }, gateways: { type: 'string' },
} as const;

type Values = ReturnType<typeof parseOptions<typeof OPTIONS>>['values'];

function batchOptions(v: Values): Partial<BatcherOptions> {
  const b: Partial<BatcherOptions> = {};
  if (v['max-wait-ms'] !== undefined) b.maxWaitMs = numberOption('--max-wait-ms', v['max-wait-ms'], 0, { min: 0, max: 1000 });
  if (v['max-batch-rows'] !== undefined) b.maxRows = numberOption('--max-batch-rows', v['max-batch-rows'], 0, { min: 1, max: 65536, integer: true });
  if (v['batches-in-flight'] !== undefined) b.maxInFlight = numberOption('--batches-in-flight', v['batches-in-flight'], 1, { min: 1, max: 8, integer: true });
  return b;
}

/** The workers' CUDA backend options (--tf32, --bf16-gathers, --int8-topk), refused here with --device cpu. */
function gpuOptions(v: Values, device: Device): GpuOptions {
  const gpu: GpuOptions = { tf32: v.tf32, bf16Gathers: v['bf16-gathers'], int8TopK: v['int8-topk'] };
  checkGpuOptions(device, gpu);
  return gpu;
}

function threadsOption(v: Values): number | undefined {
  return v.threads === undefined ? undefined : numberOption('--threads', v.threads, 0, { min: 1, max: 1024, integer: true });
}

function httpOptions(v: Values): HttpOptions {
  const host = v.host ?? '127.0.0.1';
  const token = v.token ?? process.env.XMC_SERVE_TOKEN;
  checkHttpBind(host, token);
  return {
    host, token,
    port: numberOption('--port', v.port, 8080, { min: 0, max: 65535, integer: true }),
    bodyLimit: numberOption('--body-limit', v['body-limit'], DEFAULT_BODY_LIMIT, { min: 1024, max: 1 << 30, integer: true }),
  };
}

function gatewayOptions(v: Values, numLabels: number) {
  const maxK = numberOption('--max-k', v['max-k'], DEFAULT_LIMITS.maxK, { min: 1, max: 10_000, integer: true });
  const limits = {
    maxK,
    defaultK: numberOption('--k', v.k, Math.min(DEFAULT_LIMITS.defaultK, maxK), { min: 1, max: maxK, integer: true }),
    maxInputs: numberOption('--max-inputs', v['max-inputs'], DEFAULT_LIMITS.maxInputs, { min: 1, max: 1 << 20, integer: true }),
  };
  return {
    limits,
    timeoutMs: numberOption('--timeout-ms', v['timeout-ms'], DEFAULT_TIMEOUT_MS, { min: 1, max: 600_000 }),
    labelNames: v.labels === undefined ? undefined : readLabelNames(v.labels, numLabels),
  };
}

/** --gateways: given, or the default for the device the workers run on. */
function gatewaysOption(v: Values, device: Device | null): number {
  let fallback = 1;
  if (device === 'cuda') fallback = defaultGateways('cuda');
  else if (device === 'auto') fallback = defaultGateways(cudaUnavailableReason() === null ? 'cuda' : 'cpu');
  return numberOption('--gateways', v.gateways, fallback, { min: 1, max: 256, integer: true });
}

/** One name per line, line i naming label i; exactly one per label. */
export function readLabelNames(path: string, numLabels: number): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new OptionError('--labels', `cannot read ${path}: ${(err as Error).message}`);
  }
  const names = text.split(/\r?\n/);
  if (names.length > 0 && names[names.length - 1] === '') names.pop();
  if (names.length !== numLabels) throw new OptionError('--labels', `${path} has ${names.length} names, the model has ${numLabels} labels (one name per line)`);
  return names;
}

/** Resolves on SIGINT/SIGTERM. */
const untilSignal = (): Promise<string> => new Promise((r) => {
  process.once('SIGINT', () => r('SIGINT'));
  process.once('SIGTERM', () => r('SIGTERM'));
});

export const command: Command = {
  help: HELP,
  async run(args: string[]): Promise<number> {
    const role = args[0] && !args[0].startsWith('-') ? args[0] : 'all';
    const rest = role === 'all' ? args : args.slice(1);
    if (!['all', 'worker', 'gateway'].includes(role)) throw new OptionError('role', `'${role}' is not one of worker, gateway (or none: all on this host)`);
    const { values: v } = parseOptions(rest, OPTIONS);
    if (!v.run) throw new OptionError('--run', 'is required (a run directory of `xmc train` or `xmc cluster`)');
    const run = readServedRun(v.run);
    const model = v.model ?? modelNameOf(run.dir);
    const auth = natsAuthFrom(v);
    const device = choiceOption<Device>('--device', v.device, 'auto', ['cpu', 'cuda', 'auto']);

    if (role === 'all') {
      const log = logger('serve');
      const service = await startLocalService({
        runDir: run.dir, model, natsUrl: v.nats, natsAuth: auth, workers: v['in-process'] ? 'in-process' : 'process',
        device, threads: threadsOption(v), gpu: gpuOptions(v, device), gpus: v.gpus === undefined ? undefined : numberOption('--gpus', v.gpus, 0, { min: 0, max: 1024, integer: true }),
        batch: batchOptions(v), http: httpOptions(v), ...gatewayOptions(v, run.model.numLabels), gateways: gatewaysOption(v, device), log,
      });
      const pids = service.gatewayPids();
      process.stdout.write(`xmc serve: listening on ${service.url} (model ${model}: ${run.model.shards} shard(s), ${run.model.inputDim} features, ${run.model.numLabels} labels; `
        + `${pids.length} gateway process${pids.length === 1 ? '' : 'es'}; NATS ${service.natsUrl})\n`);
      const signal = await untilSignal();
      log(`${signal}: stopping`);
      await service.stop();
      return 0;
    }

    const url = v.nats ?? 'nats://127.0.0.1:4222';
    checkNatsAuth(url, auth);
    let nc: NatsConnection;
    if (role === 'worker') {
      if (v.shard === undefined) throw new OptionError('--shard', 'is required for a worker');
      const shard = numberOption('--shard', v.shard, 0, { min: 0, max: run.model.shards - 1, integer: true });
      const log = logger(`serve worker ${shard}`);
      nc = await connectServe(url, `xmc-serve-shard-${model}-${shard}`, auth);
      const worker = await startShardWorker({ nc, runDir: run.dir, shard, model, device, threads: threadsOption(v), gpu: gpuOptions(v, device), batch: batchOptions(v), log });
      const signal = await Promise.race([untilSignal(), nc.closed().then(() => 'the NATS connection closed')]);
      log(`${signal}: stopping`);
      await worker.stop();
    } else {
      const log = logger('serve gateway');
      const http = httpOptions(v);
      const gateways = gatewaysOption(v, null);
      if (gateways > 1) {
        const group = await startGatewayCluster({
          count: gateways, log,
          config: { runDir: run.dir, model, natsUrl: url, natsAuth: auth, http, ...gatewayOptions(v, run.model.numLabels) },
        });
        log(`${gateways} gateway processes listening on ${group.url} (pids ${group.pids().join(', ')}; model ${model}, ${run.model.shards} shard(s))`);
        const signal = await untilSignal();
        log(`${signal}: stopping`);
        await group.stop();
        return 0;
      }
      nc = await connectServe(url, `xmc-serve-gateway-${model}`, auth);
      const gateway = new Gateway({ nc, run, model, metrics: new ServeMetrics(), log, ...gatewayOptions(v, run.model.numLabels) });
      await gateway.startService();
      const server = await startHttp(gateway, http);
      log(`listening on ${server.url} (model ${model}, ${run.model.shards} shard(s))`);
      waitReady(gateway, 300_000).then(() => log('every shard answers'), (err: Error) => log(err.message));
      const signal = await untilSignal();
      log(`${signal}: stopping`);
      await server.close();
      await gateway.stop();
    }
    await nc.drain().catch(() => undefined);
    return 0;
  },
};
