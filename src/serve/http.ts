/**
 * The HTTP face of the gateway (fastify):
 *
 *   POST /v1/predict   {inputs, k?, allowPartial?} -> {k, partial, missingShards?, predictions}
 *   GET  /healthz      every shard pinged: 200 {status: 'ok', ...} or 503 {status: 'unavailable', ...}
 *   GET  /metrics      Prometheus text (ServeMetrics; with several gateway processes, their sum)
 *
 * Errors are JSON {error, message} (and `shards` for 503): 400 bad_request
 * for every input problem (JSON, types, dimension, non-finite values, k out
 * of range, too many inputs, body over the size limit), 401 unauthorized,
 * 503 shard_unavailable naming the shards. Bad requests are answered here
 * and never reach a worker.
 *
 * Binding: loopback by default; any other address requires a token, which
 * every route but /healthz then checks (Authorization: Bearer TOKEN).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { OptionError } from '../errors.js';
import { isLoopback } from './connect.js';
import { Gateway, ShardUnavailableError } from './gateway.js';
import { isError, kLimit } from './protocol.js';

export interface HttpOptions {
  /** default 127.0.0.1 */
  host?: string;
  /** default 8080; 0 picks a free port */
  port?: number;
  /** API token: required when host is not loopback */
  token?: string;
  /** largest request body in bytes */
  bodyLimit?: number;
  /** the text of GET /metrics (default: this process's registry; a process of `--gateways N` asks the cluster primary for every process's sum) */
  metricsText?: () => Promise<string>;
}

export const DEFAULT_BODY_LIMIT = 4 * 1024 * 1024;

/** Refuses a bind beyond loopback without a token. */
export function checkHttpBind(host: string, token: string | undefined): void {
  if (!isLoopback(host) && !token) {
    throw new OptionError('--host', `${host} is beyond loopback: give an API token (--token or XMC_SERVE_TOKEN) so that clients must send 'Authorization: Bearer TOKEN'`);
  }
}

const ERROR_SCHEMA = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' }, shards: { type: 'array', items: { type: 'integer' } } },
} as const;

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** '/inputs/3' -> 'inputs[3]' */
function fieldOf(instancePath: string, missing?: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  if (missing) parts.push(missing);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out || 'the body';
}

export function buildHttpServer(gateway: Gateway, options: HttpOptions = {}): FastifyInstance {
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const metrics = gateway.metrics;
  const app = Fastify({
    bodyLimit,
    logger: false,
    // Types are checked, never coerced ("5" is not a k), and unknown fields are errors, not silently removed.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false, allowUnionTypes: true } },
  });
  const expected = options.token ? digest(options.token) : null;

  // Hooks in callback style: no promise per request (the gateway's per-request cost is what bounds its throughput).
  if (expected) {
    app.addHook('onRequest', (req, reply, done) => {
      if (req.url === '/healthz') return done();
      const header = req.headers.authorization ?? '';
      const m = /^Bearer\s+(.+)$/i.exec(header);
      if (!m || !timingSafeEqual(digest(m[1].trim()), expected)) {
        reply.header('www-authenticate', 'Bearer');
        reply.code(401).send({ error: 'unauthorized', message: m ? 'the API token is wrong' : "this service needs 'Authorization: Bearer TOKEN'" });
        return;
      }
      done();
    });
  }
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unknown';
    metrics.requests.inc({ route, status: String(reply.statusCode) });
    metrics.latency.observe({ route }, reply.elapsedTime / 1000);
    done();
  });

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err.validation) {
      const v = err.validation[0];
      const missing = (v.params as { missingProperty?: string; additionalProperty?: string } | undefined);
      let message: string;
      if (missing?.additionalProperty) message = `unknown field '${fieldOf(v.instancePath, missing.additionalProperty)}' (fields: inputs, k, allowPartial)`;
      else if (missing?.missingProperty) message = `${fieldOf(v.instancePath, missing.missingProperty)} is required`;
      else message = `${fieldOf(v.instancePath)} ${v.message ?? 'is invalid'}`;
      return reply.code(400).send({ error: 'bad_request', message });
    }
    switch (err.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.code(400).send({ error: 'bad_request', message: `the body is larger than the limit of ${bodyLimit} bytes` });
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.code(400).send({ error: 'bad_request', message: 'the body is empty: send a JSON object' });
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.code(400).send({ error: 'bad_request', message: `content type ${JSON.stringify(_req.headers['content-type'] ?? '')} is not supported: send application/json` });
      default:
        break;
    }
    if (err.statusCode === 400) return reply.code(400).send({ error: 'bad_request', message: /JSON/i.test(err.message) ? `the body is not valid JSON: ${err.message}` : err.message });
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    return reply.code(status).send({ error: status === 500 ? 'internal' : 'error', message: err.message });
  });

  const limits = gateway.limits;
  app.post('/v1/predict', {
    schema: {
      body: {
        type: 'object',
        required: ['inputs'],
        additionalProperties: false,
        properties: {
          inputs: { type: 'array', minItems: 1, maxItems: limits.maxInputs, items: { type: ['array', 'object'] } },
          k: { type: 'integer', minimum: 1, maximum: kLimit(limits) },
          allowPartial: { type: 'boolean' },
        },
      },
      response: {
        400: ERROR_SCHEMA,
        503: ERROR_SCHEMA,
        200: {
          type: 'object',
          properties: {
            k: { type: 'integer' },
            partial: { type: 'boolean' },
            missingShards: { type: 'array', items: { type: 'integer' } },
            predictions: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  labels: { type: 'array', items: { type: 'integer' } },
                  scores: { type: 'array', items: { type: 'number' } },
                  names: { type: 'array', items: { type: 'string' } },
                },
              },
            },
          },
        },
      },
    },
  }, async (req, reply) => {
    const input = gateway.parse(req.body);
    if (isError(input)) return reply.code(400).send({ error: 'bad_request', message: input.error });
    try {
      const { topk, missing } = await gateway.predict(input);
      return gateway.answer(input, topk, missing);
    } catch (err) {
      if (err instanceof ShardUnavailableError) {
        return reply.code(503).send({ error: 'shard_unavailable', message: err.message, shards: err.shards });
      }
      throw err;
    }
  });

  app.get('/healthz', async (_req, reply) => {
    const h = await gateway.health();
    const info = { gatewayPid: process.pid, shardCount: gateway.shards, inputDim: limits.inputDim, numLabels: limits.numLabels, maxK: kLimit(limits), maxInputs: limits.maxInputs };
    return reply.code(h.ok ? 200 : 503).send({ status: h.ok ? 'ok' : 'unavailable', ...info, shards: h.shards });
  });

  const metricsText = options.metricsText ?? (() => metrics.text());
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.contentType);
    return metricsText();
  });

  return app;
}

/** Builds and starts the HTTP server; resolves to its URL once it listens. */
export async function startHttp(gateway: Gateway, options: HttpOptions = {}): Promise<{ app: FastifyInstance; url: string; close(): Promise<void> }> {
  const host = options.host ?? '127.0.0.1';
  checkHttpBind(host, options.token);
  const app = buildHttpServer(gateway, options);
  await app.listen({ host, port: options.port ?? 8080 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port ?? 8080;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { app, url: `http://${shown}:${port}`, close: () => app.close() };
}
