/**
 * The inference service end to end on one host, workers in this process: a
 * real nats-server, 2 shard workers of a bibtex model, the gateway and HTTP.
 * Answers are compared with `xmc predict` on the same rows.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Svcm } from '@nats-io/services';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CsrMatrix } from '../src/data/types.js';
import { writeNpy } from '../src/io/npy.js';
import { connectServe } from '../src/serve/connect.js';
import { GATEWAY_SERVICE, SHARD_SERVICE } from '../src/serve/protocol.js';
import { startLocalService, type LocalService } from '../src/serve/service.js';
import { ensureBuilt, haveNats } from './dist-helpers.js';
import { bibtexTest, dataDir, denseInput, expectSamePrediction, haveBibtex, sparseInput, trainBibtex, xmcPredict, type Predicted } from './serve-helpers.js';

const N = 48;
const run = describe.skipIf(!haveNats || !haveBibtex);
if (!haveNats || !haveBibtex) console.warn('serve tests skipped: need nats-server on PATH and ../shared/data/bibtex_{train,test}.txt');

run('serve - one host, workers in process', () => {
  let dir: string;
  let runDir: string;
  let test: CsrMatrix;
  let expectedSparse: Predicted[];
  let expectedDense: Predicted[];
  let svc: LocalService;
  let nc: NatsConnection;

  const post = async (body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${svc.url}/v1/predict`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: res.status, body: await res.json() as Record<string, unknown> };
  };
  const shardRequests = async (): Promise<number> => {
    let n = 0;
    for await (const s of await new Svcm(nc).client({ strategy: 'timer', maxWait: 300 }).stats(SHARD_SERVICE)) {
      if (s.metadata?.model === svc.model) n += (s.endpoints ?? []).reduce((a, e) => a + e.num_requests, 0);
    }
    return n;
  };

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'xmc-serve-'));
    runDir = join(dir, 'bibtex2');
    await trainBibtex(runDir);
    test = await bibtexTest();
    expectedSparse = xmcPredict(['--run', runDir, '--data', join(dataDir, 'bibtex_test.txt'), '--k', '5', '--out', join(dir, 'sparse.txt')]).slice(0, N);
    const dense = new Float32Array(N * test.cols);
    for (let r = 0; r < N; r++) dense.set(denseInput(test, r), r * test.cols);
    await writeNpy(join(dir, 'dense.npy'), { kind: 'dense', rows: N, cols: test.cols, data: dense });
    expectedDense = xmcPredict(['--run', runDir, '--features', join(dir, 'dense.npy'), '--k', '7', '--out', join(dir, 'dense.txt')]);
    svc = await startLocalService({ runDir, workers: 'in-process', device: 'cpu', threads: 2, timeoutMs: 2000, batch: { maxInFlight: 2 }, http: { port: 0 }, limits: { maxK: 50, maxInputs: 16 } });
    nc = await connectServe(svc.natsUrl, 'test-client');
  });

  afterAll(async () => {
    await nc?.close();
    await svc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serve - concurrent sparse requests (single and batched) equal xmc predict', async () => {
    const singles = Array.from({ length: 32 }, (_, r) => post({ inputs: [sparseInput(test, r)], k: 5 }));
    const batched = post({ inputs: Array.from({ length: N - 32 }, (_, i) => sparseInput(test, 32 + i)), k: 5 });
    const answers = await Promise.all([...singles, batched]);
    const got: Predicted[] = [];
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body.partial).toBe(false);
      got.push(...(a.body.predictions as Predicted[]));
    }
    expect(got.length).toBe(N);
    for (let r = 0; r < N; r++) {
      expectSamePrediction(got[r], expectedSparse[r], `row ${r}`);
    }
  });

  it('serve - dense inputs equal xmc predict on the same rows (.npy), k = 7', async () => {
    const answers = await Promise.all([0, 16, 32].map((start) => post({ inputs: Array.from({ length: 16 }, (_, i) => denseInput(test, start + i)), k: 7 })));
    const got = answers.flatMap((a) => (expect(a.status).toBe(200), a.body.predictions as Predicted[]));
    for (let r = 0; r < N; r++) {
      expectSamePrediction(got[r], expectedDense[r], `row ${r}`);
    }
  });

  it('serve - unsorted sparse indices and a default k give the sorted row\'s answer', async () => {
    const s = sparseInput(test, 3);
    const order = s.indices.map((_, i) => i).reverse();
    const a = await post({ inputs: [{ indices: order.map((i) => s.indices[i]), values: order.map((i) => s.values[i]) }] });
    expect(a.status).toBe(200);
    expect(a.body.k).toBe(5);
    expect((a.body.predictions as Predicted[])[0].labels).toEqual(expectedSparse[3].labels);
  });

  it('serve - bad input gives 400 naming the field, and never reaches a worker', async () => {
    const F = test.cols;
    const before = await shardRequests();
    const cases: [unknown, RegExp][] = [
      [{ inputs: [[1, 2, 3]] }, /inputs\[0\] has 3 values, the model takes 1836/],
      [{ inputs: [{ indices: [0, F] }] }, /inputs\[0\]\.indices\[1\] = 1836 is out of range \[0, 1836\)/],
      [{ inputs: [{ indices: [4, 4] }] }, /inputs\[0\]\.indices\[1\] = 4 repeats/],
      [{ inputs: [{ indices: [1, 2], values: [1] }] }, /inputs\[0\]\.values has 1 entries, indices has 2/],
      [{ inputs: [{ indices: [1], values: [1e39] }] }, /inputs\[0\]\.values\[0\] = 1e\+39 does not fit a float32/],
      [{ inputs: [{ indices: [1], values: ['x'] }] }, /inputs\[0\]\.values\[0\] must be a number/],
      [{ inputs: [sparseInput(test, 0)], k: 0 }, /k must be >= 1/],
      [{ inputs: [sparseInput(test, 0)], k: 51 }, /k must be <= 50/],
      [{ inputs: [sparseInput(test, 0)], k: '5' }, /k must be integer/],
      [{ inputs: [sparseInput(test, 0)], k: 2.5 }, /k must be integer/],
      [{ inputs: [] }, /inputs must NOT have fewer than 1 items/],
      [{ inputs: Array.from({ length: 17 }, () => sparseInput(test, 0)) }, /inputs must NOT have more than 16 items/],
      [{ k: 5 }, /inputs is required/],
      [{ inputs: [sparseInput(test, 0)], extra: 1 }, /unknown field 'extra'/],
      [{ inputs: [sparseInput(test, 0), denseInput(test, 1)] }, /inputs\[1\] must be a sparse \{indices, values\} object like inputs\[0\]/],
      [{ inputs: [sparseInput(test, 0)], allowPartial: 'yes' }, /allowPartial must be boolean/],
      ['{"inputs": [[NaN]]}', /not valid JSON/],
      ['{"inputs": [[1e400]]}', /inputs\[0\] has 1 values/],
      [`{"inputs": [${JSON.stringify(denseInput(test, 0)).replace(/^\[0,/, '[1e400,')}]}`, /inputs\[0\]\[0\] is Infinity: values must be finite/],
      [{ inputs: [denseInput(test, 0).map((v, i) => (i === 7 ? 'a' : v))] }, /inputs\[0\]\[7\] must be a number, got the string "a"/],
    ];
    for (const [body, message] of cases) {
      const a = await post(body);
      expect(a.status, JSON.stringify(a.body)).toBe(400);
      expect(a.body.error).toBe('bad_request');
      expect(a.body.message).toMatch(message);
    }
    expect(await shardRequests()).toBe(before);
  });

  it('serve - a body over the size limit gives 400', async () => {
    const big = JSON.stringify({ inputs: Array.from({ length: 16 }, () => new Array(test.cols).fill(0.123456789)) });
    expect(big.length).toBeGreaterThan(100_000);
    const small = await startLocalService({ runDir, natsUrl: svc.natsUrl, model: 'small-body', workers: 'in-process', device: 'cpu', threads: 1, http: { port: 0, bodyLimit: 100_000 } });
    try {
      const res = await fetch(`${small.url}/v1/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).toMatch(/larger than the limit of 100000 bytes/);
    } finally {
      await small.stop();
    }
  });

  it('serve - /healthz, /metrics, and NATS discovery and the gateway NATS endpoint', async () => {
    const h = await fetch(`${svc.url}/healthz`);
    expect(h.status).toBe(200);
    const health = await h.json() as { status: string; shards: { shard: number; ok: boolean; labels: number[] }[] };
    expect(health.status).toBe('ok');
    expect(health.shards.map((s) => [s.shard, s.ok, s.labels])).toEqual([[0, true, [0, 79]], [1, true, [79, 159]]]);

    const m = await (await fetch(`${svc.url}/metrics`)).text();
    expect(m).toMatch(/xmc_serve_requests_total\{route="\/v1\/predict",status="200"\} \d+/);
    expect(m).toMatch(/xmc_serve_requests_total\{route="\/v1\/predict",status="400"\} \d+/);
    expect(m).toMatch(/xmc_serve_request_duration_seconds_bucket\{le="0.02",route="\/v1\/predict"\} \d+/);
    expect(m).toMatch(/xmc_serve_batch_rows_count\{shard="0"\} \d+/);
    expect(m).toMatch(/xmc_serve_shard_duration_seconds_count\{shard="1"\} \d+/);
    expect(m).toMatch(/xmc_serve_request_inputs_bucket/);

    const client = new Svcm(nc).client({ strategy: 'timer', maxWait: 300 });
    const infos = [];
    for await (const i of await client.info()) infos.push(i);
    const mine = infos.filter((i) => i.metadata?.model === svc.model);
    expect(mine.filter((i) => i.name === SHARD_SERVICE).map((i) => i.metadata?.shard).sort()).toEqual(['0', '1']);
    expect(mine.filter((i) => i.name === GATEWAY_SERVICE).map((i) => i.endpoints[0].subject)).toEqual([`xmc.serve.${svc.model}.predict`]);

    const reply = await nc.request(`xmc.serve.${svc.model}.predict`, JSON.stringify({ inputs: [sparseInput(test, 0)], k: 5 }), { timeout: 5000 });
    const answer = JSON.parse(new TextDecoder().decode(reply.data)) as { predictions: Predicted[] };
    expect(answer.predictions[0].labels).toEqual(expectedSparse[0].labels);
    const bad = await nc.request(`xmc.serve.${svc.model}.predict`, JSON.stringify({ inputs: [[1]] }), { timeout: 5000 });
    expect(bad.headers?.get('Nats-Service-Error-Code')).toBe('400');
    expect(bad.headers?.get('Nats-Service-Error')).toMatch(/inputs\[0\] has 1 values/);
  });

  it('serve - a stopped shard gives 503 naming it, allowPartial answers from the rest, a restarted shard rejoins', async () => {
    await svc.stopShard(1);
    const a = await post({ inputs: [sparseInput(test, 0)], k: 5 });
    expect(a.status).toBe(503);
    expect(a.body.error).toBe('shard_unavailable');
    expect(a.body.shards).toEqual([1]);
    expect(a.body.message).toMatch(/shard 1 has no worker/);
    const h = await fetch(`${svc.url}/healthz`);
    expect(h.status).toBe(503);

    const p = await post({ inputs: [sparseInput(test, 0)], k: 5, allowPartial: true });
    expect(p.status).toBe(200);
    expect(p.body.partial).toBe(true);
    expect(p.body.missingShards).toEqual([1]);
    const labels = (p.body.predictions as Predicted[])[0].labels;
    expect(labels.every((l) => l < 79)).toBe(true);
    // Shard 0's labels of the full answer come first, in the same order.
    const fromShard0 = expectedSparse[0].labels.filter((l) => l < 79);
    expect(labels.slice(0, fromShard0.length)).toEqual(fromShard0);

    await svc.startShard(1);
    const b = await post({ inputs: [sparseInput(test, 0)], k: 5 });
    expect(b.status).toBe(200);
    expect((b.body.predictions as Predicted[])[0].labels).toEqual(expectedSparse[0].labels);
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
  });

  it('serve - a shard that does not answer within the deadline gives 503 naming it', async () => {
    await svc.stopShard(0);
    const silent = nc.subscribe(`xmc.serve.${svc.model}.shard.0`, { callback: () => {} });
    await nc.flush();
    try {
      const started = Date.now();
      const a = await post({ inputs: [sparseInput(test, 0)] });
      expect(a.status).toBe(503);
      expect(a.body.shards).toEqual([0]);
      expect(a.body.message).toMatch(/shard 0 did not answer within the 2000 ms deadline/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    } finally {
      silent.unsubscribe();
      await svc.startShard(0);
    }
    expect((await post({ inputs: [sparseInput(test, 0)] })).status).toBe(200);
  });

  it('serve - label names from a label map', async () => {
    writeFileSync(join(dir, 'labels.txt'), Array.from({ length: 159 }, (_, i) => `label-${i}`).join('\n') + '\n');
    const { readLabelNames } = await import('../src/cli/commands/serve.js');
    expect(() => readLabelNames(join(dir, 'sparse.txt'), 159)).toThrow(/has 2515 names, the model has 159 labels/);
    const named = await startLocalService({ runDir, natsUrl: svc.natsUrl, model: 'named', workers: 'in-process', device: 'cpu', threads: 1, http: { port: 0 }, labelNames: readLabelNames(join(dir, 'labels.txt'), 159) });
    try {
      const res = await fetch(`${named.url}/v1/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [sparseInput(test, 0)], k: 3 }) });
      const body = await res.json() as { predictions: { labels: number[]; names: string[] }[] };
      expect(body.predictions[0].names).toEqual(body.predictions[0].labels.map((l) => `label-${l}`));
    } finally {
      await named.stop();
    }
  });

  it('serve - beyond loopback needs a token; the token is checked', async () => {
    await expect(startLocalService({ runDir, natsUrl: svc.natsUrl, model: 'open', workers: 'in-process', http: { host: '0.0.0.0', port: 0 } }))
      .rejects.toThrow(/option --host: 0\.0\.0\.0 is beyond loopback: give an API token/);
    const locked = await startLocalService({ runDir, natsUrl: svc.natsUrl, model: 'locked', workers: 'in-process', device: 'cpu', threads: 1, http: { port: 0, token: 's3cret' } });
    try {
      const body = JSON.stringify({ inputs: [sparseInput(test, 0)] });
      const headers = { 'content-type': 'application/json' };
      expect((await fetch(`${locked.url}/v1/predict`, { method: 'POST', headers, body })).status).toBe(401);
      expect((await fetch(`${locked.url}/v1/predict`, { method: 'POST', headers: { ...headers, authorization: 'Bearer wrong' }, body })).status).toBe(401);
      expect((await fetch(`${locked.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${locked.url}/healthz`)).status).toBe(200);
      const ok = await fetch(`${locked.url}/v1/predict`, { method: 'POST', headers: { ...headers, authorization: 'Bearer s3cret' }, body });
      expect(ok.status).toBe(200);
    } finally {
      await locked.stop();
    }
  });
});
