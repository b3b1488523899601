#!/usr/bin/env node
// Distributed (NATS, one worker per shard) against single-process training on
// the same preset: training samples/s of each, side by side, measured in the
// same invocation (the epochs' samplesPerSecond: training time of
// the epoch, evaluation excluded; the distributed figure includes the
// encoder, the stream and the coordinator's barrier at the end of the epoch).
//
//   npm run bench:cluster [-- --preset bibtex-small|synth-small-768|A670K-FFI32-64k|A3M-FFI32-131k] [--workers 1,2]
//                         [--epochs N] [--device cpu|cuda|auto] [--threads T] [--keep DIR]
//                         [--repeat R] [--stages] [--checkpoint-every N] [--max-ahead N] [--scale S]
//                         [--train-points N] [--test-points N]
//
// Presets:
//   bibtex-small     ../shared/data/bibtex_{train,test}.txt, dense-ffi, H 512, fan-in 32 (CPU, ~1 min on 2 cores)
//   synth-small-768  synthetic `small` (20,000 points, 5,000 labels), 768-d float32 rows, batch 256 as on the GPU,
//                    dense-ffi H 32, fan-in 8: a short CPU step, so the per-batch cost of the stream shows (CPU)
//   A670K-FFI32-64k  synthetic Amazon-670K (xmc synth amazon670k), dense-ffi, H 65536, fan-in 32, batch 256 (GPU hosts)
//   A3M-FFI32-131k   synthetic Amazon-3M (xmc synth amazon3m: 1.7 M train points, 2,812,281 labels), dense-ffi,
//                    H 131072, fan-in 32, batch 128 (GPU hosts)
//   --scale S        the synthetic presets at S times their points and labels (default 1: the issue's model size)
//   --train-points N, --test-points N   the synthetic presets on the first N rows of a split (the model keeps its
//                    size; a shorter epoch for a GPU call's time limit)
//
// --repeat R runs the pair R times (alternating) and prints the medians.
// --stages prints where each distributed epoch's time went, from the stage
// timings the processes write to <run>/stats/*.jsonl (src/distributed/timing.ts):
// the encoder's read/encode/pacing/publish seconds and the worker's time
// waiting for batches, decoding, enqueueing, waiting for the device, writing
// checkpoints, and the time its device had no step queued (idle).
// With --workers 2 the distributed run has 2 shards; its single-process
// counterpart is `--shards 2` in one process (same total model size), and
// 2 workers on a 2-GPU host set CUDA_VISIBLE_DEVICES=0,1 per worker.
// Needs nats-server on PATH and a build (npm run build:ts).
import { spawn } from 'node:child_process';
import { closeSync, createReadStream, existsSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (...p) => join(root, 'dist', ...p);
if (!existsSync(dist('workers', 'worker.js'))) {
  console.error('bench/cluster: dist/ is missing: build first (npm run build:ts)');
  process.exit(2);
}
const { runTraining, createDeviceBackend } = await import(dist('src', 'train', 'run.js'));
const { startNatsServer } = await import(dist('src', 'distributed', 'nats.js'));

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}
const presetName = arg('preset', 'bibtex-small');
const workerCounts = arg('workers', '1').split(',').map(Number);
const epochs = Number(arg('epochs', '1'));
const device = arg('device', 'auto');
const threads = arg('threads');
const keep = arg('keep');
const repeat = Number(arg('repeat', '1'));
const scale = Number(arg('scale', '1'));
if (!(scale > 0)) { console.error(`bench/cluster: --scale must be a number > 0, got ${arg('scale')}`); process.exit(2); }
const showStages = process.argv.includes('--stages');
const checkpointEvery = arg('checkpoint-every');
const maxAhead = arg('max-ahead');
const work = keep ? resolve(keep) : mkdtempSync(join(tmpdir(), 'xmc-bench-cluster-'));

async function presetData() {
  if (presetName === 'bibtex-small') {
    const d = resolve(root, '..', 'shared', 'data');
    const train = join(d, 'bibtex_train.txt');
    if (!existsSync(train)) { console.error(`bench/cluster: ${train} is missing`); process.exit(2); }
    return { train, test: join(d, 'bibtex_test.txt'), options: { setup: 'dense-ffi', intermediate: 512, fanIn: 32, batchSize: 32, seed: 1 } };
  }
  if (presetName === 'synth-small-768') {
    const dataDir = join(work, 'synth-small');
    if (!existsSync(join(dataDir, 'train.labels.txt'))) {
      const { generateSynthetic } = await import(dist('src', 'synth', 'index.js'));
      await generateSynthetic({ preset: 'small', outDir: dataDir, seed: 1, scale: 1, dtype: 'float16', force: true });
    }
    return {
      train: { features: join(dataDir, 'train.features.npy'), labels: join(dataDir, 'train.labels.txt') },
      test: { features: join(dataDir, 'test.features.npy'), labels: join(dataDir, 'test.labels.txt') },
      options: { setup: 'dense-ffi', intermediate: 32, fanIn: 8, batchSize: 256, seed: 1 },
    };
  }
  const gpuPresets = {
    'A670K-FFI32-64k': { synth: 'amazon670k', options: { setup: 'dense-ffi', intermediate: 65536, fanIn: 32, batchSize: 256, seed: 1 } },
    'A3M-FFI32-131k': { synth: 'amazon3m', options: { setup: 'dense-ffi', intermediate: 131072, fanIn: 32, batchSize: 128, seed: 1 } },
  };
  if (gpuPresets[presetName]) {
    const { synth, options } = gpuPresets[presetName];
    const dataDir = join(work, `${synth}-scale-${scale}`);
    if (!existsSync(join(dataDir, 'train.labels.txt'))) {
      const { generateSynthetic } = await import(dist('src', 'synth', 'index.js'));
      const t0 = performance.now();
      await generateSynthetic({ preset: synth, outDir: dataDir, seed: 1, scale, dtype: 'float16', force: true });
      console.log(`bench/cluster: generated ${synth} (scale ${scale}) in ${((performance.now() - t0) / 1000).toFixed(0)} s -> ${dataDir}`);
    }
    // --train-points / --test-points: the first N rows of each split (the model keeps the preset's size)
    const split = async (name, n) => (n === undefined ? { features: join(dataDir, `${name}.features.npy`), labels: join(dataDir, `${name}.labels.txt`) }
      : firstRows(dataDir, name, Number(n)));
    return { train: await split('train', arg('train-points')), test: await split('test', arg('test-points')), options };
  }
  console.error(`bench/cluster: unknown preset ${presetName}`);
  process.exit(2);
}

/**
 * The first n rows of a synthetic split (.npy features and pyxclib labels), written once beside it. Both are
 * streamed: the full Amazon-3M files (2.6 GB of features, 595 MB of labels) pass what one read may hold.
 */
async function firstRows(dir, name, n) {
  if (!(Number.isInteger(n) && n > 0)) { console.error(`bench/cluster: --${name}-points must be an integer > 0, got ${n}`); process.exit(2); }
  const out = { features: join(dir, `${name}.first-${n}.features.npy`), labels: join(dir, `${name}.first-${n}.labels.txt`) };
  if (existsSync(out.labels)) return out;
  const src = openSync(join(dir, `${name}.features.npy`), 'r');
  const head = Buffer.alloc(10);
  readSync(src, head, 0, 10, 0);
  const headerLen = head.readUInt16LE(8), headerBuf = Buffer.alloc(headerLen);
  readSync(src, headerBuf, 0, headerLen, 10);
  const header = headerBuf.toString('latin1');
  const m = /'shape': \((\d+), (\d+)\)/.exec(header), descr = /'descr': '([^']+)'/.exec(header);
  if (!m || !descr) { console.error(`bench/cluster: unexpected .npy header in ${dir}/${name}.features.npy: ${header}`); process.exit(2); }
  const rows = Math.min(n, Number(m[1])), cols = Number(m[2]), itemSize = Number(descr[1].slice(2));
  let dict = `{'descr': '${descr[1]}', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  dict += ' '.repeat(63 - ((10 + dict.length) % 64)) + '\n'; // the whole header a multiple of 64 bytes
  head.writeUInt16LE(dict.length, 8);
  const dst = openSync(`${out.features}.partial`, 'w');
  writeSync(dst, Buffer.concat([head, Buffer.from(dict, 'latin1')]));
  const chunk = Buffer.alloc(1 << 24);
  for (let done = 0, total = rows * cols * itemSize; done < total;) {
    const got = readSync(src, chunk, 0, Math.min(chunk.length, total - done), 10 + headerLen + done);
    if (got <= 0) { console.error(`bench/cluster: ${dir}/${name}.features.npy ends early`); process.exit(2); }
    writeSync(dst, chunk, 0, got);
    done += got;
  }
  closeSync(src);
  closeSync(dst);
  renameSync(`${out.features}.partial`, out.features);
  const lines = createInterface({ input: createReadStream(join(dir, `${name}.labels.txt`)), crlfDelay: Infinity });
  const kept = [];
  for await (const line of lines) {
    kept.push(kept.length === 0 ? `${rows} ${line.split(/\s+/)[1]}` : line);
    if (kept.length > rows) break;
  }
  lines.close();
  writeFileSync(`${out.labels}.partial`, kept.join('\n') + '\n');
  renameSync(`${out.labels}.partial`, out.labels); // last: its presence marks a complete pair
  return out;
}

const preset = await presetData();
const dataArgs = (flag, spec) => (typeof spec === 'string' ? [`--${flag}`, spec] : [`--${flag}`, spec.labels, `--${flag}-features`, spec.features]);
const metrics = (dir) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

async function single(shards) {
  const backend = createDeviceBackend(device, threads === undefined ? undefined : Number(threads));
  const out = join(work, `single-${shards}`);
  rmSync(out, { recursive: true, force: true });
  // progress every 30 s (a long run shows whether it trains, loads or evaluates)
  const t0 = performance.now();
  let said = t0;
  const progress = (what) => {
    const now = performance.now();
    if (now - said < 30_000) return;
    said = now;
    console.log(`  single process, ${shards} shard(s), ${((now - t0) / 1000).toFixed(0)} s: ${what}`);
  };
  const reporter = {
    message(text) { console.log(`  single process: ${text}`); },
    step(i) { progress(`epoch ${i.epoch}, step ${i.step}/${i.steps} (${(i.samples / Math.max(i.elapsedSeconds, 1e-9)).toFixed(0)} samples/s)`); },
    epochEnd() {},
  };
  const r = await runTraining({ train: preset.train, test: preset.test, out, options: { ...preset.options, shards, epochs }, backend, reporter });
  r.model.dispose();
  const sps = r.history.map((h) => h.samplesPerSecond);
  // printed as soon as known: a run cut short by a time limit still leaves its first figures
  console.log(`single process, ${shards} shard(s): ${sps.map((v) => v.toFixed(0)).join(', ')} samples/s; peak memory ${(backend.memoryStats().peakBytes / 2 ** 20).toFixed(1)} MiB (its backend allocator)`);
  return { metrics: metrics(out), sps };
}

/** The stats lines of a run directory's processes, by role. */
function stages(runDir) {
  const dir = join(runDir, 'stats');
  if (!existsSync(dir)) return {};
  return Object.fromEntries(readdirSync(dir).filter((f) => f.endsWith('.jsonl')).map((f) =>
    [f.replace(/\.jsonl$/, ''), readFileSync(join(dir, f), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))]));
}

/** Where each epoch's time went: one block per epoch, seconds and shares of the coordinator's training time. */
function printStages(d) {
  const pct = (x, total) => `${(100 * x / total).toFixed(1).padStart(5)}%`;
  const sec = (x) => `${(x ?? 0).toFixed(2).padStart(7)} s`;
  for (const h of d.history) {
    const train = h.trainSeconds;
    console.log(`  epoch ${h.epoch}: coordinator's training time ${train.toFixed(2)} s (plan published -> every worker's losses)`);
    const enc = (d.stages.encoder ?? []).filter((r) => r.epoch === h.epoch).at(-1);
    if (enc) {
      const mb = (enc.bytes ?? 0) / 1e6;
      console.log(`    encoder  ${enc.batches} batches, ${mb.toFixed(0)} MB in ${sec(enc.windowSeconds)} (${(enc.batches / enc.windowSeconds).toFixed(0)} batches/s, ${(mb / enc.windowSeconds).toFixed(0)} MB/s)`);
      for (const k of ['read', 'encode', 'pace', 'publish']) console.log(`      ${k.padEnd(14)} ${sec(enc[`${k}Seconds`])} ${pct(enc[`${k}Seconds`] ?? 0, train)}`);
      console.log(`      ${'status asks'.padEnd(14)} ${String(enc.statusRequests ?? 0).padStart(9)}`);
    }
    for (const [role, lines] of Object.entries(d.stages).filter(([r]) => r.startsWith('worker-')).sort()) {
      const w = lines.filter((r) => r.epoch === h.epoch).at(-1);
      if (!w) continue;
      console.log(`    ${role} ${w.steps} steps in ${sec(w.windowSeconds)} (first batch received -> last step done; ${(1000 * w.windowSeconds / w.steps).toFixed(2)} ms/step)`);
      for (const k of ['waitForBatch', 'decode', 'enqueue', 'waitForDevice', 'lossRead', 'checkpoint']) {
        if (w[`${k}Seconds`] !== undefined) console.log(`      ${k.padEnd(14)} ${sec(w[`${k}Seconds`])} ${pct(w[`${k}Seconds`], train)}${k === 'checkpoint' ? `  (${w.checkpoints} written)` : ''}`);
      }
      console.log(`      ${'device idle'.padEnd(14)} ${sec(w.deviceIdleSeconds)} ${pct(w.deviceIdleSeconds ?? 0, train)}  (no step queued, within the window)`);
      if (w.peakDeviceBytes !== undefined) console.log(`      ${'peak memory'.padEnd(14)} ${(w.peakDeviceBytes / 2 ** 20).toFixed(1).padStart(9)} MiB  (the worker's backend allocator, since it started)`);
      console.log(`      ${'outside window'.padEnd(14)} ${sec(train - w.windowSeconds)} ${pct(train - w.windowSeconds, train)}  (plan -> first batch, last step -> losses reported)`);
    }
  }
}

async function distributed(workers) {
  const runDir = join(work, `cluster-${workers}`);
  rmSync(runDir, { recursive: true, force: true });
  const nats = await startNatsServer({ runDir });
  const common = ['--run', runDir, '--nats', nats.url];
  const o = preset.options;
  const train = ['--setup', o.setup, '--intermediate', String(o.intermediate), '--fan-in', String(o.fanIn), '--batch-size', String(o.batchSize),
    '--seed', String(o.seed), '--shards', String(workers), '--epochs', String(epochs)];
  const children = [];
  const start = (name, args, env = {}) => {
    const log = openSync(join(runDir, `${name}.log`), 'a');
    const c = spawn(process.execPath, [join(root, 'bin', 'xmc.js'), 'cluster', ...args, ...common], { stdio: ['ignore', log, log], env: { ...process.env, ...env } });
    children.push(c);
    return new Promise((ok, fail) => c.once('exit', (code) => (code === 0 ? ok() : fail(new Error(`${name} exited with ${code} (log ${runDir}/${name}.log)`)))));
  };
  try {
    const done = start('coordinator', ['coordinator', ...dataArgs('train', preset.train), ...dataArgs('test', preset.test), ...train,
      ...(maxAhead ? ['--max-ahead', maxAhead] : [])]);
    start('encoder', ['encoder']).catch(() => undefined);
    for (let w = 0; w < workers; w++) {
      start(`worker-${w}`, ['worker', '--shard', String(w), '--device', device, ...(threads ? ['--threads', threads] : []),
        ...(checkpointEvery ? ['--checkpoint-every', checkpointEvery] : [])], { CUDA_VISIBLE_DEVICES: String(w) }).catch(() => undefined);
    }
    await done;
    const state = JSON.parse(readFileSync(join(runDir, 'coordinator.json'), 'utf8')).state;
    return { metrics: metrics(runDir), sps: state.history.map((h) => h.samplesPerSecond), history: state.history, stages: stages(runDir) };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await nats.stop();
  }
}

console.log(`bench:cluster preset ${presetName}, ${epochs} epoch(s), device ${device}${threads ? `, ${threads} threads` : ''}`);
const rows = [];
const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const timeless = (m) => JSON.stringify(m.map(({ seconds, ...r }) => r));
for (const w of workerCounts) {
  for (let r = 0; r < repeat; r++) {
    const s = await single(w);
    const d = await distributed(w);
    console.log(`distributed, ${w} worker(s): ${d.sps.map((v) => v.toFixed(0)).join(', ')} samples/s`);
    rows.push({ workers: w, single: mean(s.sps), distributed: mean(d.sps), sameMetrics: timeless(s.metrics) === timeless(d.metrics) });
    if (showStages) { console.log(`shards ${w}, run ${r + 1}: stage timings of the distributed run`); printStages(d); }
  }
}
console.log('shards  single-process samples/s  distributed samples/s  ratio  same metrics');
for (const r of rows) console.log(`${String(r.workers).padStart(6)}  ${r.single.toFixed(0).padStart(25)}  ${r.distributed.toFixed(0).padStart(21)}  ${(r.distributed / r.single).toFixed(2).padStart(5)}  ${r.sameMetrics}`);
if (repeat > 1) {
  for (const w of workerCounts) {
    const mine = rows.filter((r) => r.workers === w);
    console.log(`median of ${repeat} (shards ${w}): single ${median(mine.map((r) => r.single)).toFixed(0)}, distributed ${median(mine.map((r) => r.distributed)).toFixed(0)}, `
      + `ratio ${median(mine.map((r) => r.distributed / r.single)).toFixed(2)} (ratios ${mine.map((r) => (r.distributed / r.single).toFixed(2)).join(' ')})`);
  }
}
if (!keep) rmSync(work, { recursive: true, force: true });
