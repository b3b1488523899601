#!/usr/bin/env node
// Throughput and latency of the inference service: starts `xmc serve` (a
// child process: nats-server, one worker per shard, the gateway) and drives
// POST /v1/predict with autocannon, single-input requests from several
// connections; prints requests/s, p50 and p99 latency, and the bar.
//
//   npm run bench:serve [-- --preset bibtex|A670K-FFI32-64k|gateway-768] [--run DIR] [--shards S]
//                       [--device cpu|cuda|auto] [--threads T] [--gpus G] [--in-process]
//                       [--gateways N] [--connections C] [--load-workers W] [--duration S] [--epochs N]
//                       [--rate R (an extra run at R offered requests/s; default none)]
//                       [--max-wait-ms MS] [--max-batch-rows N] [--batches-in-flight N] [--keep DIR] [--cpu-prof DIR]
//                       [--tf32] [--bf16-gathers] [--int8-topk]   (passed to xmc serve: the workers' backend options)
//
// --cpu-prof DIR: the gateway process(es) run under `node --cpu-prof` and
// write their profiles to DIR when the service stops; the bench prints the
// predict answers to divide by (bench/cpuprofile-top.mjs FILE --per N).
//
// Load: autocannon, one thread up to 16 connections; beyond, --load-workers
// worker threads (default min(4, cores / 4), at least 1), as one autocannon
// thread tops out near the rates measured here. The output says what drove
// the load, and the gateway's CPU time per request (the gateway processes'
// process_cpu_seconds_total over the measured run / requests answered; with
// --in-process it includes the workers).
//
// Models:
//   --run DIR          a trained run (inputs: random dense vectors, or bibtex test rows when F = 1836)
//   bibtex (default)   dense-ffi, H 512, fan-in 32, trained here for --epochs (3) on
//                      ../shared/data/bibtex_train.txt (CPU); inputs: bibtex test rows (sparse)
//   A670K-FFI32-64k    768 -> 65536 ReLU -> FFI 32 -> 670,091 labels in --shards (2) shards,
//                      UNTRAINED: random weights of the paper's shape, for the throughput
//                      figure only (the scores mean nothing); inputs: random dense vectors
//   gateway-768        768 -> 256 ReLU -> FFI 16 -> 4,096 labels in --shards (2) shards,
//                      UNTRAINED, shards that cost little: the gateway's cost with the
//                      A670K preset's inputs (768 dense values a request); no bar
// Bars (docs/SERVING.md): bibtex on CPU >= 500 requests/s with p99 <= 20 ms;
// A670K-FFI32-64k in 2 shards on a GPU host >= 5,000 requests/s with p99 <= 15 ms.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (...p) => join(root, 'dist', ...p);
if (!existsSync(dist('src', 'serve', 'service.js'))) {
  console.error('bench/serve: dist/ is missing: build first (npm run build:ts)');
  process.exit(2);
}

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}
const flag = (name) => process.argv.includes(`--${name}`);
const preset = arg('preset', 'bibtex');
const device = arg('device', 'auto');
const threads = arg('threads');
const connections = Number(arg('connections', '8'));
const loadWorkers = Number(arg('load-workers', connections > 16 ? String(Math.max(1, Math.min(4, Math.floor(availableParallelism() / 4)))) : '1'));
const duration = Number(arg('duration', '10'));
const keep = arg('keep');
const work = keep ? resolve(keep) : mkdtempSync(join(tmpdir(), 'xmc-bench-serve-'));
mkdirSync(work, { recursive: true });

let runDir = arg('run') ? resolve(arg('run')) : null;
let untrained = false;
let bar = null;
const dataDir = resolve(root, '..', 'shared', 'data');

if (!runDir && preset === 'bibtex') {
  const train = join(dataDir, 'bibtex_train.txt');
  if (!existsSync(train)) { console.error(`bench/serve: ${train} is missing`); process.exit(2); }
  runDir = join(work, 'bibtex');
  if (!existsSync(join(runDir, 'checkpoint-best.ckpt'))) {
    const { runTraining, createDeviceBackend } = await import(dist('src', 'train', 'run.js'));
    rmSync(runDir, { recursive: true, force: true });
    const t0 = performance.now();
    const r = await runTraining({
      train, test: join(dataDir, 'bibtex_test.txt'), out: runDir, backend: createDeviceBackend('cpu', threads ? Number(threads) : undefined),
      options: { setup: 'dense-ffi', intermediate: 512, fanIn: 32, shards: Number(arg('shards', '1')), epochs: Number(arg('epochs', '3')), seed: 1 },
      reporter: { message() {}, step() {}, epochEnd() {} },
    });
    r.model.dispose();
    console.log(`trained bibtex dense-ffi (H 512, fan-in 32) for ${arg('epochs', '3')} epochs in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${runDir}`);
  }
  bar = { rps: 500, p99: 20, what: 'bibtex on CPU' };
} else if (!runDir && (preset === 'A670K-FFI32-64k' || preset === 'gateway-768')) {
  const a670k = preset === 'A670K-FFI32-64k';
  runDir = join(work, a670k ? 'a670k' : 'gateway768');
  untrained = true;
  if (!existsSync(join(runDir, 'checkpoint-best.ckpt'))) {
    const { createBackend } = await import(dist('src', 'native', 'backend.js'));
    const { Model } = await import(dist('src', 'model', 'model.js'));
    const { writeCheckpoint } = await import(dist('src', 'model', 'checkpoint.js'));
    const { describeModel } = await import(dist('src', 'model', 'config.js'));
    const shape = a670k ? { numLabels: 670091, intermediate: 65536, fanIn: 32 } : { numLabels: 4096, intermediate: 256, fanIn: 16 };
    const config = { setup: 'dense-ffi', inputDim: 768, ...shape, shards: Number(arg('shards', '2')), seed: 1 };
    const t0 = performance.now();
    const backend = createBackend('cpu', threads ? { threads: Number(threads) } : {});
    const model = new Model(backend, config, true);
    mkdirSync(runDir, { recursive: true });
    await writeCheckpoint(join(runDir, 'checkpoint-best.ckpt'), { kind: 'best', config: { model: config }, untrained: true }, model.sections(false));
    writeFileSync(join(runDir, 'config.json'), JSON.stringify({ description: describeModel(config), config: { model: config }, untrained: true }, null, 2) + '\n');
    model.dispose();
    console.log(`built an UNTRAINED ${preset} model (random weights, ${config.shards} shards) in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${runDir}`);
  }
  if (a670k) bar = { rps: 5000, p99: 15, what: 'A670K-FFI32-64k in 2 shards on a GPU host' };
} else if (!runDir) {
  console.error(`bench/serve: unknown preset ${preset} (bibtex, A670K-FFI32-64k, gateway-768) and no --run`);
  process.exit(2);
}

const { readServedRun } = await import(dist('src', 'serve', 'load.js'));
const served = readServedRun(runDir);
const F = served.model.inputDim;

// Request bodies: single inputs.
const bodies = [];
if (F === 1836 && existsSync(join(dataDir, 'bibtex_test.txt'))) {
  const { loadDataset } = await import(dist('src', 'data', 'load.js'));
  const t = (await loadDataset(join(dataDir, 'bibtex_test.txt'))).features;
  for (let r = 0; r < Math.min(t.rows, 1000); r++) {
    const s = t.indptr[r], e = t.indptr[r + 1];
    bodies.push(JSON.stringify({ inputs: [{ indices: Array.from(t.indices.subarray(s, e)), values: Array.from(t.values.subarray(s, e)) }], k: 5 }));
  }
} else {
  // The project's xoshiro128**: the LCG written here before (seed * 1103515245 in floating point, not exact
  // past 2^53) cycled within a few hundred draws, so the 256 bodies repeated each other.
  const { Xoshiro128 } = await import(dist('src', 'data', 'random.js'));
  const rng = new Xoshiro128(7);
  const rand = () => rng.nextFloat() * 2 - 1;
  for (let i = 0; i < 256; i++) bodies.push(JSON.stringify({ inputs: [Array.from({ length: F }, () => Number(rand().toFixed(4)))], k: 5 }));
}

// The service.
const serveArgs = ['serve', '--run', runDir, '--port', '0', '--device', device, '--max-inputs', '1'];
for (const o of ['threads', 'gpus', 'gateways', 'max-wait-ms', 'max-batch-rows', 'batches-in-flight']) if (arg(o) !== undefined) serveArgs.push(`--${o}`, arg(o));
for (const f of ['in-process', 'tf32', 'bf16-gathers', 'int8-topk']) if (flag(f)) serveArgs.push(`--${f}`);
const cpuProf = arg('cpu-prof') ? ['--cpu-prof', '--cpu-prof-dir', resolve(arg('cpu-prof'))] : [];
const child = spawn(process.execPath, [...cpuProf, join(root, 'bin', 'xmc.js'), ...serveArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
child.stdout.on('data', (d) => { out += d; });
const url = await new Promise((ok, fail) => {
  const timer = setInterval(() => {
    const m = /listening on (http:\S+)/.exec(out);
    if (m) { clearInterval(timer); ok(m[1]); }
    if (child.exitCode !== null) { clearInterval(timer); fail(new Error(`xmc serve exited with ${child.exitCode}`)); }
  }, 50);
});
const gatewayProcesses = /(\d+) gateway process/.exec(out)?.[1] ?? '1';
console.log(`service: ${url} (${served.model.shards} shard(s), ${F} features, ${served.model.numLabels} labels, device ${device}${flag('in-process') ? ', workers in process' : ', worker processes'}, ${gatewayProcesses} gateway process(es))`);

// Worker threads cannot take a function: they load bench/serve-request.cjs, which reads the bodies from this file.
const bodiesFile = join(work, 'bodies.json');
writeFileSync(bodiesFile, JSON.stringify(bodies));
process.env.XMC_BENCH_BODIES = bodiesFile;
/** Closed loop (rate 0: every connection sends its next request when the last is answered) or a fixed offered rate. */
function drive(seconds, rate = 0, conns = connections) {
  let i = 0;
  const setupRequest = loadWorkers > 1 ? join(root, 'bench', 'serve-request.cjs') : (req) => ({ ...req, body: bodies[i++ % bodies.length] });
  return autocannon({
    url: `${url}/v1/predict`, connections: conns, duration: seconds, method: 'POST',
    headers: { 'content-type': 'application/json' },
    requests: [{ setupRequest }],
    ...(loadWorkers > 1 ? { workers: loadWorkers } : {}),
    // autocannon applies overallRate per worker thread; its latencies are corrected for coordinated omission
    ...(rate > 0 ? { overallRate: Math.max(1, Math.round(rate / loadWorkers)) } : {}),
  });
}

/** The service's counters that the bench reads: gateway CPU seconds, predict answers, worker batch rows of shard 0. */
async function scrape() {
  const text = await (await fetch(`${url}/metrics`)).text();
  const num = (re) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    cpu: num(/^xmc_serve_process_cpu_seconds_total (\S+)$/m),
    answered: num(/^xmc_serve_requests_total\{route="\/v1\/predict",status="200"\} (\S+)$/m),
    batchSum: num(/^xmc_serve_batch_rows_sum\{shard="0"\} (\S+)$/m),
    batchCount: num(/^xmc_serve_batch_rows_count\{shard="0"\} (\S+)$/m),
  };
}

let code = 0;
try {
  await drive(2); // warm-up: buffers of every batch size, JIT
  const before = await scrape();
  const r = await drive(duration);
  const after = await scrape();
  const rps = r.requests.average;
  const p50 = r.latency.p50;
  const p99 = r.latency.p99;
  console.log(`load: autocannon in ${loadWorkers} thread(s)${loadWorkers > 1 ? ' (worker threads)' : ''}, ${connections} connections, ${duration} s, single-input requests (k 5)`);
  console.log(`requests/s ${rps.toFixed(0)}  p50 ${p50} ms  p99 ${p99} ms  (${r.requests.total} requests, ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts)`);
  const answered = after.answered - before.answered;
  if (answered > 0) {
    console.log(`gateway CPU per request: ${(1e6 * (after.cpu - before.cpu) / answered).toFixed(0)} us (${gatewayProcesses} process(es), ${(after.cpu - before.cpu).toFixed(2)} CPU s for ${answered} answers${flag('in-process') ? '; includes the in-process workers' : ''})`);
    console.log(`mean worker batch (rows of the batch answering a request, shard 0): ${((after.batchSum - before.batchSum) / (after.batchCount - before.batchCount)).toFixed(1)}`);
  }
  if (cpuProf.length > 0) console.log(`profiles: ${resolve(arg('cpu-prof'))} (predict answers over the gateway's life: ${after.answered}; node bench/cpuprofile-top.mjs FILE --per ${after.answered})`);
  if (untrained) console.log('note: the model is UNTRAINED (random weights of the preset\'s shape): a throughput figure, not an accuracy one');
  // The bar is judged on the closed-loop run: it serves at least the bar's rate with its p99 at that load.
  // --rate R adds a run at a fixed offered rate (autocannon's overallRate, latencies corrected for
  // coordinated omission), whose arrivals come in bursts: informational.
  const rate = Number(arg('rate', '0'));
  if (rate > 0) {
    const conns = Math.max(connections, Math.ceil(rate * 0.03)); // enough for 30 ms per request in flight
    const q = await drive(duration, rate, conns);
    console.log(`offered ${rate} requests/s (${conns} connections, ${duration} s): served ${q.requests.average.toFixed(0)} requests/s  p50 ${q.latency.p50} ms  p99 ${q.latency.p99} ms  (${q.requests.total} requests, ${q.non2xx} non-2xx, ${q.errors} errors, ${q.timeouts} timeouts)`);
  }
  if (bar && !arg('run')) {
    const pass = rps >= bar.rps && p99 <= bar.p99 && r.non2xx === 0 && r.errors === 0;
    console.log(`bar (${bar.what}): >= ${bar.rps} requests/s with p99 <= ${bar.p99} ms (closed loop, ${connections} connections): ${pass ? 'PASS' : 'FAIL'}`);
    if (!pass) code = 1;
  }
} finally {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  await exited;
  if (!keep) rmSync(work, { recursive: true, force: true });
}
process.exit(code);
