#!/usr/bin/env node
// A small run of every CUDA op (tiny shapes), compared with the CPU backend:
// cheap enough to run under compute-sanitizer (memcheck / racecheck) on the
// GPU host, e.g.  compute-sanitizer --tool memcheck node bench/gpu-sanity.mjs
// Exits 1 on a mismatch or an unexpected error.
import { createBackend } from '../dist/src/native/index.js';

const cpu = createBackend('cpu', { threads: 2 });
const gpu = createBackend('cuda');
let seed = 12345;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
const floats = (n) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
const distinctRows = (L, k, I) => {
  const a = new Uint32Array(L * k);
  for (let l = 0; l < L; l++) {
    const used = new Set();
    for (let j = 0; j < k; j++) {
      let s;
      do s = Math.floor(rand() * I);
      while (used.has(s));
      used.add(s);
      a[l * k + j] = s;
    }
  }
  return a;
};
let failures = 0;
const close = (what, a, b, tol = 1e-4) => {
  let num = 0, den = 0, nan = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) !== Number.isNaN(b[i])) nan++;
    else if (!Number.isNaN(a[i])) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  }
  const err = den ? Math.sqrt(num / den) : Math.sqrt(num);
  const ok = a.length === b.length && nan === 0 && err < tol;
  if (!ok) failures++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}: rel err ${err.toExponential(2)}${nan ? `, ${nan} NaN mismatches` : ''}`);
};

const B = 5, I = 37, L = 70, k = 6, nnz = 300;
const x = floats(B * I), Wd = floats(L * I), Wf = floats(L * k), b = floats(L), g = floats(B * L), Ws = floats(nnz);
const idx = distinctRows(L, k, I);
const cells = [...new Set(Array.from({ length: nnz * 2 }, () => Math.floor(rand() * L * I)))].slice(0, nnz).sort((p, q) => p - q);
const rowPtr = new Uint32Array(L + 1), col = new Uint32Array(cells.length);
cells.forEach((c, e) => { rowPtr[Math.floor(c / I) + 1]++; col[e] = c % I; });
for (let l = 0; l < L; l++) rowPtr[l + 1] += rowPtr[l];
const labels = { ptr: Uint32Array.from([0, 2, 2, 5, 6, 8]), ids: Uint32Array.from([1, 69, 3, 3, 40, 0, 7, 8]) };

async function run(be) {
  const out = {};
  const tx = be.fromArray(x, [B, I]), tb = be.fromArray(b), tg = be.fromArray(g, [B, L]);
  const t = (shape) => { const q = be.tensor('float32', shape); be.fill(q, Number.NaN); return q; };
  const o1 = t([B, L]), dX1 = t([B, I]), dW1 = t([L, I]), dB1 = t([L]);
  const tWd = be.fromArray(Wd, [L, I]);
  be.denseForward(tx, tWd, tb, o1);
  be.denseBackward(tx, tWd, tg, dX1, dW1, dB1);
  const o2 = t([B, L]), dX2 = t([B, I]), dW2 = t([L, k]), dB2 = t([L]);
  const tWf = be.fromArray(Wf, [L, k]), tIdx = be.fromArray(idx, [L, k]);
  be.ffiForward(tx, tWf, tIdx, tb, o2);
  be.ffiBackward(tx, tWf, tIdx, tg, dX2, dW2, dB2);
  const o3 = t([B, L]), dX3 = t([B, I]), dW3 = t([col.length]), dB3 = t([L]);
  const tRp = be.fromArray(rowPtr), tCol = be.fromArray(col), tWs = be.fromArray(Ws.subarray(0, col.length));
  be.sparseForward(tx, tRp, tCol, tWs, tb, o3);
  be.sparseBackward(tx, tRp, tCol, tWs, tg, dX3, dW3, dB3);
  const relu = t([B, L]), drop = t([B, L]), d = t([B, L]);
  be.reluForward(o2, relu);
  be.dropout(o2, drop, 0.25, 7);
  const loss = be.lossForward(o2, be.fromArray(labels.ptr), be.fromArray(labels.ids), d, { kind: 'bce' });
  const dX4 = t([B, I]), dW4 = t([L, k]), dB4 = t([L]);
  const fusedLoss = be.ffiLossBackward(tx, tWf, tIdx, tb, be.fromArray(labels.ptr), be.fromArray(labels.ids), dX4, dW4, dB4);
  const p = be.fromArray(Wf, [L, k]), m = be.fromArray(new Float32Array(L * k), [L, k]), v = be.fromArray(new Float32Array(L * k), [L, k]);
  be.adam(p, dW2, m, v, { lr: 0.01, step: 1 });
  const ridx = be.fromArray(idx, [L, k]);
  be.rewireFfi(be.fromArray(Wf, [L, k]), ridx, be.fromArray(new Float32Array(L * k), [L, k]), be.fromArray(new Float32Array(L * k), [L, k]), { fraction: 0.3, inputDim: I, seed: 5 });
  const names = ['o1', 'dX1', 'dW1', 'dB1', 'o2', 'dX2', 'dW2', 'dB2', 'o3', 'dX3', 'dW3', 'dB3', 'relu', 'drop', 'd', 'loss', 'adam', 'rewired', 'fusedLoss', 'dX4', 'dW4', 'dB4'];
  const vals = await Promise.all([o1, dX1, dW1, dB1, o2, dX2, dW2, dB2, o3, dX3, dW3, dB3, relu, drop, d, loss, p, ridx, fusedLoss, dX4, dW4, dB4].map((q) => q.read()));
  names.forEach((n, i) => (out[n] = vals[i]));
  const tk = await Promise.all([
    be.topK(o2, 4), be.denseTopK(tx, tWd, tb, 3, { chunk: 16 }), be.ffiTopK(tx, tWf, tIdx, tb, 3, { chunk: 16 }),
    be.sparseTopK(tx, tRp, tCol, tWs, tb, 3, { chunk: 16 }),
  ]);
  tk.forEach((r, i) => { out[`topk${i}.scores`] = r.scores; out[`topk${i}.labels`] = r.labels; });
  // a failure and the recovery
  be.ffiForward(tx, tWf, be.fromArray(Uint32Array.from({ length: L * k }, (_, i) => (i === 17 ? 99 : 0)), [L, k]), tb, o2);
  out.failure = await be.sync().then(() => 'none', (e) => e.message);
  return out;
}

const [c, gres] = await Promise.all([run(cpu), run(gpu)]);
for (const key of Object.keys(c)) {
  if (key === 'failure') {
    const ok = c.failure === gres.failure;
    if (!ok) failures++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} failure message: ${gres.failure}`);
  } else if (key.endsWith('.labels') || key === 'rewired') {
    const ok = c[key].every((v, i) => v === gres[key][i]);
    if (!ok) failures++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${key}: equal`);
  } else {
    close(key, gres[key], c[key]);
  }
}
// bf16 gathers (the fused kernels' other instantiations): against the CPU at bf16 tolerance; 16 rows take
// the 16-byte gathers and the loss kernel's shared-memory cache of a label's gathers.
{
  const bf = createBackend('cuda', { bf16Gathers: true });
  const run = async (be, Bq, xq) => {
    const labels = { ptr: Uint32Array.from({ length: Bq + 1 }, (_, i) => 2 * i), ids: Uint32Array.from({ length: 2 * Bq }, (_, i) => (7 * i) % L) };
    const t = (shape) => be.tensor('float32', shape);
    const dX = t([Bq, I]), dW = t([L, k]), dB = t([L]);
    const tx = be.fromArray(xq, [Bq, I]), tW = be.fromArray(Wf, [L, k]), tIdx = be.fromArray(idx, [L, k]), tb = be.fromArray(b);
    const loss = be.ffiLossBackward(tx, tW, tIdx, tb, be.fromArray(labels.ptr), be.fromArray(labels.ids), dX, dW, dB);
    const top = await be.ffiTopK(tx, tW, tIdx, tb, 3);
    return [...(await Promise.all([loss, dX, dW, dB].map((q) => q.read()))), top.scores];
  };
  for (const [Bq, xq] of [[B, x], [16, floats(16 * I)]]) {
    const [c, h] = await Promise.all([run(cpu, Bq, xq), run(bf, Bq, xq)]);
    ['loss', 'dX', 'dW', 'dB', 'top-3 scores'].forEach((what, i) => close(`bf16 B=${Bq} ${what}`, h[i], c[i], 2e-2));
  }
}
// int8 top-k (its own kernel): 128-, 256- and 512-row chunks (B = 3, 150, 600: 600 is a whole chunk
// and a partial one), against the CPU backend's int8 reference: the same integers, equal bit for bit.
{
  const q8 = createBackend('cuda', { int8TopK: true }), cq8 = createBackend('cpu', { threads: 2, int8TopK: true });
  for (const Bq of [3, 150, 600]) {
    const xq = floats(Bq * I);
    const top = (be) => be.ffiTopK(be.fromArray(xq, [Bq, I]), be.fromArray(Wf, [L, k]), be.fromArray(idx, [L, k]), be.fromArray(b), 3);
    const [c, h] = await Promise.all([top(cq8), top(q8)]);
    close(`int8 B=${Bq} top-3 scores (bit for bit)`, h.scores, c.scores, Number.MIN_VALUE);
  }
}
console.log(failures ? `gpu-sanity: ${failures} FAILED` : 'gpu-sanity: all ok');
process.exit(failures ? 1 : 0);
