#!/usr/bin/env node
// GPU benchmark of the CUDA backend (npm run bench:gpu; needs `npm run build`).
//
// Model A670K-FFI32-64k: 768 inputs -> dense 65,536 + ReLU -> FFI layer with
// fan-in 32 -> 670,091 labels (Amazon-670K's label count), squared-hinge
// loss, Adam on all four parameters. One training step = a new batch written
// (features; label lists cycle through a pool), denseForward,
// ffiLossBackward (the intermediate ReLU, the FFI layer's forward, loss and
// backward and the ReLU's backward fused, as the trainer runs it; loss read
// back), denseBackward, adam x4. The 'unfused' variant times reluForward,
// ffiForward, lossForward, ffiBackward and reluBackward in its place (the
// [B, L] scores stored), in the same run. Steps are pipelined as a
// trainer would run them (the loss of step t is awaited after step t+1 is
// enqueued). Each variant is timed twice: after a 5-step warm-up and again
// after --train-steps further steps (default 500), because the fused kernel
// skips the backward of labels whose squared-hinge gradient is zero and that
// share grows as training pushes negatives' scores below -1; the share of
// labels with a gradient in the timed steps is printed with each figure.
// Rewiring (rewireFfi, 10% of the connections) is timed once and amortised
// over an interval of 1000 steps. Top-k inference: features written, dense +
// ReLU + ffiTopK, results read back (k = 5: the fused top-k; k = 20: chunks of
// 32768 labels), at the training batch and at each --topk-batch size, one
// batch at a time and pipelined (the next batch enqueued before the previous
// result is awaited), with the split per op (each op synchronised). --int8
// adds inference-only variants with the int8TopK option (and TF32), with the
// share of the float32 top-5 labels they find.
//
// Prints median ms/step and samples/s per batch size, peak GPU memory of the
// backend's allocator, a per-op profile (each op synchronised: upper bounds),
// and, where python3 with torch is present, PyTorch references from
// bench/gpu-torch-ref.py run in the same job, with ratios.
//
//   node bench/gpu-bench.mjs [--batch 128,32] [--steps 40] [--train-steps 500] [--labels 670091]
//                            [--hidden 65536] [--fanin 32] [--input 768] [--no-torch] [--no-tf32]
//                            [--no-unfused] [--bf16] [--int8] [--preset P] [--memory-limit 4GiB] [--topk-batch 1024,4096]
//                            [--gradient-rows] [--only fp32,tf32,bf16,tf32+bf16] [--json file]
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchData, distinctSources } from '../dist/bench/bench-data.js';
import { createBackend } from '../dist/src/native/index.js';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
// Presets of the issue: the label count and intermediate size of the model ('dense-670k' is a
// dense 768 -> 670,091 head trained with BCE, the same op sequence as the PyTorch dense head).
const PRESETS = {
  'A670K-FFI32-64k': { labels: 670_091, hidden: 65_536, fanin: 32 },
  'W500K-FFI32-64k': { labels: 501_070, hidden: 65_536, fanin: 32 },
  'A3M-FFI32-131k': { labels: 2_812_281, hidden: 131_072, fanin: 32 },
  'dense-670k': { labels: 670_091, hidden: 0, fanin: 0 },
};
const presetName = opt('preset', 'A670K-FFI32-64k');
const preset = PRESETS[presetName];
if (!preset) throw new Error(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got ${presetName}`);
const sizeOf = (text) => {
  const m = /^([0-9.]+)(GiB|MiB)?$/.exec(text ?? '');
  if (!m) throw new Error(`--memory-limit must look like 4GiB or 512MiB, got ${text}`);
  return Math.floor(Number(m[1]) * (m[2] === 'GiB' ? 2 ** 30 : m[2] === 'MiB' ? 2 ** 20 : 1));
};
const memoryLimit = opt('memory-limit', null) === null ? undefined : sizeOf(opt('memory-limit'));
const cfg = {
  preset: presetName,
  memoryLimit,
  batches: opt('batch', '128,32').split(',').map(Number),
  steps: Number(opt('steps', '40')),
  warmup: 5,
  trainSteps: Number(opt('train-steps', '500')),
  input: Number(opt('input', '768')),
  hidden: Number(opt('hidden', String(preset.hidden))),
  labels: Number(opt('labels', String(preset.labels))),
  fanin: Number(opt('fanin', String(preset.fanin))),
  labelsPerRow: 5,
  rewireFraction: 0.1,
  rewireInterval: 1000,
  topk: 5,
};
const here = dirname(fileURLToPath(import.meta.url));

// Synthetic data from one seeded xoshiro128** stream (bench/bench-data.ts; until 2026-12-04 a hand-written
// generator with a period of 8,190 draws, which left 57,346 of the 65,536 units unused as sources and
// inflated every figure measured before that date: docs/PERFORMANCE.md).
const data = new BenchData();
const median = (a) => {
  const s = [...a].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mib = (b) => (b / 2 ** 20).toFixed(1);

// --- parameters (host copies, so that a second backend can load the same model) ---
const { input: D, hidden: H, labels: L, fanin: K } = cfg;
const t0 = performance.now();
const host = data.ffiModel({ input: D, hidden: H, labels: L, fanin: K });
const batchesHost = new Map(cfg.batches.map((B) => [B, Array.from({ length: 4 }, () => data.batch(B, D, L, cfg.labelsPerRow))]));
// How many of the H intermediate units feed some label: a check on the data (see above).
const sourcesUsed = distinctSources(host.idx, H);
console.log(presetName === 'dense-670k'
  ? `model ${presetName}: dense ${D} -> ${L} labels, BCE (host data in ${((performance.now() - t0) / 1000).toFixed(1)} s)`
  : `model ${presetName}: ${D} -> ${H} ReLU -> FFI k=${K} -> ${L} labels, ${sourcesUsed} of ${H} units used as sources (host data in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);

async function loadModel(be) {
  const param = (data, shape) => {
    const p = be.fromArray(data, shape);
    const m = be.tensor('float32', shape), v = be.tensor('float32', shape), g = be.tensor('float32', shape);
    be.fill(m, 0);
    be.fill(v, 0);
    return { p, m, v, g };
  };
  const model = {
    W1: param(host.W1, [H, D]), b1: param(new Float32Array(H), [H]),
    W2: param(host.W2, [L, K]), b2: param(new Float32Array(L), [L]),
    idx: be.fromArray(host.idx, [L, K]),
  };
  await be.sync();
  return model;
}

/** Buffers and the ops of one training step at batch B; `fused`: ffiLossBackward, else the three unfused ops. */
function stepper(be, model, B, fused) {
  const { W1, b1, W2, b2, idx } = model;
  const x = be.tensor('float32', [B, D]), h = be.tensor('float32', [B, H]), dH = be.tensor('float32', [B, H]);
  const scores = fused ? null : be.tensor('float32', [B, L]), lossT = be.tensor('float32', [1]);
  const pool = batchesHost.get(B).map((q) => ({ x: q.x, ptr: be.fromArray(q.ptr), ids: be.fromArray(q.ids) }));
  let t = 0;
  const ops = {
    write: (batch) => x.write(batch.x),
    denseForward: () => be.denseForward(x, W1.p, b1.p, h),
    // fused: as the trainer does it, the ReLU and its backward inside ffiLossBackward (inputRelu; h stays the
    // ReLU's input); unfused: the separate ops
    ...(fused ? {
      ffiLossBackward: (batch) => be.ffiLossBackward(h, W2.p, idx, b2.p, batch.ptr, batch.ids, dH, W2.g, b2.g, { out: lossT, inputRelu: true }),
    } : {
      reluForward: () => be.reluForward(h, h),
      ffiForward: () => be.ffiForward(h, W2.p, idx, b2.p, scores),
      lossForward: (batch) => be.lossForward(scores, batch.ptr, batch.ids, scores, { out: lossT }),
      ffiBackward: () => be.ffiBackward(h, W2.p, idx, scores, dH, W2.g, b2.g),
      reluBackward: () => be.reluBackward(h, dH, dH),
    }),
    denseBackward: () => be.denseBackward(x, W1.p, dH, null, W1.g, b1.g),
    adam: () => {
      for (const q of [W1, b1, W2, b2]) be.adam(q.p, q.g, q.m, q.v, { lr: 1e-3, step: t });
    },
  };
  const step = () => {
    t++;
    const batch = pool[t % pool.length];
    for (const f of Object.values(ops)) f(batch);
    return lossT.read();
  };
  const dispose = () => {
    for (const q of [x, h, dH, scores, lossT]) q?.dispose();
    for (const q of pool) { q.ptr.dispose(); q.ids.dispose(); }
  };
  return { ops, step, pool, x, h, lossT, dispose, model, batch: () => pool[t % pool.length], tick: () => ++t };
}

/** Median ms/step of pipelined training steps (the loss of step t awaited after step t+1 is enqueued). */
async function timeTraining(be, st, B, warmup) {
  for (let i = 0; i < warmup; i++) {
    const p = st.step();
    if (i % 16 === 15 || i === warmup - 1) await p;
  }
  be.resetPeakMemory();
  const done = [];
  const tStart = performance.now();
  let prev = st.step();
  for (let i = 1; i < cfg.steps; i++) {
    const next = st.step();
    const v = await prev;
    if (!Number.isFinite(v[0])) throw new Error(`loss is ${v[0]}`);
    done.push(performance.now());
    prev = next;
  }
  const last = await prev;
  done.push(performance.now());
  const total = performance.now() - tStart;
  const msStep = median(done.slice(1).map((d, i) => d - done[i]));
  return { msStep, meanMs: total / cfg.steps, peak: be.memoryStats().peakBytes, loss: last[0], active: await activeShare(st) };
}

/**
 * --gradient-rows: how the squared hinge's gradient of the last step is spread over the labels (the rows of
 * a label with a non-zero gradient decide the fused kernel's path: none, a few rows, or whole 128-row runs).
 * Scores come from ffiForward on the last step's h and batch ([B, L] on the GPU for this diagnostic only).
 */
async function gradientRows(be, st, B) {
  const { W2, b2, idx } = st.model;
  const batch = st.batch();
  const scores = be.tensor('float32', [B, L]), h = be.tensor('float32', [B, H]);
  be.reluForward(st.h, h); // the fused step leaves h as the ReLU's input
  be.ffiForward(h, W2.p, idx, b2.p, scores);
  h.dispose();
  const s = await scores.read();
  scores.dispose();
  const host = batchesHost.get(B)[st.pool.indexOf(batch)];
  const positive = new Uint8Array(B * L);
  for (let b = 0; b < B; b++) for (let e = host.ptr[b]; e < host.ptr[b + 1]; e++) positive[b * L + host.ids[e]] = 1;
  const rows = new Uint16Array(L);
  let entries = 0;
  for (let b = 0; b < B; b++)
    for (let l = 0; l < L; l++) {
      const v = s[b * L + l];
      if (positive[b * L + l] ? v < 1 : v > -1) { rows[l]++; entries++; }
    }
  const bins = [[0, 0], [1, 4], [5, 12], [13, 32], [33, 64], [65, 128]];
  const share = bins.map(([a, z]) => {
    let n = 0;
    for (let l = 0; l < L; l++) if (rows[l] >= a && rows[l] <= z) n++;
    return `${a === z ? a : `${a}-${z}`}: ${(100 * n / L).toFixed(1)}%`;
  });
  return `gradient rows per label (squared hinge, last step's batch; ${(100 * entries / (B * L)).toFixed(2)}% of [B, L] entries non-zero): ${share.join(', ')}`;
}

/** Share of the labels whose bias gradient of the last step is non-zero: those that had a loss gradient. */
async function activeShare(st) {
  const g = await st.model.b2.g.read();
  let n = 0;
  for (let i = 0; i < g.length; i++) if (g[i] !== 0) n++;
  return n / g.length;
}

const results = { device: null, config: cfg, train: [], topk: [], profile: {}, torch: null };
async function benchBackend(be, label, batches) {
  const info = be.info();
  results.device = info;
  console.log(`\n[${label}] device: ${info.name} (cc ${info.computeCapability}, ${info.multiprocessors} SMs), cuBLAS ${info.cublas}, TF32 ${info.tf32}`);
  {
    const model = await loadModel(be);
    console.log(`[${label}] parameters on the GPU: ${mib(be.memoryStats().currentBytes)} MiB (weights, gradients, Adam moments, sources)`);
    disposeModel(model);
  }
  for (const B of batches) {
    const variants = label === 'fp32' && !args.includes('--no-unfused') ? [true, false] : [true];
    for (const fused of variants) {
    const phases = [['after 5 steps', cfg.warmup], [`after ${cfg.warmup + cfg.steps + cfg.trainSteps} steps`, cfg.trainSteps]];
    const model = await loadModel(be); // fresh weights: each variant trains from the same start
    const st = stepper(be, model, B, fused);
    for (const [phase, warmup] of phases) {
      const r = await timeTraining(be, st, B, warmup);
      // rewiring, amortised
      await be.sync();
      const r0 = performance.now();
      be.rewireFfi(model.W2.p, model.idx, model.W2.m, model.W2.v, { fraction: cfg.rewireFraction, inputDim: H, seed: 1000 + B });
      await be.sync();
      const rewireMs = performance.now() - r0;
      const withRewire = r.msStep + rewireMs / cfg.rewireInterval;
      const row = {
        variant: `${label}${fused ? '' : ' unfused'}`, phase, activeLabels: r.active, batch: B, msPerStep: r.msStep, meanMsPerStep: r.meanMs,
        samplesPerSecond: (1000 * B) / r.msStep, rewireMs, msPerStepWithRewire: withRewire,
        samplesPerSecondWithRewire: (1000 * B) / withRewire, peakBytes: r.peak, lastLoss: r.loss,
      };
      results.train.push(row);
      console.log(`train [${row.variant}] B=${B} ${phase} (labels with a gradient: ${(100 * r.active).toFixed(1)}%): median ${r.msStep.toFixed(3)} ms/step (mean ${r.meanMs.toFixed(3)}), ${row.samplesPerSecond.toFixed(0)} samples/s; ` +
        `rewire ${rewireMs.toFixed(0)} ms -> ${withRewire.toFixed(3)} ms/step amortised over ${cfg.rewireInterval} (${row.samplesPerSecondWithRewire.toFixed(0)} samples/s); ` +
        `peak GPU memory (allocator) ${mib(r.peak)} MiB; loss ${r.loss.toExponential(3)}`);
      if (fused && args.includes('--gradient-rows')) console.log(`  ${await gradientRows(be, st, B)}`);
    }
    if (!fused) { st.dispose(); disposeModel(model); continue; }
    // per-op profile: each op followed by a sync (each includes about one empty-sync round trip)
    const prof = {};
    const timed = async (name, f) => {
      await be.sync();
      const a = performance.now();
      f();
      await be.sync();
      (prof[name] ??= []).push(performance.now() - a);
    };
    for (let i = 0; i < 8; i++) {
      st.tick();
      const batch = st.batch();
      for (const [name, f] of Object.entries(st.ops)) await timed(name, () => f(batch));
    }
    await be.sync();
    const e0 = performance.now();
    await be.sync();
    const syncMs = performance.now() - e0;
    results.profile[`${label} B=${B}`] = Object.fromEntries(Object.entries(prof).map(([k, v]) => [k, median(v)]));
    console.log(`  per-op (synchronised, median ms; an empty sync takes ${syncMs.toFixed(3)} ms): ` +
      Object.entries(results.profile[`${label} B=${B}`]).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', '));
    // top-k inference: k = 5 takes the fused kernel (k <= 16); k = 20 the chunked path (chunks of 32768 labels).
    // --topk-batch 128,1024 times other inference batch sizes too (k = 5), with a per-op split.
    for (const Bt of inferBatches(B)) {
      const own = Bt === B;
      const xs = own ? st.pool.map((q) => q.x) : inferenceInputs(Bt);
      const x = own ? st.x : be.tensor('float32', [Bt, D]), h = own ? st.h : be.tensor('float32', [Bt, H]);
      for (const [topk, chunk] of [[cfg.topk, 32768], ...(label === 'fp32' && own ? [[20, 32768]] : [])]) {
        await timeInference(be, model, label, { x, h, xs, topk, chunk });
      }
      if (!own) { x.dispose(); h.dispose(); }
    }
    st.dispose();
    disposeModel(model);
    }
  }
}

const inferBatches = (B) => [...new Set([B, ...opt('topk-batch', '').split(',').filter(Boolean).map(Number)])];
const inferenceInputs = (Bt) => Array.from({ length: 3 }, () => data.floats(Bt * D, 1 / Math.sqrt(D)));

/** One inference batch enqueued: features written, dense + ReLU, fused top-k (a promise of the result). */
function inferOnce(be, model, { x, h, topk, chunk }, input) {
  x.write(input);
  be.denseForward(x, model.W1.p, model.b1.p, h);
  be.reluForward(h, h);
  return be.ffiTopK(h, model.W2.p, model.idx, model.b2.p, topk, { chunk });
}

/**
 * Top-k inference timing: one batch at a time (write, dense, ReLU, top-k, result read back; median ms), pipelined
 * (batch i + 1 enqueued before batch i's result is awaited, as a server would run it; median interval between
 * results), and the split per op (each synchronised).
 */
async function timeInference(be, model, label, run) {
  const { x, xs, topk, chunk } = run;
  const Bt = x.shape[0];
  const seq = [], piped = [];
  const split = { write: [], denseForward: [], reluForward: [], topk: [] };
  for (let i = 0; i < 9; i++) {
    const a = performance.now();
    const res = await inferOnce(be, model, run, xs[i % xs.length]);
    if (res.labels.length !== Bt * topk) throw new Error('bad top-k result');
    if (i >= 2) seq.push(performance.now() - a);
  }
  let prev = inferOnce(be, model, run, xs[0]);
  let last = performance.now();
  for (let i = 1; i <= 12; i++) {
    const next = inferOnce(be, model, run, xs[i % xs.length]);
    await prev;
    const now = performance.now();
    if (i > 2) piped.push(now - last);
    last = now;
    prev = next;
  }
  await prev;
  for (let i = 0; i < 7; i++) {
    const t = [];
    await be.sync(); t.push(performance.now());
    x.write(xs[i % xs.length]); await be.sync(); t.push(performance.now());
    be.denseForward(x, model.W1.p, model.b1.p, run.h); await be.sync(); t.push(performance.now());
    be.reluForward(run.h, run.h); await be.sync(); t.push(performance.now());
    await be.ffiTopK(run.h, model.W2.p, model.idx, model.b2.p, topk, { chunk }); t.push(performance.now());
    Object.keys(split).forEach((k, j) => split[k].push(t[j + 1] - t[j]));
  }
  const seqMs = median(seq), pipedMs = median(piped);
  const how = topk <= 16 ? 'fused' : `chunks of ${chunk}`;
  const splitMs = Object.fromEntries(Object.entries(split).map(([k, v]) => [k, median(v)]));
  const row = { variant: label, k: topk, batch: Bt, how, msPerBatch: seqMs, samplesPerSecond: (1000 * Bt) / seqMs,
    pipelinedMsPerBatch: pipedMs, pipelinedSamplesPerSecond: (1000 * Bt) / pipedMs, split: splitMs };
  results.topk.push(row);
  console.log(`top-${topk} inference [${label}] B=${Bt} (${how}): one at a time ${seqMs.toFixed(3)} ms/batch, ${row.samplesPerSecond.toFixed(0)} samples/s; ` +
    `pipelined ${pipedMs.toFixed(3)} ms/batch, ${row.pipelinedSamplesPerSecond.toFixed(0)} samples/s; ` +
    `split ${Object.entries(splitMs).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')} ms`);
  return row;
}

/**
 * Inference-only variants (--int8: the int8TopK option): the untrained model (training is not affected by the
 * option), top-5 timed at the training batch and each --topk-batch, and the share of the float32 top-5 labels
 * that the variant finds, on the same inputs against a float32 backend.
 */
async function benchInference(be, label, B) {
  const model = await loadModel(be);
  const ref = createBackend('cuda', cudaOptions);
  const refModel = await loadModel(ref);
  for (const Bt of inferBatches(B)) {
    const xs = inferenceInputs(Bt);
    const mk = (b) => ({ x: b.tensor('float32', [Bt, D]), h: b.tensor('float32', [Bt, H]), xs, topk: cfg.topk, chunk: 32768 });
    const run = mk(be), refRun = mk(ref);
    await timeInference(be, model, label, run);
    let common = 0, total = 0;
    for (const input of xs) {
      const [a, r] = await Promise.all([inferOnce(be, model, run, input), inferOnce(ref, refModel, refRun, input)]);
      for (let row = 0; row < Bt; row++) {
        const want = new Set(r.labels.subarray(row * cfg.topk, (row + 1) * cfg.topk));
        for (const l of a.labels.subarray(row * cfg.topk, (row + 1) * cfg.topk)) if (want.has(l)) common++;
        total += cfg.topk;
      }
    }
    console.log(`  [${label}] B=${Bt}: ${(100 * common / total).toFixed(2)}% of the float32 top-${cfg.topk} labels found (${xs.length} batches, untrained model)`);
    results.topk[results.topk.length - 1].agreementWithFloat32 = common / total;
    for (const t of [run.x, run.h, refRun.x, refRun.h]) t.dispose();
  }
  disposeModel(model);
  disposeModel(refModel);
}

function disposeModel(model) {
  for (const q of [model.W1, model.b1, model.W2, model.b2]) for (const t of [q.p, q.m, q.v, q.g]) t.dispose();
  model.idx.dispose();
}

/** Our dense head: denseForward, lossForward (BCE, gradient in place), denseBackward, adam x2: the PyTorch dense head's steps. */
async function benchDense(be, label, batches) {
  const info = be.info();
  results.device = info;
  console.log(`\n[${label}] device: ${info.name}, cuBLAS ${info.cublas}, TF32 ${info.tf32}`);
  const W = data.floats(L * D, Math.sqrt(6 / (D + L)));
  for (const B of batches) {
    const param = (data, shape) => ({ p: be.fromArray(data, shape), g: be.tensor('float32', shape), m: be.tensor('float32', shape), v: be.tensor('float32', shape) });
    const Wp = param(W, [L, D]), bp = param(new Float32Array(L), [L]);
    for (const q of [Wp, bp]) { be.fill(q.m, 0); be.fill(q.v, 0); }
    const x = be.tensor('float32', [B, D]), scores = be.tensor('float32', [B, L]), lossT = be.tensor('float32', [1]);
    const pool = batchesHost.get(B).map((q) => ({ x: q.x, ptr: be.fromArray(q.ptr), ids: be.fromArray(q.ids) }));
    let t = 0;
    const ops = {
      write: (batch) => x.write(batch.x),
      denseForward: () => be.denseForward(x, Wp.p, bp.p, scores),
      lossForward: (batch) => be.lossForward(scores, batch.ptr, batch.ids, scores, { kind: 'bce', out: lossT }),
      denseBackward: () => be.denseBackward(x, Wp.p, scores, null, Wp.g, bp.g),
      adam: () => { for (const q of [Wp, bp]) be.adam(q.p, q.g, q.m, q.v, { lr: 1e-3, step: t }); },
    };
    const st = {
      model: { b2: bp },
      step: () => { t++; const batch = pool[t % pool.length]; for (const f of Object.values(ops)) f(batch); return lossT.read(); },
    };
    const r = await timeTraining(be, st, B, cfg.warmup);
    const row = { variant: label, phase: 'after 5 steps', activeLabels: r.active, batch: B, msPerStep: r.msStep, meanMsPerStep: r.meanMs,
      samplesPerSecond: (1000 * B) / r.msStep, rewireMs: 0, msPerStepWithRewire: r.msStep, samplesPerSecondWithRewire: (1000 * B) / r.msStep, peakBytes: r.peak, lastLoss: r.loss };
    results.train.push(row);
    console.log(`train [${label} dense head] B=${B}: median ${r.msStep.toFixed(3)} ms/step, ${row.samplesPerSecond.toFixed(0)} samples/s; peak GPU memory (allocator) ${mib(r.peak)} MiB`);
    for (const q of [Wp, bp]) for (const tt of [q.p, q.g, q.m, q.v]) tt.dispose();
    for (const q of [x, scores, lossT]) q.dispose();
  }
}

const cudaOptions = memoryLimit === undefined ? {} : { memoryLimit };
if (memoryLimit !== undefined) console.log(`GPU memory limit (allocator): ${mib(memoryLimit)} MiB`);
const benchVariant = presetName === 'dense-670k' ? benchDense : benchBackend;
// --only fp32,tf32+bf16: only these variants (for A/B runs of one variant; the torch ratio needs fp32)
const only = opt('only', null)?.split(',');
const runBackend = async (be, label, batches) => { if (!only || only.includes(label)) await benchVariant(be, label, batches); };
await runBackend(createBackend('cuda', cudaOptions), 'fp32', cfg.batches);
if (!args.includes('--no-tf32')) await runBackend(createBackend('cuda', { ...cudaOptions, tf32: true }), 'tf32', [cfg.batches[0]]);
if (args.includes('--int8') && presetName !== 'dense-670k') {
  await benchInference(createBackend('cuda', { ...cudaOptions, int8TopK: true }), 'int8', cfg.batches[0]);
  await benchInference(createBackend('cuda', { ...cudaOptions, int8TopK: true, tf32: true }), 'tf32+int8', cfg.batches[0]);
}
if (args.includes('--bf16') && presetName !== 'dense-670k') {
  // bfloat16 gathers in the fused FFI kernels (an option: scores within ~4e-3 relative)
  await runBackend(createBackend('cuda', { ...cudaOptions, bf16Gathers: true }), 'bf16', [cfg.batches[0]]);
  await runBackend(createBackend('cuda', { ...cudaOptions, bf16Gathers: true, tf32: true }), 'tf32+bf16', [cfg.batches[0]]);
}

// --- PyTorch references ---------------------------------------------------------
if (!args.includes('--no-torch')) {
  const py = spawnSync('python3', ['-c', 'import torch; print(torch.cuda.is_available())'], { encoding: 'utf8' });
  if (py.status === 0 && py.stdout.trim() === 'True') {
    const r = spawnSync('python3', [join(here, 'gpu-torch-ref.py'), '--batch', cfg.batches.join(','), '--labels', String(L), '--hidden', String(H), '--fanin', String(K), '--input', String(D)],
      { encoding: 'utf8', env: { ...process.env, PYTHONUNBUFFERED: '1' }, timeout: 110_000 });
    process.stdout.write(r.stderr ?? '');
    const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('{'));
    if (line) {
      results.torch = JSON.parse(line);
      for (const row of results.torch.rows) {
        // ours / torch for each of our variants at this batch (the last phase timed: the trained regime)
        const ours = [...new Set(results.train.filter((q) => q.batch === row.batch && !q.variant.includes('unfused')).map((q) => q.variant))]
          .map((v) => results.train.findLast((q) => q.batch === row.batch && q.variant === v));
        const ratio = row.samplesPerSecond && ours.length ? ours.map((q) => `${q.variant} ${(q.samplesPerSecond / row.samplesPerSecond).toFixed(2)}`).join(', ') : 'n/a';
        console.log(`torch ${row.model} B=${row.batch}: ${row.error ? `failed: ${row.error}` : `${row.msPerStep.toFixed(3)} ms/step, ${row.samplesPerSecond.toFixed(0)} samples/s, peak ${mib(row.peakBytes)} MiB; ours/torch: ${ratio}`}`);
      }
    } else {
      console.log(`torch reference produced no result (status ${r.status}): ${(r.stdout ?? '').slice(-500)}`);
    }
  } else {
    console.log('torch reference skipped: python3 with CUDA torch not found');
  }
}

const json = opt('json', null);
if (json) writeFileSync(json, JSON.stringify(results, null, 2));
console.log('\nsummary');
for (const row of results.train)
  console.log(`  train [${row.variant}] B=${row.batch} ${row.phase} (${(100 * row.activeLabels).toFixed(1)}% labels with a gradient): ${row.samplesPerSecond.toFixed(0)} samples/s (${row.msPerStep.toFixed(3)} ms/step; ${row.samplesPerSecondWithRewire.toFixed(0)} with rewiring amortised), peak ${mib(row.peakBytes)} MiB`);
for (const row of results.topk) console.log(`  top-${row.k} [${row.variant}] B=${row.batch} (${row.how}): ${row.samplesPerSecond.toFixed(0)} samples/s (${row.msPerBatch.toFixed(3)} ms/batch)`);
process.exit(0);
