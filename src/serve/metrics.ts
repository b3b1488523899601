/**
 * Prometheus metrics of the gateway (prom-client, one registry per gateway,
 * served on GET /metrics):
 *
 *   xmc_serve_requests_total{route,status}            HTTP and NATS requests by answer status
 *   xmc_serve_request_duration_seconds{route}         request latency, body parsed to answer sent
 *   xmc_serve_request_inputs                          inputs per predict request
 *   xmc_serve_shard_duration_seconds{shard}           gateway -> shard round trip (queueing, batching, top-k)
 *   xmc_serve_batch_rows{shard}                       rows of the worker batch that answered a request
 *   xmc_serve_shard_failures_total{shard,reason}      no_responders | timeout | error
 *   xmc_serve_partial_answers_total                   answers given without every shard (allowPartial)
 *   xmc_serve_process_* / xmc_serve_nodejs_*          prom-client's default process metrics
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

export type FailureReason = 'no_responders' | 'timeout' | 'error';

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'xmc_serve_requests_total', help: 'Requests by route and answer status', labelNames: ['route', 'status'] as const, registers: [this.registry] });
  readonly latency = new Histogram({ name: 'xmc_serve_request_duration_seconds', help: 'Request latency in seconds', labelNames: ['route'] as const, buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly inputs = new Histogram({ name: 'xmc_serve_request_inputs', help: 'Inputs per predict request', buckets: SIZE_BUCKETS, registers: [this.registry] });
  readonly shardLatency = new Histogram({ name: 'xmc_serve_shard_duration_seconds', help: 'Gateway to shard round trip in seconds', labelNames: ['shard'] as const, buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly batchRows = new Histogram({ name: 'xmc_serve_batch_rows', help: 'Rows of the shard worker batch that answered a request', labelNames: ['shard'] as const, buckets: SIZE_BUCKETS, registers: [this.registry] });
  readonly shardFailures = new Counter({ name: 'xmc_serve_shard_failures_total', help: 'Shard requests that got no usable answer', labelNames: ['shard', 'reason'] as const, registers: [this.registry] });
  readonly partial = new Counter({ name: 'xmc_serve_partial_answers_total', help: 'Answers given without every shard (allowPartial)', registers: [this.registry] });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'xmc_serve_' });
  }

  /** Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
