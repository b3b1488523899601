/**
 * The distributed trainer end to end on CPU with a real nats-server: a
 * coordinator, an encoder and 2 label-shard workers as separate processes.
 *
 * Equality is exact (toEqual on every metric, loss and weight): the workers
 * run the same CPU ops with the same thread count (1) on the same float32
 * inputs as the single-process trainer's shards, with the same seeds, and
 * the coordinator merges top-k lists and sums losses in the trainer's order.
 *
 * The merge of shard top-k lists itself is tested in test/topk-merge.test.ts
 * (merged top-k of S shards = top-k of the unsharded scores) and
 * test/model-shards.test.ts (for a model's shards).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../src/model/checkpoint.js';
import { createBackend } from '../src/native/backend.js';
import type { TrainOptions } from '../src/train/config.js';
import { runTraining } from '../src/train/run.js';
import { RUN_FILES } from '../src/train/trainer.js';
import { startNatsServer, type NatsServerHandle } from '../src/distributed/nats.js';
import { ensureBuilt, haveNats, supervise, until, wait, type Supervised } from './dist-helpers.js';
import { syntheticDataset, writeXcText } from './train-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'xmc-dist-'));
afterAll(() => { if (!process.env.XMC_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true }); });
const trainFile = join(dir, 'train.txt');
const testFile = join(dir, 'test.txt');
writeXcText(trainFile, syntheticDataset({ n: 200, features: 20, labels: 12, seed: 1, sparse: true }));
writeXcText(testFile, syntheticDataset({ n: 70, features: 20, labels: 12, seed: 2, sparse: true }));

// 13 steps per epoch; rewiring every 5 steps and dropout on; eval in blocks of 32 rows (3 blocks).
const OPTIONS: TrainOptions = { setup: 'dense-ffi', intermediate: 24, fanIn: 4, shards: 2, batchSize: 16, lr: 5e-3, rewireInterval: 5, earlyStopPatience: 10, seed: 9, evalBatchSize: 32 };
const EPOCHS = 3;

function cliOptions(o: TrainOptions, epochs: number): string[] {
  return ['--train', trainFile, '--test', testFile, '--setup', o.setup!, '--intermediate', String(o.intermediate), '--fan-in', String(o.fanIn),
    '--shards', String(o.shards), '--batch-size', String(o.batchSize), '--lr', String(o.lr), '--rewire-interval', String(o.rewireInterval),
    '--early-stop', String(o.earlyStopPatience), '--seed', String(o.seed), '--eval-batch-size', String(o.evalBatchSize), '--epochs', String(epochs)];
}

/** metrics.jsonl without the timings. */
function metricsOf(runDir: string): Record<string, unknown>[] {
  return readFileSync(join(runDir, RUN_FILES.metrics), 'utf8').trim().split('\n').map((l) => {
    const { seconds: _s, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return rest;
  });
}

let reference: Record<string, unknown>[] = [];
const referenceDir = join(dir, 'single');

interface Cluster {
  nats: NatsServerHandle;
  coordinator: Supervised;
  encoder: Supervised;
  workers: Supervised[];
  runDir: string;
}

async function startCluster(name: string, faults: { worker?: [number, number]; coordinatorEpoch?: number } = {}, epochs = EPOCHS): Promise<Cluster> {
  const runDir = join(dir, name);
  const nats = await startNatsServer({ runDir });
  const common = ['--run', runDir, '--nats', nats.url];
  const coordinator = supervise(runDir, 'coordinator', ['coordinator', ...common, ...cliOptions(OPTIONS, epochs), '--max-ahead', '4', '--request-timeout', '10'],
    faults.coordinatorEpoch ? { XMC_FAULT_COORDINATOR_EPOCH: String(faults.coordinatorEpoch) } : {});
  const encoder = supervise(runDir, 'encoder', ['encoder', ...common]);
  const workers = [0, 1].map((w) => supervise(runDir, `worker-${w}`, ['worker', ...common, '--shard', String(w), '--device', 'cpu', '--threads', '1', '--checkpoint-every', '4'],
    faults.worker && faults.worker[0] === w ? { XMC_FAULT_WORKER_STEP: String(faults.worker[1]) } : {}));
  return { nats, coordinator, encoder, workers, runDir };
}

/** The last lines of every log of a run (the test directory is removed afterwards: a failure must carry them). */
function logTails(runDir: string, lines = 15): string {
  const logs = join(runDir, 'logs');
  if (!existsSync(logs)) return '(no logs)';
  return readdirSync(logs).sort().map((name) => {
    const tail = readFileSync(join(logs, name), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    return `--- ${name}\n${tail}`;
  }).join('\n');
}

async function finish(c: Cluster): Promise<void> {
  try {
    await Promise.race([c.coordinator.finished, wait(60_000).then(() => {
      throw new Error(`run ${c.runDir} did not finish in 60 s; the end of each process's log:\n${logTails(c.runDir)}`);
    })]);
    await Promise.race([Promise.all([c.encoder.finished, ...c.workers.map((w) => w.finished)]), wait(20_000)]);
  } finally {
    for (const p of [c.coordinator, c.encoder, ...c.workers]) await p.stop();
    await c.nats.stop();
  }
}

async function expectShardWeightsEqual(runDir: string): Promise<void> {
  const ref = await readCheckpoint(join(referenceDir, RUN_FILES.last));
  for (const w of [0, 1]) {
    const mine = await readCheckpoint(join(runDir, 'shards', `shard-${w}.ckpt`));
    const a = ref.sections.get(`shard/${w}`)!;
    const b = mine.sections.get(`shard/${w}`)!;
    expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
    for (const [name, t] of a.tensors) expect(Buffer.from(b.tensors.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), `shard ${w} tensor ${name}`).toBe(true);
  }
}

describe.skipIf(!haveNats)('dist - 2-worker run over NATS', () => {
  beforeAll(async () => {
    ensureBuilt();
    const backend = createBackend('cpu', { threads: 1 });
    const r = await runTraining({ train: trainFile, test: testFile, out: referenceDir, options: { ...OPTIONS, epochs: EPOCHS }, backend, reporter: { message() {}, step() {}, epochEnd() {} } });
    r.model.dispose();
    reference = metricsOf(referenceDir);
    expect(reference.length).toBe(EPOCHS);
  });

  it('equals the single-process --shards 2 run: every epoch\'s loss, lr and metrics, and the final weights, bit for bit', async () => {
    const c = await startCluster('plain');
    await finish(c);
    expect(metricsOf(c.runDir)).toEqual(reference);
    await expectShardWeightsEqual(c.runDir);
    expect(c.workers.every((w) => w.exits.join() === '0')).toBe(true);
  });

  it('kill -9 of worker 1 mid-epoch 2 (step 20, checkpoint at 16): restarted, replays from its checkpoint, same final metrics and weights', async () => {
    const c = await startCluster('worker-crash', { worker: [1, 20] });
    await finish(c);
    expect(c.workers[1].exits[0]).toBe('SIGKILL');
    expect(readFileSync(join(c.runDir, 'logs', 'worker-1.log'), 'utf8')).toMatch(/resumed from .*step 16/);
    expect(metricsOf(c.runDir)).toEqual(reference);
    await expectShardWeightsEqual(c.runDir);
  });

  it('kill -9 of the coordinator in epoch 2: restarted, continues from its state, same final metrics', async () => {
    const c = await startCluster('coordinator-crash', { coordinatorEpoch: 2 });
    await finish(c);
    expect(c.coordinator.exits[0]).toBe('SIGKILL');
    expect(metricsOf(c.runDir)).toEqual(reference);
    await expectShardWeightsEqual(c.runDir);
  });

  it('nats-server killed (-9) after epoch 1 and restarted on the same store: same final metrics', async () => {
    const c = await startCluster('nats-restart');
    const metrics = join(c.runDir, RUN_FILES.metrics);
    await until('epoch 1 metrics', () => existsSync(metrics) && readFileSync(metrics, 'utf8').trim().split('\n').length >= 1);
    c.nats.process.kill('SIGKILL');
    await new Promise((r) => c.nats.process.once('exit', r));
    await wait(300);
    c.nats = await startNatsServer({ runDir: c.runDir, port: c.nats.port });
    await finish(c);
    expect(metricsOf(c.runDir)).toEqual(reference);
    await expectShardWeightsEqual(c.runDir);
  });
});
