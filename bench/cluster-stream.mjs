#!/usr/bin/env node
// The batch stream of a distributed run in isolation (no coordinator, no
// training), to see whether the encoder, nats-server and the worker's
// receive/decode loop keep up on their own:
//
//   node bench/cluster-stream.mjs --data DIR [--epochs N] [--batch-size B] [--max-ahead N] [--keep DIR]
//
// DIR holds synthetic data (train.features.npy, train.labels.txt, as written by
// `xmc synth`; bench/cluster.mjs --preset synth-small-768 --keep K leaves one in
// K/synth-small). It runs, on one nats-server:
//   1. encoder -> null worker: the real encoder (`xmc cluster encoder`, a child
//      process) paced by a worker stand-in in this process that pulls each batch
//      with the worker's consumer settings, decodes and checks it (decodeBatch),
//      acks it and reports it as applied at once (no compute): batches/s the
//      encoder + stream deliver;
//   2. pre-filled stream -> null worker: the same stand-in reading a stream the
//      encoder has filled beforehand (pacing off): batches/s of pull + decode + ack
//      alone.
// Prints batches/s and MB/s of each, and the encoder's stage timings.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (...p) => join(root, 'dist', ...p);
const { startNatsServer, connectRun, ensureStream, sleep } = await import(dist('src', 'distributed', 'nats.js'));
const { runSubjects, encode, decodeBatch, isError } = await import(dist('src', 'distributed', 'protocol.js'));
const { resolveTrainConfig, } = await import(dist('src', 'train', 'config.js'));
const { loadDataset } = await import(dist('src', 'data', 'load.js'));
const { batchCount } = await import(dist('src', 'data', 'batches.js'));
const { AckPolicy, DeliverPolicy } = await import('@nats-io/jetstream');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}
const dataDir = arg('data');
if (!dataDir || !existsSync(join(dataDir, 'train.labels.txt'))) { console.error('bench/cluster-stream: --data DIR with train.features.npy and train.labels.txt is required'); process.exit(2); }
const epochs = Number(arg('epochs', '2'));
const batchSize = Number(arg('batch-size', '256'));
const maxAhead = Number(arg('max-ahead', '16'));
const keep = arg('keep');
const work = keep ? resolve(keep) : mkdtempSync(join(tmpdir(), 'xmc-bench-stream-'));
const train = { features: join(resolve(dataDir), 'train.features.npy'), labels: join(resolve(dataDir), 'train.labels.txt') };
const ds = await loadDataset(train);
const config = resolveTrainConfig({ setup: 'dense-ffi', intermediate: 32, fanIn: 8, batchSize, seed: 1, epochs }, { inputDim: ds.features.cols, numLabels: ds.labels.cols });
const steps = batchCount(ds.features.rows, batchSize);

/** One scenario on a fresh server and stream; `paced`: the stand-in consumes while the encoder runs. */
async function scenario(name, paced) {
  const runDir = join(work, name);
  rmSync(runDir, { recursive: true, force: true });
  const runId = name;
  const nats = await startNatsServer({ runDir });
  const conn = await connectRun(nats.url, `bench-${name}`);
  const s = runSubjects(runId);
  await ensureStream(conn.jsm, s);
  await conn.js.publish(s.config, encode({ type: 'config', runId, config, data: { train, test: train }, workers: 1, maxAhead, featureDtype: 'float32', createdAt: new Date().toISOString() }));
  let applied = paced ? 0 : 1e9;
  const statusSub = conn.nc.subscribe(s.worker(0), { callback: (_e, m) => m.respond(encode({ type: 'status', shard: 0, epoch: 0, step: applied, seq: 0, checkpointSeq: 0 })) });
  const log = openSync(join(runDir, 'encoder.log'), 'a');
  const encoder = spawn(process.execPath, [join(root, 'bin', 'xmc.js'), 'cluster', 'encoder', '--run', runDir, '--nats', nats.url], { stdio: ['ignore', log, log] });
  const total = steps * epochs;
  const consume = async () => {
    await conn.jsm.consumers.add(s.stream, { durable_name: 'worker-0', filter_subject: s.batch, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 600e9, max_ack_pending: 1024 });
    const consumer = await conn.js.consumers.get(s.stream, 'worker-0');
    const messages = await consumer.consume({ max_messages: 16, expires: 2000, idle_heartbeat: 1000 });
    let n = 0; let bytes = 0; let first = 0; let decodeMs = 0;
    for await (const m of messages) {
      if (n === 0) first = performance.now();
      const t = performance.now();
      const b = decodeBatch(m.data, runId, config.model.inputDim, config.model.numLabels);
      decodeMs += performance.now() - t;
      if (isError(b)) throw new Error(b.error);
      m.ack();
      applied = b.step;
      bytes += m.data.length;
      if (++n === total) break;
    }
    const seconds = (performance.now() - first) / 1000;
    return { n, seconds, bytes, decodeMs };
  };
  let result;
  for (let e = 1; e <= epochs; e++) {
    await conn.js.publish(s.control, encode({ type: 'epoch', runId, epoch: e, lr: 1e-3, firstStep: (e - 1) * steps + 1, steps }), { msgID: `${runId}:plan:${e}` });
    if (!paced) {
      // Wait for the encoder to publish the epoch before the next plan.
      for (;;) { const info = await conn.jsm.streams.info(s.stream); if (info.state.messages >= 2 + e * steps + (e - 1)) break; await sleep(50); }
    } else if (e === 1) {
      result = consume();
    }
    if (paced) while (applied < e * steps) await sleep(5);
  }
  const filled = performance.now();
  if (!paced) result = consume();
  const r = await result;
  await conn.js.publish(s.control, encode({ type: 'finished', runId, reason: 'epochs' }));
  await new Promise((ok) => encoder.once('exit', ok));
  statusSub.unsubscribe();
  await conn.nc.close();
  await nats.stop();
  const stats = existsSync(join(runDir, 'stats', 'encoder.jsonl')) ? readFileSync(join(runDir, 'stats', 'encoder.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];
  void filled;
  return { ...r, stats };
}

console.log(`bench:cluster-stream ${dataDir}: ${ds.features.rows} rows x ${ds.features.cols} features, batch ${batchSize} (${(4 * batchSize * ds.features.cols / 1e6).toFixed(2)} MB), ${steps} batches per epoch, ${epochs} epochs, max-ahead ${maxAhead}`);
for (const [name, paced] of [['paced', true], ['prefilled', false]]) {
  const r = await scenario(name, paced);
  console.log(`${paced ? 'encoder -> null worker      ' : 'pre-filled stream -> null worker'}: ${r.n} batches in ${r.seconds.toFixed(2)} s: ${(r.n / r.seconds).toFixed(0)} batches/s, ${(r.bytes / 1e6 / r.seconds).toFixed(0)} MB/s; decode ${(r.decodeMs / r.n).toFixed(2)} ms/batch`);
  for (const e of r.stats) {
    console.log(`  encoder epoch ${e.epoch}: ${e.batches} batches in ${e.windowSeconds.toFixed(2)} s (${(e.batches / e.windowSeconds).toFixed(0)}/s): read ${e.readSeconds.toFixed(2)} s, encode ${e.encodeSeconds.toFixed(2)} s, pace ${e.paceSeconds.toFixed(2)} s (${e.statusRequests} status asks), publish ${e.publishSeconds.toFixed(2)} s`);
  }
}
if (!keep) rmSync(work, { recursive: true, force: true });
process.exit(0);
