/**
 * `xmc serve` as a user runs it: the all-in-one command with its shard
 * workers as child processes (a killed worker is restarted and rejoins), a
 * distributed run's shard checkpoints, the refusal to bind beyond loopback
 * without a token; and the micro-batcher on its own.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CsrMatrix } from '../src/data/types.js';
import { shardCheckpointPath } from '../src/distributed/paths.js';
import { writeCheckpoint } from '../src/model/checkpoint.js';
import { createBackend } from '../src/native/backend.js';
import { loadRunModel } from '../src/train/run.js';
import { MicroBatcher } from '../src/serve/batcher.js';
import { Svcm } from '@nats-io/services';
import { connectServe } from '../src/serve/connect.js';
import { loadServedShard } from '../src/serve/load.js';
import { GATEWAY_SERVICE } from '../src/serve/protocol.js';
import { ensureBuilt, haveNats, root, until } from './dist-helpers.js';
import { bibtexTest, dataDir, expectSamePrediction, haveBibtex, sparseInput, trainBibtex, xmcPredict, type Predicted } from './serve-helpers.js';

describe('serve - micro-batcher', () => {
  it('serve - batches concurrent requests up to maxRows, waits at most maxWaitMs, answers in order', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher<number, number>(async (items) => {
      batches.push([...items]);
      await new Promise((r) => setTimeout(r, 5));
      return items.map((i) => i * 10);
    }, { maxWaitMs: 2, maxRows: 4 }, () => 1);
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(i)));
    expect(answers).toEqual(Array.from({ length: 10 }, (_, i) => i * 10));
    expect(batches).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    const t0 = performance.now();
    expect(await b.submit(42)).toBe(420);
    expect(performance.now() - t0).toBeLessThan(50);
    const failing = new MicroBatcher<number, number>(async () => { throw new Error('boom'); }, { maxWaitMs: 0, maxRows: 8 }, () => 1);
    await expect(Promise.all([failing.submit(1), failing.submit(2)])).rejects.toThrow('boom');
    b.close();
    await expect(b.submit(1)).rejects.toThrow(/closed/);
  });

  it('serve - with maxInFlight 2 the next batch starts while one runs, and never more than 2 run', async () => {
    let running = 0, most = 0;
    const batches: number[][] = [];
    const release: (() => void)[] = [];
    const b = new MicroBatcher<number, number>(async (items) => {
      batches.push([...items]);
      most = Math.max(most, ++running);
      await new Promise<void>((r) => release.push(r));
      running--;
      return items.map((i) => i + 100);
    }, { maxWaitMs: 1, maxRows: 2, maxInFlight: 2 }, () => 1);
    const answers = Array.from({ length: 6 }, (_, i) => b.submit(i));
    await new Promise((r) => setTimeout(r, 20));
    expect(batches).toEqual([[0, 1], [2, 3]]); // two full batches running, the third waits
    expect(b.waiting).toBe(2);
    release.shift()!();
    await new Promise((r) => setTimeout(r, 20));
    expect(batches).toEqual([[0, 1], [2, 3], [4, 5]]);
    while (release.length) release.shift()!();
    expect(await Promise.all(answers)).toEqual([100, 101, 102, 103, 104, 105]);
    expect(most).toBe(2);
    expect(() => new MicroBatcher(async () => [], { maxWaitMs: 1, maxRows: 2, maxInFlight: 0 }, () => 1)).toThrow(/maxInFlight must be a positive integer/);
  });
});

const run = describe.skipIf(!haveNats || !haveBibtex);

/** One HTTP request on a connection of its own (the cluster primary hands connections, not requests, to the gateway processes). */
function fresh(url: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(`${url}${path}`, {
      method: data ? 'POST' : 'GET', agent: false,
      headers: { connection: 'close', ...(data ? { 'content-type': 'application/json' } : {}), ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* metrics text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

run('serve - the xmc serve command', () => {
  let dir: string;
  let runDir: string;
  let test: CsrMatrix;
  let expected: Predicted[];
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'xmc-serve-cli-'));
    runDir = join(dir, 'run');
    await trainBibtex(runDir);
    test = await bibtexTest();
    expected = xmcPredict(['--run', runDir, '--data', join(dataDir, 'bibtex_test.txt'), '--k', '5', '--out', join(dir, 'pred.txt')]).slice(0, 16);
  });

  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  /** Starts `xmc serve --run RUN --port 0 --device cpu --threads 1 --timeout-ms 3000 ...extra` as `child` and waits
   * for its URL; out() / err() are what it printed so far. */
  async function startServe(extra: string[], env: NodeJS.ProcessEnv = process.env) {
    const started = spawn(process.execPath, [join(root, 'bin', 'xmc.js'), 'serve', '--run', runDir, '--port', '0', '--device', 'cpu', '--threads', '1', '--timeout-ms', '3000', ...extra],
      { stdio: ['ignore', 'pipe', 'pipe'], env });
    child = started;
    let out = '';
    let err = '';
    started.stdout!.on('data', (d) => { out += d; });
    started.stderr!.on('data', (d) => { err += d; });
    await until('the service to listen', () => /listening on (http:\S+)/.test(out) || started.exitCode !== null, 60_000);
    const url = /listening on (http:\S+)/.exec(out)?.[1];
    expect(url, err).toBeDefined();
    return { child: started, url: url!, out: () => out, err: () => err };
  }

  it('serve - a distributed run\'s shard checkpoints load as the same shards', async () => {
    const backend = createBackend('cpu', { threads: 1 });
    const { model, config } = await loadRunModel(backend, runDir);
    const dist = join(dir, 'dist-run');
    mkdirSync(join(dist, 'shards'), { recursive: true });
    const cfg = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
    writeFileSync(join(dist, 'config.json'), JSON.stringify({ ...cfg, distributed: { runId: 'dist-run', workers: 2 } }));
    for (const s of model.shards) await writeCheckpoint(shardCheckpointPath(dist, s.index, true), { kind: 'worker' }, [s.section(false)]);
    const x = backend.fromArray(new Float32Array(16 * config.model.inputDim).map((_, i) => Math.sin(i)), [16, config.model.inputDim]);
    for (const shard of [0, 1]) {
      const fromDist = await loadServedShard(backend, dist, shard);
      const fromSingle = await loadServedShard(backend, runDir, shard);
      expect(fromDist.run.kind).toBe('distributed');
      expect(fromDist.source).toBe(shardCheckpointPath(dist, shard, true));
      expect(fromSingle.run.kind).toBe('single');
      const [a, b, c] = await Promise.all([fromDist.model.topK(x, 5), fromSingle.model.topK(x, 5), model.shards[shard].topK(x, 5)]);
      expect(a.labels).toEqual(c.labels);
      expect(b.labels).toEqual(c.labels);
      expect(a.scores).toEqual(c.scores);
      fromDist.model.dispose();
      fromSingle.model.dispose();
    }
    await expect(loadServedShard(backend, dist, 2)).rejects.toThrow(/--shard: 2 is out of range: the run has 2 shards/);
    x.dispose();
    model.dispose();
  });

  it('serve - refuses a bind beyond loopback without a token', () => {
    const r = spawnSync(process.execPath, [join(root, 'bin', 'xmc.js'), 'serve', '--run', runDir, '--host', '0.0.0.0'], { encoding: 'utf8', env: { ...process.env, XMC_SERVE_TOKEN: '' } });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/option --host: 0\.0\.0\.0 is beyond loopback: give an API token/);
    const n = spawnSync(process.execPath, [join(root, 'bin', 'xmc.js'), 'serve', 'worker', '--run', runDir, '--shard', '0', '--nats', 'nats://10.1.2.3:4222'], { encoding: 'utf8', env: { ...process.env, XMC_NATS_TOKEN: '' } });
    expect(n.status).toBe(2);
    expect(n.stderr).toMatch(/nats:\/\/10\.1\.2\.3:4222 is beyond loopback: give --nats-token/);
  });

  it('serve - all-in-one: answers equal xmc predict; a killed worker is restarted and rejoins', async () => {
    const service = await startServe([]);
    const { url } = service;
    const predict = async (rows: number[], extra: object = {}) => {
      const res = await fetch(`${url}/v1/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: rows.map((r) => sparseInput(test, r)), k: 5, ...extra }) });
      return { status: res.status, body: await res.json() as { predictions: Predicted[]; shards?: number[]; message?: string } };
    };
    const answers = await Promise.all(Array.from({ length: 16 }, (_, r) => predict([r])));
    answers.forEach((a, r) => {
      expect(a.status).toBe(200);
      expectSamePrediction(a.body.predictions[0], expected[r], `row ${r}`);
    });

    const health = await (await fetch(`${url}/healthz`)).json() as { shards: { shard: number; pid: number }[] };
    const pid = health.shards[1].pid;
    expect(pid).not.toBe(service.child.pid);
    process.kill(pid, 'SIGKILL');
    await until('shard 1 to be reported missing', () => /shard 1 worker exited/.test(service.err()), 10_000);
    const down = await predict([0]);
    expect(down.status).toBe(503);
    expect(down.body.shards).toEqual([1]);
    let back = false;
    const deadline = Date.now() + 60_000;
    while (!back && Date.now() < deadline) {
      const h = await fetch(`${url}/healthz`);
      back = h.status === 200;
      if (!back) await new Promise((r) => setTimeout(r, 100));
    }
    expect(back).toBe(true);
    const again = await predict([0, 1]);
    expect(again.status).toBe(200);
    expect(again.body.predictions.map((p) => p.labels)).toEqual([expected[0].labels, expected[1].labels]);

    const exited = new Promise<number | null>((r) => service.child.once('exit', (code) => r(code)));
    service.child.kill('SIGINT');
    expect(await exited).toBe(0);
  });

  it('serve - --gateways 2: both processes answer as xmc predict does, each is a NATS service instance, /metrics sums them', async () => {
    const token = 'cluster-t0ken';
    const service = await startServe(['--gateways', '2'], { ...process.env, XMC_SERVE_TOKEN: token });
    const { url } = service;
    expect(service.out()).toMatch(/2 gateway processes/);
    const auth = { authorization: `Bearer ${token}` };

    const pids = new Set<number>();
    for (let i = 0; i < 4; i++) pids.add((await fresh(url!, '/healthz')).body.gatewayPid as number);
    expect(pids.size).toBe(2);
    expect(pids.has(service.child.pid!)).toBe(false);

    const n = 16;
    for (let r = 0; r < n; r++) {
      const a = await fresh(url!, '/v1/predict', { inputs: [sparseInput(test, r)], k: 5 }, auth);
      expect(a.status).toBe(200);
      expectSamePrediction(a.body.predictions[0], expected[r], `row ${r}`);
    }
    expect((await fresh(url!, '/v1/predict', { inputs: [sparseInput(test, 0)], k: 0 }, auth)).status).toBe(400);
    expect((await fresh(url!, '/v1/predict', { inputs: [sparseInput(test, 0)] })).status).toBe(401);
    expect((await fresh(url!, '/metrics')).status).toBe(401);

    // Every process's counts, whichever process answers the scrape.
    const count = (text: string, status: number) => Number(new RegExp(`^xmc_serve_requests_total\\{route="/v1/predict",status="${status}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    for (let i = 0; i < 2; i++) {
      const m = await fresh(url!, '/metrics', undefined, auth);
      expect(m.status).toBe(200);
      expect(count(m.body as string, 200)).toBe(n);
      expect(count(m.body as string, 400)).toBe(1);
      expect(m.body as string).toMatch(new RegExp(`^xmc_serve_request_inputs_count ${n}$`, 'm'));
    }

    const natsUrl = /NATS (nats:\S+)\)/.exec(service.out())?.[1];
    expect(natsUrl).toBeDefined();
    const nc = await connectServe(natsUrl!, 'test-client');
    try {
      const infos = [];
      for await (const i of await new Svcm(nc).client({ strategy: 'timer', maxWait: 300 }).info(GATEWAY_SERVICE)) infos.push(i);
      expect(infos.length).toBe(2);
      const reply = await nc.request(`xmc.serve.${infos[0].metadata?.model}.predict`, JSON.stringify({ inputs: [sparseInput(test, 1)], k: 5 }), { timeout: 5000 });
      expect((JSON.parse(new TextDecoder().decode(reply.data)) as { predictions: Predicted[] }).predictions[0].labels).toEqual(expected[1].labels);
    } finally {
      await nc.close();
    }

    const exited = new Promise<number | null>((r) => service.child.once('exit', (code) => r(code)));
    service.child.kill('SIGINT');
    expect(await exited).toBe(0);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});
