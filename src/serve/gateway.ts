/**
 * The gateway: sends each validated request to every shard worker over NATS
 * (one request per shard, all at once, each with the deadline), merges the
 * shards' top-k lists (mergeTopK, the same merge Model.topK does) and turns
 * the result into the client's answer.
 *
 * A shard that has no worker (NATS "no responders"), does not answer within
 * the deadline, or answers with an error is missing: the request fails with
 * ShardUnavailableError naming the shards (HTTP 503), or, when the client
 * allows a partial answer, is answered from the other shards and flagged
 * partial. A restarted worker subscribes again and is used by the next
 * request; the gateway keeps no membership of its own.
 *
 * The gateway is also a NATS service (`xmc-serve`, endpoint predict on
 * xmc.serve.M.predict) taking the HTTP body's JSON and answering the same
 * JSON, or a service error 400/503 with the message.
 */
import { errors, type NatsConnection } from '@nats-io/transport-node';
import { ServiceError, Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import { XmcError } from '../errors.js';
import { mergeTopK, type TopK } from '../topk/topk.js';
import { ReplyMux } from './replies.js';
import type { ServedRun } from './load.js';
import type { FailureReason, ServeMetrics } from './metrics.js';
import {
  GATEWAY_SERVICE, SERVICE_VERSION, decodeShardReply, encode, isError, parsePredictBody, serveSubjects, shardRequest,
  type Decoded, type PredictInput, type PredictLimits, type ServeSubjects, type ShardPong,
} from './protocol.js';

/** Shards that gave no usable answer; HTTP 503. */
export class ShardUnavailableError extends XmcError {
  constructor(readonly failures: readonly ShardFailure[]) {
    super(failures.map((f) => `shard ${f.shard} ${f.reason}`).join('; '));
  }

  get shards(): number[] {
    return this.failures.map((f) => f.shard);
  }
}

export interface ShardFailure {
  shard: number;
  kind: FailureReason;
  reason: string;
}

export interface GatewayOptions {
  nc: NatsConnection;
  run: ServedRun;
  /** subject name of the model */
  model: string;
  /** deadline of one shard request (ms) */
  timeoutMs: number;
  limits: Omit<PredictLimits, 'inputDim' | 'numLabels'>;
  /** label names, index = label id */
  labelNames?: readonly string[];
  metrics: ServeMetrics;
  log?: (message: string) => void;
}

export interface Prediction {
  labels: number[];
  scores: number[];
  names?: string[];
}

/** The client's answer. */
export interface PredictAnswer {
  k: number;
  partial: boolean;
  /** shards left out of a partial answer */
  missingShards?: number[];
  predictions: Prediction[];
}

export interface ShardHealth {
  shard: number;
  ok: boolean;
  ms?: number;
  labels?: [number, number];
  device?: string;
  pid?: number;
  error?: string;
}

export const DEFAULT_TIMEOUT_MS = 1000;

const utf8 = new TextDecoder();

export class Gateway {
  readonly limits: PredictLimits;
  readonly subjects: ServeSubjects;
  readonly shards: number;
  private service: Service | null = null;
  private publishRound: (() => void)[] = [];
  /** shard requests' replies (one inbox subscription; no Error object per request) */
  private readonly replies: ReplyMux;

  constructor(private readonly options: GatewayOptions) {
    const m = options.run.model;
    this.limits = { ...options.limits, inputDim: m.inputDim, numLabels: m.numLabels };
    this.subjects = serveSubjects(options.model);
    this.shards = m.shards;
    if (options.labelNames && options.labelNames.length !== m.numLabels) {
      throw new Error(`the label map has ${options.labelNames.length} names, the model has ${m.numLabels} labels`);
    }
    this.replies = new ReplyMux(options.nc);
  }

  get metrics(): ServeMetrics {
    return this.options.metrics;
  }

  /** Validates and prepares a request body (see parsePredictBody). */
  parse(body: unknown): Decoded<PredictInput> {
    return parsePredictBody(body, this.limits);
  }

  /** The merged top-k of every shard; ShardUnavailableError when shards are missing and a partial answer is not allowed. */
  async predict(input: PredictInput): Promise<{ topk: TopK; missing: ShardFailure[] }> {
    const { metrics, timeoutMs } = this.options;
    metrics.inputs.observe(input.features.rows);
    const data = encode(shardRequest(input, timeoutMs));
    await this.nextPublishRound();
    const answers = await Promise.all(Array.from({ length: this.shards }, async (_, shard): Promise<TopK | ShardFailure> => {
      const started = performance.now();
      const fail = (kind: FailureReason, reason: string): ShardFailure => {
        metrics.shardFailures.inc({ shard: String(shard), reason: kind });
        return { shard, kind, reason };
      };
      const msg = await this.replies.request(this.subjects.shard(shard), data, timeoutMs);
      if (msg === 'no_responders') return fail('no_responders', 'has no worker (no responders on NATS)');
      if (msg === 'timeout') return fail('timeout', `did not answer within the ${timeoutMs} ms deadline`);
      if (msg === 'closed') return fail('error', 'the gateway is stopping');
      const serviceError = ServiceError.toServiceError(msg);
      if (serviceError) return fail('error', `answered error ${serviceError.code}: ${serviceError.message}`);
      const reply = decodeShardReply(msg.data);
      if (isError(reply)) return fail('error', `sent a bad reply: ${reply.error}`);
      if (reply.type !== 'topk' || reply.rows !== input.features.rows || reply.k !== input.k) {
        return fail('error', `sent a reply for another request (${reply.type === 'topk' ? `${reply.rows} rows, k ${reply.k}` : reply.type})`);
      }
      metrics.shardLatency.observe({ shard: String(shard) }, (performance.now() - started) / 1000);
      metrics.batchRows.observe({ shard: String(shard) }, reply.batchRows);
      return { rows: reply.rows, k: reply.k, labels: reply.labels, scores: reply.scores };
    }));
    const parts = answers.filter((a): a is TopK => 'labels' in a);
    const missing = answers.filter((a): a is ShardFailure => !('labels' in a));
    if (parts.length === 0 || (missing.length > 0 && !input.allowPartial)) throw new ShardUnavailableError(missing);
    if (missing.length > 0) metrics.partial.inc();
    return { topk: parts.length === 1 ? parts[0] : mergeTopK(parts, input.k), missing };
  }

  /**
   * Resolves in the event loop's check phase (setImmediate), together with
   * every request that arrived in the same loop iteration: their shard
   * requests are then published in one go, and nats.js, which flushes its
   * outbound buffer once per microtask round, writes them to the socket in
   * one write instead of one per request. The socket write to NATS is the
   * largest single cost of a request in the gateway's CPU profile
   * (docs/SERVING.md); the wait is nothing, the check phase directly follows
   * the poll phase in which the requests were read.
   */
  private nextPublishRound(): Promise<void> {
    return new Promise((resolve) => {
      if (this.publishRound.push(resolve) > 1) return;
      setImmediate(() => {
        const round = this.publishRound;
        this.publishRound = [];
        for (const go of round) go();
      });
    });
  }

  /** The client's answer for a merged top-k: pads dropped, names added when there is a label map. */
  answer(input: PredictInput, topk: TopK, missing: readonly ShardFailure[]): PredictAnswer {
    const names = this.options.labelNames;
    const predictions: Prediction[] = [];
    for (let r = 0; r < topk.rows; r++) {
      const labels: number[] = [];
      const scores: number[] = [];
      for (let j = 0; j < topk.k; j++) {
        const label = topk.labels[r * topk.k + j];
        if (label < 0) break;
        labels.push(label);
        scores.push(topk.scores[r * topk.k + j]);
      }
      predictions.push(names ? { labels, scores, names: labels.map((l) => names[l]) } : { labels, scores });
    }
    const answer: PredictAnswer = { k: input.k, partial: missing.length > 0, predictions };
    if (missing.length > 0) answer.missingShards = missing.map((m) => m.shard);
    return answer;
  }

  /** Pings every shard (deadline `timeoutMs`, default the request deadline capped at 1 s). */
  async health(timeoutMs = Math.min(this.options.timeoutMs, 1000)): Promise<{ ok: boolean; shards: ShardHealth[] }> {
    const ping = encode({ type: 'ping' });
    const shards = await Promise.all(Array.from({ length: this.shards }, async (_, shard): Promise<ShardHealth> => {
      const started = performance.now();
      try {
        const msg = await this.options.nc.request(this.subjects.shard(shard), ping, { timeout: timeoutMs });
        const reply = decodeShardReply(msg.data);
        if (isError(reply) || reply.type !== 'pong') return { shard, ok: false, error: isError(reply) ? reply.error : 'not a pong' };
        const p = reply as ShardPong;
        return { shard, ok: true, ms: Math.round((performance.now() - started) * 100) / 100, labels: [p.labelStart, p.labelEnd], device: p.device, pid: p.pid };
      } catch (err) {
        return { shard, ok: false, error: isNoResponders(err) ? 'no worker (no responders)' : isTimeout(err) ? `no answer within ${timeoutMs} ms` : (err as Error).message };
      }
    }));
    return { ok: shards.every((s) => s.ok), shards };
  }

  /** Registers the NATS service `xmc-serve` (JSON requests on xmc.serve.M.predict). */
  async startService(): Promise<Service> {
    const { metrics } = this.options;
    this.service = await new Svcm(this.options.nc).add({
      name: GATEWAY_SERVICE, version: SERVICE_VERSION,
      description: `xmc inference gateway: top-k labels merged over ${this.shards} shard(s) of model ${this.options.model}`,
      metadata: { model: this.options.model, shards: String(this.shards), inputDim: String(this.limits.inputDim), labels: String(this.limits.numLabels) },
    });
    const handle = async (msg: ServiceMsg): Promise<void> => {
      const started = performance.now();
      const done = (status: number) => {
        metrics.requests.inc({ route: 'nats', status: String(status) });
        metrics.latency.observe({ route: 'nats' }, (performance.now() - started) / 1000);
      };
      let body: unknown;
      try {
        body = JSON.parse(utf8.decode(msg.data));
      } catch (err) {
        msg.respondError(400, `the request is not JSON: ${(err as Error).message}`);
        done(400);
        return;
      }
      const input = this.parse(body);
      if (isError(input)) {
        msg.respondError(400, input.error);
        done(400);
        return;
      }
      try {
        const { topk, missing } = await this.predict(input);
        msg.respond(JSON.stringify(this.answer(input, topk, missing)));
        done(200);
      } catch (err) {
        const status = err instanceof ShardUnavailableError ? 503 : 500;
        msg.respondError(status, (err as Error).message);
        done(status);
      }
    };
    this.service.addEndpoint('predict', {
      subject: this.subjects.predict,
      handler: (err, msg) => {
        if (err) { this.options.log?.(`gateway service: ${err.message}`); return; }
        void handle(msg);
      },
    });
    await this.options.nc.flush();
    return this.service;
  }

  async stop(): Promise<void> {
    await this.service?.stop().catch(() => undefined);
    this.service = null;
    this.replies.close();
  }
}

function causes(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e = err; e && out.length < 5; e = (e as { cause?: unknown }).cause) out.push(e);
  return out;
}

function isNoResponders(err: unknown): boolean {
  return causes(err).some((e) => e instanceof errors.NoRespondersError || (e instanceof errors.RequestError && e.isNoResponders()));
}

function isTimeout(err: unknown): boolean {
  return causes(err).some((e) => e instanceof errors.TimeoutError);
}
