#!/usr/bin/env node
// Times training steps of the CPU backend (build first: npm run build).
//
//   node bench/ops-cpu.mjs [--threads N] [--steps N] [--labels L] [--batch B] [--only dense-ffi|dense] [--profile]
//
//   dense-ffi: 768 -> 4096 ReLU -> FFI (k = 32) -> L labels (default 100,000)
//   dense:     768 -> L dense head
// One step = forward, squared-hinge loss (read back), backward, Adam on every
// parameter, with a new random batch (5 labels per row) written each step.
// Prints the median ms/step, samples/s and the peak native bytes
// (memoryStats().peakBytes over the timed steps: parameters, Adam moments,
// activations, gradients and op scratch). --profile adds a per-op breakdown
// (syncing after every op, so its total is a little above the step time).
import { createBackend } from '../dist/src/native/index.js';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}
const threads = arg('threads') === undefined ? undefined : Number(arg('threads'));
const steps = Number(arg('steps', 10));
const L = Number(arg('labels', 100_000));
const B = Number(arg('batch', 32));
const only = arg('only');
const profile = process.argv.includes('--profile');
const D = 768, H = 4096, K = 32, LABELS_PER_ROW = 5;

let seed = 12345;
function rand() {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 4294967296;
}
function uniform(n, scale) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (2 * rand() - 1) * scale;
  return a;
}
function ffiSources(rows, k, inputs) {
  const idx = new Uint32Array(rows * k);
  const seen = new Set();
  for (let l = 0; l < rows; l++) {
    seen.clear();
    for (let j = 0; j < k; j++) {
      let s;
      do s = Math.floor(rand() * inputs); while (seen.has(s));
      seen.add(s);
      idx[l * k + j] = s;
    }
  }
  return idx;
}

const be = createBackend('cpu', threads === undefined ? {} : { threads });
const zeros = (shape) => {
  const t = be.tensor('float32', shape);
  be.fill(t, 0);
  return t;
};

/** A parameter with its gradient and Adam moments. */
function param(shape, init) {
  return { w: be.fromArray(init, shape), g: be.tensor('float32', shape), m: zeros(shape), v: zeros(shape) };
}

function batchInputs() {
  const x = be.tensor('float32', [B, D]);
  const labelPtr = be.fromArray(Uint32Array.from({ length: B + 1 }, (_, i) => i * LABELS_PER_ROW));
  const labelIds = be.tensor('uint32', [B * LABELS_PER_ROW]);
  const next = () => {
    x.write(uniform(B * D, 1));
    labelIds.write(Uint32Array.from({ length: B * LABELS_PER_ROW }, () => Math.floor(rand() * L)));
  };
  return { x, labelPtr, labelIds, next };
}

const timings = new Map();
async function timed(name, fn) {
  if (!profile) return fn();
  await be.sync();
  const t0 = performance.now();
  const r = fn();
  await be.sync();
  timings.set(name, (timings.get(name) ?? []).concat(performance.now() - t0));
  return r;
}

function median(a) {
  const s = [...a].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function run(name, step, params) {
  const lr = 1e-3;
  let t = 0;
  const adamAll = () => {
    t++;
    for (const p of params) be.adam(p.w, p.g, p.m, p.v, { lr, step: t });
  };
  for (let i = 0; i < 2; i++) await step(adamAll); // warm-up
  timings.clear();
  await be.sync();
  be.resetPeakMemory();
  const times = [];
  let loss = NaN;
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    loss = await step(adamAll);
    times.push(performance.now() - t0);
  }
  const ms = median(times);
  const paramBytes = params.reduce((a, p) => a + 4 * p.w.size, 0);
  console.log(`${name}: median ${ms.toFixed(1)} ms/step, ${(B / (ms / 1000)).toFixed(0)} samples/s, ` +
    `peak ${(be.memoryStats().peakBytes / 2 ** 20).toFixed(1)} MiB native (parameters ${(paramBytes / 2 ** 20).toFixed(1)} MiB), ` +
    `loss ${loss.toFixed(4)} after ${t} steps`);
  if (profile) {
    for (const [op, a] of timings) console.log(`  ${op.padEnd(16)} ${median(a).toFixed(2)} ms`);
  }
}

console.log(`CPU backend: ${be.threads} threads, batch ${B}, ${L} labels, ${steps} timed steps`);

if (!only || only === 'dense-ffi') {
  const l1 = { W: param([H, D], uniform(H * D, 1 / Math.sqrt(D))), b: param([H], new Float32Array(H)) };
  const l2 = { W: param([L, K], uniform(L * K, 1 / Math.sqrt(K))), b: param([L], new Float32Array(L)) };
  const idx = be.fromArray(ffiSources(L, K, H), [L, K]);
  const h = be.tensor('float32', [B, H]), dH = be.tensor('float32', [B, H]);
  const scores = be.tensor('float32', [B, L]);
  const lossT = be.tensor('float32', [1]);
  const batch = batchInputs();
  const step = async (adamAll) => {
    batch.next();
    await timed('denseForward', () => be.denseForward(batch.x, l1.W.w, l1.b.w, h));
    await timed('reluForward', () => be.reluForward(h, h));
    await timed('ffiForward', () => be.ffiForward(h, l2.W.w, idx, l2.b.w, scores));
    await timed('lossForward', () => be.lossForward(scores, batch.labelPtr, batch.labelIds, scores, { out: lossT }));
    await timed('ffiBackward', () => be.ffiBackward(h, l2.W.w, idx, scores, dH, l2.W.g, l2.b.g));
    await timed('reluBackward', () => be.reluBackward(h, dH, dH));
    await timed('denseBackward', () => be.denseBackward(batch.x, l1.W.w, dH, null, l1.W.g, l1.b.g));
    await timed('adam (all)', adamAll);
    return (await lossT.read())[0];
  };
  await run(`dense-ffi ${D} -> ${H} ReLU -> FFI k=${K} -> ${L}`, step, [l1.W, l1.b, l2.W, l2.b]);
  for (const t of [h, dH, scores, lossT, idx, batch.x, batch.labelPtr, batch.labelIds]) t.dispose();
  for (const p of [l1.W, l1.b, l2.W, l2.b]) for (const t of Object.values(p)) t.dispose();
  await be.sync();
}

if (!only || only === 'dense') {
  const W = param([L, D], uniform(L * D, 1 / Math.sqrt(D))), b = param([L], new Float32Array(L));
  const scores = be.tensor('float32', [B, L]);
  const lossT = be.tensor('float32', [1]);
  const batch = batchInputs();
  const step = async (adamAll) => {
    batch.next();
    await timed('denseForward', () => be.denseForward(batch.x, W.w, b.w, scores));
    await timed('lossForward', () => be.lossForward(scores, batch.labelPtr, batch.labelIds, scores, { out: lossT }));
    await timed('denseBackward', () => be.denseBackward(batch.x, W.w, scores, null, W.g, b.g));
    await timed('adam (all)', adamAll);
    return (await lossT.read())[0];
  };
  await run(`dense ${D} -> ${L}`, step, [W, b]);
}
