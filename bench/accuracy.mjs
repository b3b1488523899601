#!/usr/bin/env node
// Accuracy benchmark: trains the five setups on bibtex and delicious
// (../shared/data) with the paper's protocol and prints test P@1/3/5 of the
// best test epoch beside the reference figures of ../shared/data/README.md
// (parsed from its table, not copied here), with the time each run took.
//
//   npm run bench:accuracy [-- --quick] [--data bibtex,delicious] [--setups dense,ffi,...]
//                          [--epochs N] [--threads T] [--device cpu|cuda|auto] [--tf32] [--bf16-gathers]
//                          [--keep DIR] [--json FILE]
// --tf32 and --bf16-gathers: the CUDA backend's options of the same names (as `xmc train`), to check what
// they cost in accuracy.
//
// Protocol (the trainer's defaults): rows L2-normalised, input dropout 0.1,
// squared hinge loss, Adam lr 1e-3, batch 32, fan-in 32, intermediate 4096
// for dense-ffi / dense-sparse (64 for bottleneck), rewiring 10% of the
// sparse layer every 1000 steps, reduce-on-plateau and early stopping on test
// P@3, best test epoch. Epoch cap: EPOCH_CAP below, the reference runs' 60;
// early stopping ends every run long before it (at most 36 epochs measured),
// and the whole benchmark takes about 5 minutes on 2 cores.
// --quick (CI): bibtex only, 3 epochs per setup, with lower bars (QUICK_BARS).
//
// Bars (full runs; exit status 1 when one is missed):
//   dense-ffi and dense: test P@1 >= 61.5 on bibtex, >= 67.0 on delicious;
//   ffi (no intermediate layer) at least 10 points of P@1 below both.
// Build first (npm run build:ts, or npm install).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist', 'src', 'train', 'run.js');
if (!existsSync(dist)) {
  console.error(`bench/accuracy: ${dist} is missing: build first (npm run build:ts)`);
  process.exit(2);
}
const { runTraining } = await import(dist);
const { createBackend } = await import(join(root, 'dist', 'src', 'native', 'backend.js'));

const EPOCH_CAP = 60;
const QUICK_EPOCHS = 3;
const SETUPS = ['dense', 'bottleneck', 'ffi', 'dense-ffi', 'dense-sparse'];
const FULL_BARS = { 'dense-ffi': { bibtex: 61.5, delicious: 67.0 }, dense: { bibtex: 61.5, delicious: 67.0 } };
// After 3 epochs (measured: dense-ffi 58.5, dense 43.0, ffi 13.3 on bibtex): well under
// the converged figures, but a broken layer, loss or optimiser misses them.
const QUICK_BARS = { 'dense-ffi': { bibtex: 50.0 }, dense: { bibtex: 35.0 } };
const FFI_GAP = 10;

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}
const quick = process.argv.includes('--quick');
const dataNames = (arg('data') ?? (quick ? 'bibtex' : 'bibtex,delicious')).split(',');
const setups = (arg('setups') ?? SETUPS.join(',')).split(',');
const epochs = Number(arg('epochs', quick ? QUICK_EPOCHS : EPOCH_CAP));
const threads = arg('threads') === undefined ? undefined : Number(arg('threads'));
const keep = arg('keep');
const jsonOut = arg('json');
const device = arg('device', 'cpu');
if (!['cpu', 'cuda', 'auto'].includes(device)) { console.error(`bench/accuracy: --device must be cpu, cuda or auto, got ${device}`); process.exit(2); }
for (const s of setups) if (!SETUPS.includes(s)) { console.error(`bench/accuracy: unknown setup ${s}`); process.exit(2); }
const gpuOptions = {
  ...(process.argv.includes('--tf32') ? { tf32: true } : {}),
  ...(process.argv.includes('--bf16-gathers') ? { bf16Gathers: true } : {}),
};
if (device === 'cpu' && Object.keys(gpuOptions).length > 0) {
  console.error('bench/accuracy: --tf32 and --bf16-gathers are CUDA options: add --device cuda');
  process.exit(2);
}

const dataDir = resolve(root, '..', 'shared', 'data');
if (!existsSync(join(dataDir, 'README.md'))) {
  console.error(`bench/accuracy: ${dataDir} not found (the shared data sets); nothing to run`);
  process.exit(quick ? 0 : 2);
}

/**
 * The reference table of ../shared/data/README.md: the header names the
 * setups ("dense P@1/3/5", "bottleneck 64", "ffi (...)", "dense-ffi, ..."),
 * each data row holds "P@1 / P@3 / P@5" per setup (kept as printed). Also "best test epoch of N".
 */
function parseReference(text) {
  const lines = text.split('\n').filter((l) => l.trim().startsWith('|'));
  const cells = (l) => l.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
  const ref = {};
  for (let i = 0; i < lines.length; i++) {
    const header = cells(lines[i]);
    if (header[0] !== 'data' || !header.some((h) => /^dense\b/.test(h))) continue;
    const columns = header.map((h) => h.split(/[\s,(]/)[0]);
    for (let j = i + 2; j < lines.length; j++) {
      const row = cells(lines[j]);
      if (row.length !== header.length) break;
      ref[row[0]] = {};
      for (let c = 1; c < row.length; c++) {
        const nums = row[c].split('/').map((x) => Number(x.trim()));
        if (nums.length === 3 && nums.every(Number.isFinite)) ref[row[0]][columns[c]] = row[c].split('/').map((x) => x.trim());
      }
    }
  }
  const epochsMatch = /best\s+test\s+epoch\s+of\s+(\d+)/.exec(text);
  return { table: ref, epochs: epochsMatch ? Number(epochsMatch[1]) : null };
}
const reference = parseReference(readFileSync(join(dataDir, 'README.md'), 'utf8'));

const workDir = keep ? resolve(keep) : mkdtempSync(join(tmpdir(), 'xmc-bench-accuracy-'));
const backend = createBackend(device, { ...(threads === undefined ? {} : { threads }), ...gpuOptions });
const fmt = (v) => (v === undefined ? '-' : v.toFixed(2));
const fmtTime = (s) => (s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(1)}s`);

console.log(`bench/accuracy: ${quick ? 'QUICK (CI) ' : ''}epoch cap ${epochs} (reference runs: best test epoch of ${reference.epochs ?? '?'}), `
  + `${backend.kind === 'cuda' ? `CUDA backend${Object.keys(gpuOptions).length ? ` (${Object.keys(gpuOptions).join(', ')})` : ''}` : `CPU backend, ${backend.threads} threads`}; data ${dataDir}; runs in ${workDir}`);

const results = [];
const started = performance.now();
for (const data of dataNames) {
  const train = join(dataDir, `${data}_train.txt`);
  const test = join(dataDir, `${data}_test.txt`);
  if (!existsSync(train) || !existsSync(test)) { console.error(`bench/accuracy: no ${data}_{train,test}.txt in ${dataDir}`); process.exit(2); }
  for (const setup of setups) {
    const out = join(workDir, `${data}-${setup}`);
    rmSync(out, { recursive: true, force: true });
    const reporter = {
      message() {},
      step() {},
      epochEnd(r, total, notes) {
        process.stderr.write(`  ${data} ${setup} epoch ${r.epoch}/${total}: loss ${r.loss.toPrecision(4)}  P@1 ${(100 * r.metrics['P@1']).toFixed(2)}  `
          + `P@3 ${(100 * r.metrics['P@3']).toFixed(2)}  P@5 ${(100 * r.metrics['P@5']).toFixed(2)}  (${r.seconds.toFixed(1)} s)${notes.length ? '  ' + notes.join(', ') : ''}\n`);
      },
    };
    const t0 = performance.now();
    const result = await runTraining({ train, test, out, options: { setup, epochs }, backend, reporter });
    const seconds = (performance.now() - t0) / 1000;
    const description = result.model.describe();
    result.model.dispose();
    const m = result.best.metrics;
    const row = {
      data, setup, description,
      p1: 100 * m['P@1'], p3: 100 * m['P@3'], p5: 100 * m['P@5'],
      bestEpoch: result.best.epoch, epochs: result.history.length, stoppedBy: result.stoppedBy,
      ref: reference.table[data]?.[setup], seconds, peakBytes: result.memory.peakBytes,
    };
    results.push(row);
    console.log(`${data} ${setup}: P@1/3/5 ${fmt(row.p1)} / ${fmt(row.p3)} / ${fmt(row.p5)} (best epoch ${row.bestEpoch} of ${row.epochs}, ${row.stoppedBy}), `
      + `reference ${row.ref ? row.ref.join(' / ') : '-'}, ${fmtTime(seconds)}`);
  }
}
const total = (performance.now() - started) / 1000;

console.log('');
console.log(`| data | setup | P@1 | P@3 | P@5 | reference P@1 / P@3 / P@5 | best epoch / run | time |`);
console.log(`|---|---|---|---|---|---|---|---|`);
for (const r of results) {
  console.log(`| ${r.data} | ${r.setup} | ${fmt(r.p1)} | ${fmt(r.p3)} | ${fmt(r.p5)} | ${r.ref ? r.ref.join(' / ') : '-'} | ${r.bestEpoch} / ${r.epochs} | ${fmtTime(r.seconds)} |`);
}
console.log(`\ntotal ${fmtTime(total)}; epoch cap ${epochs}; ${backend.kind === 'cuda' ? 'CUDA backend' : `CPU backend, ${backend.threads} threads`}`);

let failed = 0;
{
  const bars = quick ? QUICK_BARS : FULL_BARS;
  const get = (data, setup) => results.find((r) => r.data === data && r.setup === setup);
  const checks = [];
  for (const data of dataNames) {
    for (const setup of ['dense-ffi', 'dense']) {
      const r = get(data, setup);
      const bar = bars[setup][data];
      if (r && bar !== undefined) checks.push([`${data} ${setup} P@1 ${fmt(r.p1)} >= ${bar}`, r.p1 >= bar]);
    }
    const ffi = get(data, 'ffi');
    for (const other of ['dense', 'dense-ffi']) {
      const r = get(data, other);
      if (ffi && r) checks.push([`${data} ffi P@1 ${fmt(ffi.p1)} at least ${FFI_GAP} below ${other} ${fmt(r.p1)}`, ffi.p1 <= r.p1 - FFI_GAP]);
    }
  }
  console.log('');
  for (const [text, ok] of checks) {
    console.log(`${ok ? 'PASS' : 'FAIL'}  ${text}`);
    if (!ok) failed++;
  }
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ epochs, quick, device: backend.kind, threads: backend.threads, totalSeconds: total, results }, null, 2) + '\n');
if (!keep) rmSync(workDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
