/**
 * The whole service on one host (`xmc serve --run DIR`, tests, the bench):
 * a nats-server of its own unless given a URL, one shard worker per shard
 * (child processes `xmc serve worker`, restarted when they die, or in this
 * process on one shared backend), the gateway with its NATS service, and the
 * HTTP server: in this process, or `gateways` gateway processes sharing the
 * port (cluster.ts). Resolves once every shard answers a ping and every
 * gateway listens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Backend } from '../native/backend.js';
import { repoRoot, sleep, startNatsServer, type NatsServerHandle } from '../distributed/nats.js';
import { createDeviceBackend, type Device, type GpuOptions } from '../train/run.js';
import type { BatcherOptions } from './batcher.js';
import { startGatewayCluster, type GatewayCluster } from './cluster.js';
import { checkNatsAuth, connectServe, type NatsAuth } from './connect.js';
import { DEFAULT_TIMEOUT_MS, Gateway } from './gateway.js';
import { startHttp, checkHttpBind, type HttpOptions } from './http.js';
import { readServedRun, type ServedRun } from './load.js';
import { ServeMetrics } from './metrics.js';
import { modelNameOf, type PredictLimits } from './protocol.js';
import { startShardWorker, type ShardWorker } from './shard-worker.js';

export const DEFAULT_LIMITS: Omit<PredictLimits, 'inputDim' | 'numLabels'> = { maxK: 100, defaultK: 5, maxInputs: 256 };

export interface LocalServiceOptions {
  runDir: string;
  /** subject name (default: the run directory's base name) */
  model?: string;
  /** a NATS server to use; default: start one (loopback, a free port) */
  natsUrl?: string;
  natsAuth?: NatsAuth;
  /** 'process' (default): `xmc serve worker` children, restarted when they exit; 'in-process': one shared backend here */
  workers?: 'process' | 'in-process';
  device?: Device;
  /** CPU threads per worker (default: the cores divided among the workers) */
  threads?: number;
  /** CUDA backend options of the workers (--tf32, --bf16-gathers, --int8-topk) */
  gpu?: GpuOptions;
  /** GPUs to spread process workers over (CUDA_VISIBLE_DEVICES = shard mod gpus); 0: leave it unset */
  gpus?: number;
  batch?: Partial<BatcherOptions>;
  timeoutMs?: number;
  limits?: Partial<Omit<PredictLimits, 'inputDim' | 'numLabels'>>;
  labelNames?: readonly string[];
  http?: HttpOptions;
  /** gateway processes sharing the HTTP port (default 1: the gateway runs in this process) */
  gateways?: number;
  /** how long to wait for every shard to answer (ms; default 300 s) */
  readyTimeoutMs?: number;
  log?: (message: string) => void;
}

export interface LocalService {
  url: string;
  natsUrl: string;
  model: string;
  run: ServedRun;
  /** with one gateway: the gateway; with several: this process's gateway for health checks only (no HTTP, no NATS service) */
  gateway: Gateway;
  /** the metrics GET /metrics serves with one gateway; null with several (each process has its own, the primary sums them) */
  metrics: ServeMetrics | null;
  /** the gateway processes' ids (this process's with one gateway) */
  gatewayPids(): number[];
  /** stops shard `shard`'s worker (a process is not restarted until startShard) */
  stopShard(shard: number): Promise<void>;
  /** starts shard `shard`'s worker again */
  startShard(shard: number): Promise<void>;
  stop(): Promise<void>;
}

interface WorkerSlot {
  stop(): Promise<void>;
}

export async function startLocalService(options: LocalServiceOptions): Promise<LocalService> {
  const log = options.log ?? (() => {});
  const run = readServedRun(options.runDir);
  const model = options.model ?? modelNameOf(run.dir);
  const auth = options.natsAuth ?? {};
  checkHttpBind(options.http?.host ?? '127.0.0.1', options.http?.token);
  if (options.natsUrl) checkNatsAuth(options.natsUrl, auth);
  const S = run.model.shards;
  const device = options.device ?? 'auto';
  const threads = options.threads ?? Math.max(1, Math.floor(availableParallelism() / (options.workers === 'in-process' ? 1 : S)));
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    let nats: NatsServerHandle | null = null;
    let natsUrl = options.natsUrl;
    if (!natsUrl) {
      nats = await startNatsServer({ runDir: join(run.dir, 'serve') });
      cleanups.push(() => nats!.stop());
      natsUrl = nats.url;
      log(`nats-server at ${natsUrl} (log ${join(run.dir, 'serve', 'nats', 'nats.log')})`);
    }
    const nc: NatsConnection = await connectServe(natsUrl, `xmc-serve-gateway-${model}`, auth);
    cleanups.push(() => nc.drain());

    // Shard workers.
    let backend: Backend | null = null;
    const slots = new Map<number, WorkerSlot>();
    const startShard = async (shard: number): Promise<void> => {
      if (slots.has(shard)) return;
      if (options.workers === 'in-process') {
        backend ??= createDeviceBackend(device, threads, options.gpu);
        const wnc = await connectServe(natsUrl!, `xmc-serve-shard-${model}-${shard}`, auth);
        let worker: ShardWorker;
        try {
          worker = await startShardWorker({ nc: wnc, runDir: run.dir, shard, model, backend, batch: options.batch, log });
        } catch (err) {
          await wnc.close();
          throw err;
        }
        slots.set(shard, { stop: async () => { await worker.stop(); await wnc.drain().catch(() => undefined); } });
      } else {
        slots.set(shard, superviseWorker(shard, { ...options, runDir: run.dir, model, natsUrl: natsUrl!, device, threads }, log));
      }
    };
    const stopShard = async (shard: number): Promise<void> => {
      const slot = slots.get(shard);
      slots.delete(shard);
      await slot?.stop();
    };
    cleanups.push(async () => {
      await Promise.all([...slots.keys()].map(stopShard));
    });
    for (let s = 0; s < S; s++) await startShard(s);

    const gateways = options.gateways ?? 1;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    const metrics = new ServeMetrics({ processMetrics: gateways === 1 });
    const gateway = new Gateway({ nc, run, model, timeoutMs, limits, labelNames: options.labelNames, metrics, log });
    if (gateways === 1) {
      await gateway.startService();
      cleanups.push(() => gateway.stop());
    }
    await waitReady(gateway, options.readyTimeoutMs ?? 300_000);
    if (gateways === 1) {
      const http = await startHttp(gateway, options.http);
      cleanups.push(() => http.close());
      return { url: http.url, natsUrl, model, run, gateway, metrics, gatewayPids: () => [process.pid], stopShard, startShard, stop: cleanup };
    }
    const group: GatewayCluster = await startGatewayCluster({
      count: gateways, log,
      config: { runDir: run.dir, model, natsUrl, natsAuth: auth, timeoutMs, limits, labelNames: options.labelNames, http: options.http ?? {} },
    });
    cleanups.push(() => group.stop());
    log(`${gateways} gateway processes on ${group.url} (pids ${group.pids().join(', ')})`);
    return { url: group.url, natsUrl, model, run, gateway, metrics: null, gatewayPids: group.pids, stopShard, startShard, stop: cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Waits until every shard answers a ping. */
export async function waitReady(gateway: Gateway, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const h = await gateway.health(500);
    if (h.ok) return;
    if (Date.now() > deadline) {
      throw new Error(`the shards did not all answer within ${timeoutMs / 1000} s: ${h.shards.filter((s) => !s.ok).map((s) => `shard ${s.shard}: ${s.error}`).join('; ')}`);
    }
    await sleep(100);
  }
}

interface ChildOptions {
  runDir: string;
  model: string;
  natsUrl: string;
  natsAuth?: NatsAuth;
  device: Device;
  threads: number;
  gpu?: GpuOptions;
  gpus?: number;
  batch?: Partial<BatcherOptions>;
}

/** `xmc serve worker --shard I` as a child process, restarted (after 1 s) whenever it exits, until stopped. */
function superviseWorker(shard: number, o: ChildOptions, log: (m: string) => void): WorkerSlot {
  const args = [join(repoRoot(), 'bin', 'xmc.js'), 'serve', 'worker', '--run', o.runDir, '--model', o.model, '--nats', o.natsUrl,
    '--shard', String(shard), '--device', o.device, '--threads', String(o.threads)];
  if (o.batch?.maxWaitMs !== undefined) args.push('--max-wait-ms', String(o.batch.maxWaitMs));
  if (o.batch?.maxRows !== undefined) args.push('--max-batch-rows', String(o.batch.maxRows));
  if (o.batch?.maxInFlight !== undefined) args.push('--batches-in-flight', String(o.batch.maxInFlight));
  if (o.gpu?.tf32) args.push('--tf32');
  if (o.gpu?.bf16Gathers) args.push('--bf16-gathers');
  if (o.gpu?.int8TopK) args.push('--int8-topk');
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (o.natsAuth?.token) env.XMC_NATS_TOKEN = o.natsAuth.token;
  if (o.natsAuth?.user) { env.XMC_NATS_USER = o.natsAuth.user; env.XMC_NATS_PASS = o.natsAuth.pass; }
  if (o.gpus && o.gpus > 0) env.CUDA_VISIBLE_DEVICES = String(shard % o.gpus);
  let stopped = false;
  let child: ChildProcess;
  const start = () => {
    child = spawn(process.execPath, args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('exit', (code, signal) => {
      if (stopped) return;
      log(`shard ${shard} worker exited (${signal ?? `code ${code}`}); restarting in 1 s`);
      setTimeout(() => { if (!stopped) start(); }, 1000);
    });
  };
  start();
  return {
    async stop() {
      stopped = true;
      const c = child;
      if (c.exitCode !== null || c.signalCode !== null) return;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    },
  };
}
