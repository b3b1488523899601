/**
 * A shard worker of the inference service: holds shard I of a trained run
 * (loadServedShard), serves the NATS service `xmc-serve-shard` on
 * xmc.serve.M.shard.I, and answers each request with the top-k of its
 * labels for the request's rows.
 *
 * Concurrent requests are micro-batched (MicroBatcher): their rows go into
 * one [B, F] input (B rounded up to a power of two of at least 16, padded
 * with zero rows: the model's per-size buffers stay few, and see bucketRows) and one top-k pass with the
 * batch's largest k; each request gets its rows and its first k. A request
 * that has waited longer than its timeoutMs (the gateway gave up on it) is
 * dropped unanswered.
 *
 * Rows arrive prepared (L2-normalised) by the gateway; the worker only
 * densifies them, as InputWriter does for `xmc predict`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import type { Backend, FloatTensor } from '../native/backend.js';
import type { ShardModel } from '../model/shard.js';
import { createDeviceBackend, type Device, type GpuOptions } from '../train/run.js';
import { MicroBatcher, type BatcherOptions } from './batcher.js';
import { loadServedShard, type ServedRun } from './load.js';
import {
  SERVICE_VERSION, SHARD_SERVICE, decodeShardRequest, encode, isError, serveSubjects,
  type ShardPong, type ShardPredictRequest, type ShardTopKReply,
} from './protocol.js';

export interface ShardWorkerOptions {
  /** an open connection; the worker subscribes on it and leaves it open when stopped */
  nc: NatsConnection;
  runDir: string;
  shard: number;
  /** subject name of the model (serveSubjects) */
  model: string;
  device?: Device;
  threads?: number;
  /** CUDA backend options (--tf32, --bf16-gathers, --int8-topk) */
  gpu?: GpuOptions;
  /** use this backend instead of creating one from device/threads */
  backend?: Backend;
  batch?: Partial<BatcherOptions>;
  log?: (message: string) => void;
}

export const DEFAULT_BATCH: BatcherOptions = { maxWaitMs: 1, maxRows: 64 };

export interface ShardWorkerStats {
  requests: number;
  batches: number;
  rows: number;
  dropped: number;
}

export interface ShardWorker {
  readonly shard: number;
  readonly run: ServedRun;
  readonly labelStart: number;
  readonly labelEnd: number;
  readonly service: Service;
  stats(): ShardWorkerStats;
  /** stops the service, fails queued requests, waits for the running batch, frees the model */
  stop(): Promise<void>;
}

interface Queued {
  request: ShardPredictRequest;
  arrived: number;
}

/**
 * Rows of the input tensor for a batch of n rows: the smallest power of two
 * >= max(n, 16). Padding to whole tiles of 16 rows keeps every row on the
 * BLAS kernels' full-tile path, where a row's scores do not depend on the
 * batch it is in: on the CPU backend (OpenBLAS) rows in a partial tile come
 * out different in the last bits, and full tiles give the bits that `xmc
 * predict` (batches of 512) gives.
 */
export const MIN_BATCH_ROWS = 16;
const bucketRows = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(MIN_BATCH_ROWS, n)));

export async function startShardWorker(options: ShardWorkerOptions): Promise<ShardWorker> {
  const { nc, shard } = options;
  const log = options.log ?? (() => {});
  const backend = options.backend ?? createDeviceBackend(options.device ?? 'auto', options.threads, options.gpu);
  const { run, model, source } = await loadServedShard(backend, options.runDir, shard);
  const F = run.model.inputDim;
  const batchOptions: BatcherOptions = { ...DEFAULT_BATCH, ...options.batch };
  const stats: ShardWorkerStats = { requests: 0, batches: 0, rows: 0, dropped: 0 };
  const inputs = new Map<number, { tensor: FloatTensor; host: Float32Array }>();
  const running = new Set<Promise<unknown>>();

  const compute = async (items: readonly Queued[]): Promise<(ShardTopKReply | null)[]> => {
    const now = performance.now();
    const live = items.map((q) => now - q.arrived <= q.request.timeoutMs);
    stats.dropped += live.filter((l) => !l).length;
    const rows = items.reduce((n, q, i) => n + (live[i] ? q.request.rows : 0), 0);
    if (rows === 0) return items.map(() => null);
    const B = bucketRows(rows);
    let entry = inputs.get(B);
    if (!entry) {
      entry = { tensor: backend.tensor('float32', [B, F]), host: new Float32Array(B * F) };
      inputs.set(B, entry);
    }
    const host = entry.host;
    host.fill(0);
    let k = 1;
    let row = 0;
    items.forEach((q, i) => {
      if (!live[i]) return;
      const m = q.request;
      k = Math.max(k, m.k);
      if (m.dense) {
        host.set(m.dense, row * F);
      } else {
        const { indptr, indices, values } = m;
        for (let r = 0; r < m.rows; r++) {
          const base = (row + r) * F;
          for (let e = indptr![r]; e < indptr![r + 1]; e++) host[base + indices![e]] = values![e];
        }
      }
      row += m.rows;
    });
    entry.tensor.write(host);
    const top = await model.topK(entry.tensor, k);
    stats.batches++;
    stats.rows += rows;
    row = 0;
    return items.map((q, i) => {
      if (!live[i]) return null;
      const m = q.request;
      const labels = new Int32Array(m.rows * m.k);
      const scores = new Float32Array(m.rows * m.k);
      for (let r = 0; r < m.rows; r++) {
        labels.set(top.labels.subarray((row + r) * k, (row + r) * k + m.k), r * m.k);
        scores.set(top.scores.subarray((row + r) * k, (row + r) * k + m.k), r * m.k);
      }
      row += m.rows;
      return { type: 'topk', shard, rows: m.rows, k: m.k, labels, scores, batchRows: rows };
    });
  };
  const batcher = new MicroBatcher<Queued, ShardTopKReply | null>((items) => {
    const done = compute(items);
    const settled = done.catch(() => undefined);
    running.add(settled);
    void settled.then(() => running.delete(settled));
    return done;
  }, batchOptions, (q) => q.request.rows);

  const pong: ShardPong = {
    type: 'pong', shard, shards: run.model.shards, labelStart: model.labelStart, labelEnd: model.labelEnd, device: backend.kind, pid: process.pid,
  };
  const handle = (err: Error | null, msg: ServiceMsg): void => {
    if (err) {
      log(`subscription error: ${err.message}`);
      return;
    }
    const m = decodeShardRequest(msg.data, F);
    if (isError(m)) {
      log(`bad request dropped: ${m.error}`);
      msg.respondError(400, m.error);
      return;
    }
    if (m.type === 'ping') {
      msg.respond(encode(pong));
      return;
    }
    stats.requests++;
    batcher.submit({ request: m, arrived: performance.now() }).then(
      (reply) => { if (reply) msg.respond(encode(reply)); },
      (failure: unknown) => {
        log(`batch failed: ${(failure as Error).message}`);
        msg.respondError(500, `shard ${shard}: ${(failure as Error).message}`);
      },
    );
  };

  const service = await new Svcm(nc).add({
    name: SHARD_SERVICE,
    version: SERVICE_VERSION,
    description: `xmc inference: top-k of one label shard (model ${options.model})`,
    metadata: {
      model: options.model, shard: String(shard), shards: String(run.model.shards),
      labels: `${model.labelStart}-${model.labelEnd}`, device: backend.kind, run: run.dir,
    },
    statsHandler: async () => ({ ...stats, waiting: batcher.waiting, maxWaitMs: batchOptions.maxWaitMs, maxRows: batchOptions.maxRows }),
  });
  service.addEndpoint('predict', { subject: serveSubjects(options.model).shard(shard), handler: handle });
  await nc.flush(); // the server has the subscription: the shard is reachable when this resolves
  log(`shard ${shard}/${run.model.shards}: labels [${model.labelStart}, ${model.labelEnd}) from ${source} on ${backend.kind}; `
    + `batches of at most ${batchOptions.maxRows} rows, waiting at most ${batchOptions.maxWaitMs} ms, ${batchOptions.maxInFlight ?? 1} in flight`);

  let stopped: Promise<void> | null = null;
  return {
    shard, run, labelStart: model.labelStart, labelEnd: model.labelEnd, service,
    stats: () => ({ ...stats }),
    stop() {
      stopped ??= (async () => {
        await service.stop().catch(() => undefined);
        batcher.close(`shard ${shard} is stopping`);
        await Promise.all(running);
        disposeAll(model, inputs);
      })();
      return stopped;
    },
  };
}

function disposeAll(model: ShardModel, inputs: Map<number, { tensor: FloatTensor }>): void {
  for (const { tensor } of inputs.values()) tensor.dispose();
  inputs.clear();
  model.dispose();
}
