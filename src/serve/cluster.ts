/**
 * Several gateway processes on one HTTP port (`--gateways N`, node:cluster).
 *
 * One gateway process spends a fixed CPU time per request (HTTP, JSON of
 * the inputs, validation, msgpack, the NATS write, merge, the JSON answer;
 * 0.3-0.5 ms on the project's 2-core machine, docs/SERVING.md has the
 * measured split), which caps it at a few thousand requests/s whatever the
 * shard workers can do. N processes share the port:
 *
 *   primary          forks N gateway processes (dist/src/serve/gateway-process.js),
 *                    restarts one 1 s after it exits, answers their /metrics
 *                    questions with prom-client's AggregatorRegistry (the sum
 *                    of every process's counters and histograms)
 *   gateway process  its own NATS connection, its own instance of the NATS
 *                    service xmc-serve (instances of one service share the
 *                    endpoint's queue group, so a NATS request goes to one of
 *                    them), its own HTTP server on the shared port (the
 *                    primary hands connections out round-robin)
 *
 * GET /metrics on any process asks the primary over the cluster IPC channel,
 * so every scrape sees the whole service. The primary has no NATS
 * connection and no HTTP server of its own.
 *
 * Messages over the IPC channel (besides prom-client's own):
 *   process -> primary   {type: HELLO}, {type: LISTENING, url}, {type: FAILED, message}, {type: METRICS_REQUEST, id}
 *   primary -> process   {type: CONFIG, config}, {type: METRICS, id, text | error}, {type: STOP}
 * The configuration (credentials included) travels over IPC, never argv.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { AggregatorRegistry } from 'prom-client';
import { logger, repoRoot } from '../distributed/nats.js';
import type { Device } from '../train/run.js';
import { connectServe, type NatsAuth } from './connect.js';
import { Gateway, type GatewayOptions } from './gateway.js';
import { startHttp, type HttpOptions } from './http.js';
import { readServedRun } from './load.js';
import { ServeMetrics } from './metrics.js';

const HELLO = 'xmc-serve:hello';
const CONFIG = 'xmc-serve:config';
const LISTENING = 'xmc-serve:listening';
const FAILED = 'xmc-serve:failed';
const METRICS_REQUEST = 'xmc-serve:metrics-request';
const METRICS = 'xmc-serve:metrics';
const STOP = 'xmc-serve:stop';

/** What a gateway process needs (sent by the primary over IPC): the gateway's own options that can travel as
 * data, and where to find the run, NATS and the HTTP settings. */
export interface GatewayProcessConfig extends Pick<GatewayOptions, 'model' | 'timeoutMs' | 'limits' | 'labelNames'> {
  runDir: string;
  natsUrl: string;
  natsAuth: NatsAuth;
  http: HttpOptions;
}

/**
 * Default gateway processes: min(4, cores / 2) when the workers run on a GPU
 * (the shards are fast and one gateway process is the limit), 1 on CPU (the
 * workers need the cores).
 */
export function defaultGateways(device: Exclude<Device, 'auto'>, cores = availableParallelism()): number {
  return device === 'cuda' ? Math.max(1, Math.min(4, Math.floor(cores / 2))) : 1;
}

export interface GatewayClusterOptions {
  /** gateway processes (>= 1) */
  count: number;
  config: GatewayProcessConfig;
  log?: (message: string) => void;
}

export interface GatewayCluster {
  /** the HTTP URL the processes share */
  url: string;
  /** process ids of the live gateway processes */
  pids(): number[];
  /** stops every gateway process (each closes HTTP, its NATS service and connection) */
  stop(): Promise<void>;
}

/** Path of the gateway process entry (compiled; the processes run dist/). */
export const gatewayProcessEntry = (): string => join(repoRoot(), 'dist', 'src', 'serve', 'gateway-process.js');

/**
 * Forks `count` gateway processes sharing the HTTP port; resolves once every
 * one listens. A process that fails before listening (port taken, bad label
 * map, ...) fails the start; one that exits later is restarted after 1 s.
 * Call in the cluster primary only.
 */
export async function startGatewayCluster(options: GatewayClusterOptions): Promise<GatewayCluster> {
  if (!cluster.isPrimary) throw new Error('startGatewayCluster: call it in the cluster primary');
  const log = options.log ?? (() => {});
  const { count, config } = options;
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`startGatewayCluster: count must be a positive integer, got ${count}`);
  // execArgv is inherited (node --cpu-prof, --max-old-space-size, ... apply to the gateway processes too).
  cluster.setupPrimary({ exec: gatewayProcessEntry(), args: [], silent: false });
  const aggregator = new AggregatorRegistry();
  const mine = new Set<Worker>();
  let stopping = false;
  let url: string | null = null;
  let startup: { listening: number; resolve(): void; reject(err: Error): void } | null = null;

  const onMessage = (worker: Worker, msg: { type?: string; id?: number; url?: string; message?: string }): void => {
    if (!mine.has(worker) || typeof msg !== 'object' || msg === null) return;
    switch (msg.type) {
      case HELLO:
        worker.send({ type: CONFIG, config });
        break;
      case LISTENING:
        url ??= msg.url ?? null;
        if (startup && ++startup.listening === count) startup.resolve();
        break;
      case FAILED:
        log(`gateway process ${worker.process.pid}: ${msg.message}`);
        startup?.reject(new Error(`a gateway process failed to start: ${msg.message}`));
        break;
      case METRICS_REQUEST:
        aggregator.clusterMetrics().then(
          (text) => { if (worker.isConnected()) worker.send({ type: METRICS, id: msg.id, text }); },
          (err: Error) => { if (worker.isConnected()) worker.send({ type: METRICS, id: msg.id, error: err.message }); },
        );
        break;
      default:
        break;
    }
  };
  const onExit = (worker: Worker, code: number | null, signal: string | null): void => {
    if (!mine.delete(worker)) return;
    if (stopping) return;
    const how = signal ?? `code ${code}`;
    if (startup) {
      startup.reject(new Error(`a gateway process exited (${how}) before it listened`));
      return;
    }
    log(`gateway process ${worker.process.pid} exited (${how}); restarting in 1 s`);
    setTimeout(() => { if (!stopping) fork(); }, 1000);
  };
  const fork = (): Worker => {
    const w = cluster.fork({ XMC_SERVE_GATEWAY_PROCESS: '1' });
    mine.add(w);
    return w;
  };
  cluster.on('message', onMessage);
  cluster.on('exit', onExit);

  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await Promise.all([...mine].map(async (w) => {
      if (w.process.exitCode !== null || w.process.signalCode !== null) return;
      const gone = new Promise((r) => w.process.once('exit', r));
      if (w.isConnected()) w.send({ type: STOP });
      else w.process.kill('SIGTERM');
      const timer = setTimeout(() => w.process.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    }));
    mine.clear();
    cluster.off('message', onMessage);
    cluster.off('exit', onExit);
  };

  try {
    await new Promise<void>((resolve, reject) => {
      startup = { listening: 0, resolve, reject };
      for (let i = 0; i < count; i++) fork();
    });
  } catch (err) {
    startup = null;
    await stop();
    throw err;
  }
  startup = null;
  return { url: url!, pids: () => [...mine].flatMap((w) => (w.process.pid === undefined ? [] : [w.process.pid])), stop };
}

/**
 * The body of a gateway process (gateway-process.ts): asks the primary for
 * its configuration, connects, registers its NATS service instance, listens
 * on the shared port, and stops on STOP, SIGINT/SIGTERM or when the primary
 * goes away.
 */
export async function runGatewayProcess(): Promise<never> {
  if (!cluster.isWorker || !process.send) throw new Error('runGatewayProcess: run it as a cluster worker of startGatewayCluster');
  const send = (m: object): void => { if (process.connected) process.send!(m); };
  const pending = new Map<number, { resolve(text: string): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  let nextId = 0;
  let stopRequested!: (why: string) => void;
  const stopSignal = new Promise<string>((r) => { stopRequested = r; });
  let configured!: (config: GatewayProcessConfig) => void;
  const configSent = new Promise<GatewayProcessConfig>((r) => { configured = r; });
  process.on('message', (msg: { type?: string; id?: number; text?: string; error?: string; config?: GatewayProcessConfig }) => {
    if (typeof msg !== 'object' || msg === null) return;
    if (msg.type === CONFIG && msg.config) configured(msg.config);
    else if (msg.type === STOP) stopRequested('asked to stop');
    else if (msg.type === METRICS && msg.id !== undefined) {
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error !== undefined) p.reject(new Error(`the metrics of the gateway processes: ${msg.error}`));
      else p.resolve(msg.text ?? '');
    }
  });
  process.once('SIGINT', () => stopRequested('SIGINT'));
  process.once('SIGTERM', () => stopRequested('SIGTERM'));
  process.once('disconnect', () => stopRequested('the primary went away'));
  send({ type: HELLO });
  const config = await Promise.race([configSent, stopSignal.then(() => null)]);
  if (config === null) process.exit(0);

  const id = cluster.worker!.id;
  const log = logger(`serve gateway ${id} (pid ${process.pid})`);
  // This process's metrics are what the primary's AggregatorRegistry collects.
  const metrics = new ServeMetrics();
  new AggregatorRegistry(); // installs prom-client's answer to the primary's collection requests
  AggregatorRegistry.setRegistries([metrics.registry]);
  const clusterMetrics = (): Promise<string> => new Promise((resolve, reject) => {
    const mid = nextId++;
    const timer = setTimeout(() => {
      pending.delete(mid);
      reject(new Error('the primary did not answer the metrics request within 10 s'));
    }, 10_000);
    pending.set(mid, { resolve, reject, timer });
    send({ type: METRICS_REQUEST, id: mid });
  });

  let code = 0;
  try {
    const run = readServedRun(config.runDir);
    const nc = await connectServe(config.natsUrl, `xmc-serve-gateway-${config.model}-${id}`, config.natsAuth);
    const gateway = new Gateway({ nc, run, model: config.model, timeoutMs: config.timeoutMs, limits: config.limits, labelNames: config.labelNames, metrics, log });
    await gateway.startService();
    const server = await startHttp(gateway, { ...config.http, metricsText: clusterMetrics });
    send({ type: LISTENING, url: server.url });
    const why = await Promise.race([stopSignal, nc.closed().then(() => 'the NATS connection closed')]);
    log(`${why}: stopping`);
    await server.close();
    await gateway.stop();
    await nc.drain().catch(() => undefined);
  } catch (err) {
    log((err as Error).message);
    await new Promise<void>((r) => { if (process.connected) process.send!({ type: FAILED, message: (err as Error).message }, undefined, {}, () => r()); else r(); });
    code = 1;
  }
  for (const p of pending.values()) clearTimeout(p.timer);
  process.exit(code);
}
