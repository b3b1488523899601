/**
 * Learnability check of the synthetic data (docs/SYNTHETIC_DATA.md, "Learnability").
 *
 * Generates a preset (default `small`), fits the simplest sensible baseline —
 * one centroid per label (the normalised mean of its training embeddings),
 * cosine similarity, top 5 — and prints test P@1 / P@5, the same restricted to
 * head and tail labels, and chance levels (a uniformly random label; always
 * predicting the most frequent training labels).
 *
 *   npm run build:ts && node dist/bench/synth-check.js [--preset small] [--seed 1] [--scale 1] [--dir DIR] [--test-points N (default 2000)]
 *
 * With --dir pointing at an existing generated folder (with meta.json) it reuses it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateSynthetic, SYNTH_FILES } from '../src/synth/index.js';

interface Dense { rows: number; cols: number; data: Float32Array }

/** Minimal .npy reader for this check: C-order 2-D '<f2' or '<f4'. */
function readNpy(path: string): Dense {
  const buf = readFileSync(path);
  if (buf.readUInt8(0) !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not an .npy file`);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(header);
  if (!shape || (descr !== '<f2' && descr !== '<f4') || !/'fortran_order':\s*False/.test(header)) {
    throw new Error(`${path}: unsupported header ${header.trim()}`);
  }
  const rows = Number(shape[1]), cols = Number(shape[2]);
  const start = 10 + headerLen;
  const n = rows * cols;
  const data = new Float32Array(n);
  if (descr === '<f4') {
    data.set(new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + start + 4 * n)));
  } else {
    const half = new Uint16Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + start + 2 * n));
    const table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
      table[h] = exp === 0 ? sign * man * 2 ** -24 : exp === 31 ? (man ? NaN : sign * Infinity) : sign * (1 + man / 1024) * 2 ** (exp - 15);
    }
    for (let i = 0; i < n; i++) data[i] = table[half[i]];
  }
  return { rows, cols, data };
}

/** Minimal pyxclib label reader: returns the label ids of each row. */
function readLabels(path: string): { labels: number; rows: number[][] } {
  const lines = readFileSync(path, 'utf8').split('\n');
  const [n, l] = lines[0].split(' ').map(Number);
  const rows: number[][] = [];
  for (let i = 1; i <= n; i++) rows.push(lines[i] === '' ? [] : lines[i].split(' ').map((t) => Number(t.slice(0, t.indexOf(':')))));
  return { labels: l, rows };
}

interface Scores { p1: number; p5: number; head: { hits: number; points: number; chance: number }; tail: { hits: number; points: number; chance: number } }

function topK(scores: Float32Array, k: number, allowed?: Uint8Array): number[] {
  const best: number[] = [];
  for (let j = 0; j < scores.length; j++) {
    if (allowed && !allowed[j]) continue;
    if (best.length < k || scores[j] > scores[best[best.length - 1]]) {
      let pos = best.length < k ? best.length : k - 1;
      best[pos] = j;
      while (pos > 0 && scores[best[pos]] > scores[best[pos - 1]]) {
        [best[pos], best[pos - 1]] = [best[pos - 1], best[pos]];
        pos--;
      }
    }
  }
  return best;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    preset: { type: 'string', default: 'small' }, seed: { type: 'string', default: '1' }, scale: { type: 'string', default: '1' },
    dir: { type: 'string' }, 'test-points': { type: 'string' },
  } });
  let dir = values.dir;
  let cleanup = false;
  if (!dir || !existsSync(join(dir, SYNTH_FILES.meta))) {
    dir ??= mkdtempSync(join(tmpdir(), 'xmc-synth-check-'));
    cleanup = values.dir === undefined;
    const r = await generateSynthetic({ preset: values.preset!, outDir: dir, seed: Number(values.seed), scale: Number(values.scale), force: true });
    console.log(`generated ${values.preset} in ${r.elapsedSeconds.toFixed(1)} s (${dir})`);
  }
  const t0 = performance.now();
  const trainX = readNpy(join(dir, SYNTH_FILES.trainFeatures));
  const testX = readNpy(join(dir, SYNTH_FILES.testFeatures));
  const trainY = readLabels(join(dir, SYNTH_FILES.trainLabels));
  const testY = readLabels(join(dir, SYNTH_FILES.testLabels));
  const L = trainY.labels, D = trainX.cols;
  const nTest = Math.min(testX.rows, Number(values['test-points'] ?? 2000));

  // per-label centroids (normalised sums) and train frequencies
  const centroids = new Float32Array(L * D);
  const freq = new Uint32Array(L);
  trainY.rows.forEach((ls, i) => {
    const x = trainX.data.subarray(i * D, (i + 1) * D);
    for (const l of ls) {
      freq[l]++;
      const c = centroids.subarray(l * D, (l + 1) * D);
      for (let j = 0; j < D; j++) c[j] += x[j];
    }
  });
  for (let l = 0; l < L; l++) {
    const c = centroids.subarray(l * D, (l + 1) * D);
    let s = 0;
    for (let j = 0; j < D; j++) s += c[j] * c[j];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < D; j++) c[j] *= inv;
  }

  // head = the 20% most frequent labels, tail = the 50% least frequent (by train points)
  const order = Array.from({ length: L }, (_, i) => i).sort((a, b) => freq[b] - freq[a] || a - b);
  const head = new Uint8Array(L), tail = new Uint8Array(L);
  order.slice(0, Math.ceil(0.2 * L)).forEach((l) => (head[l] = 1));
  order.slice(Math.floor(0.5 * L)).forEach((l) => (tail[l] = 1));
  const range = (set: Uint8Array) => {
    let lo = Infinity, hi = 0;
    for (let l = 0; l < L; l++) if (set[l]) { lo = Math.min(lo, freq[l]); hi = Math.max(hi, freq[l]); }
    return `${lo}-${hi} train points`;
  };
  const popular = order.slice(0, 5);

  const headSize = head.reduce((a, b) => a + b, 0), tailSize = tail.reduce((a, b) => a + b, 0);
  const evaluate = (weights: Float32Array): Scores => {
    const r: Scores = { p1: 0, p5: 0, head: { hits: 0, points: 0, chance: 0 }, tail: { hits: 0, points: 0, chance: 0 } };
    const scores = new Float32Array(L);
    for (let i = 0; i < nTest; i++) {
      const x = testX.data.subarray(i * D, (i + 1) * D);
      for (let l = 0; l < L; l++) {
        let s = 0;
        const off = l * D;
        for (let j = 0; j < D; j++) s += weights[off + j] * x[j];
        scores[l] = s;
      }
      const truth = new Set(testY.rows[i]);
      const top = topK(scores, 5);
      if (truth.has(top[0])) r.p1++;
      for (const l of top) if (truth.has(l)) r.p5++;
      for (const [name, set, size] of [['head', head, headSize], ['tail', tail, tailSize]] as const) {
        const inSet = testY.rows[i].filter((l) => set[l]).length;
        if (inSet === 0) continue;
        r[name].points++;
        r[name].chance += inSet / size;
        if (truth.has(topK(scores, 1, set)[0])) r[name].hits++;
      }
    }
    return r;
  };
  let pop1 = 0, pop5 = 0;
  for (let i = 0; i < nTest; i++) {
    const truth = new Set(testY.rows[i]);
    if (truth.has(popular[0])) pop1++;
    for (const l of popular) if (truth.has(l)) pop5++;
  }
  const models: [string, Scores][] = [['centroid (cosine)', evaluate(centroids)]];
  const meanLabels = testY.rows.slice(0, nTest).reduce((a, r) => a + r.length, 0) / nTest;
  const pct = (v: number) => `${v > 0 && v < 0.001 ? (100 * v).toPrecision(2) : (100 * v).toFixed(1)}%`;
  console.log(`data: ${dir}: ${trainX.rows} train / ${testX.rows} test points (${nTest} evaluated), ${L} labels, ${D} features`);
  console.log(`chance (uniform label):        P@1 ${pct(meanLabels / L)}  P@5 ${pct(meanLabels / L)}`);
  console.log(`most frequent train labels:    P@1 ${pct(pop1 / nTest)}  P@5 ${pct(pop5 / (5 * nTest))}`);
  console.log(`head labels: the ${headSize} most frequent (${range(head)}); tail labels: the ${tailSize} least frequent (${range(tail)})`);
  for (const [name, r] of models) {
    console.log(`${(name + ':').padEnd(30)} P@1 ${pct(r.p1 / nTest)}  P@5 ${pct(r.p5 / (5 * nTest))}  ` +
      `head-only P@1 ${pct(r.head.hits / r.head.points)} (${r.head.points} points, chance ${pct(r.head.chance / r.head.points)})  ` +
      `tail-only P@1 ${pct(r.tail.hits / r.tail.points)} (${r.tail.points} points, chance ${pct(r.tail.chance / r.tail.points)})`);
  }
  console.log(`check took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (cleanup) rmSync(dir, { recursive: true, force: true });
}

await main();
