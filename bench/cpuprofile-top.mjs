#!/usr/bin/env node
// Where a process's CPU time went, from a V8 .cpuprofile (`node --cpu-prof`):
// self time by area (node internals, fastify, NATS, msgpackr, prom-client,
// this project, GC, ...), the functions of most self time, and those of most
// inclusive time. Idle time is left out of every share.
//
//   node bench/cpuprofile-top.mjs FILE.cpuprofile [--top N] [--per N]
//
// --per N: also print each line as microseconds per unit (e.g. N = requests
// answered while profiling), the per-request cost of that area or function.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench/cpuprofile-top.mjs FILE.cpuprofile [--top N] [--per N]');
  process.exit(2);
}
const opt = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};
const top = opt('top', 25);
const per = opt('per', 0);
const profile = JSON.parse(readFileSync(file, 'utf8'));

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

function area(frame) {
  const { url, functionName } = frame;
  if (functionName === '(idle)') return '(idle)';
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(program)') return '(program: V8/native, no JS frame)';
  if (!url) return `builtin ${functionName || '(anonymous)'}`;
  if (/node_modules\/(fastify|@fastify|find-my-way|avvio|light-my-request|fast-json-stringify|secure-json-parse|fast-querystring|toad-cache|process-warning|abstract-logging|pino)/.test(url)) return 'fastify';
  if (/node_modules\/(ajv|fast-uri|json-schema-traverse|fast-deep-equal)/.test(url)) return 'ajv';
  if (url.includes('@nats-io')) return 'nats.js';
  if (url.includes('msgpackr')) return 'msgpackr';
  if (url.includes('prom-client') || url.includes('tdigest') || url.includes('bintrees')) return 'prom-client';
  if (url.includes('/src/serve/')) return 'xmc src/serve';
  if (url.includes('/src/')) return 'xmc other';
  if (url.startsWith('node:internal/http') || url.startsWith('node:_http') || url.startsWith('node:http')) return 'node http';
  if (/^node:(net|internal\/stream|internal\/streams|stream|internal\/net|internal\/tcp|internal\/dns)/.test(url)) return 'node net/streams';
  if (url.startsWith('node:internal/timers') || url.startsWith('node:timers')) return 'node timers';
  if (url.startsWith('node:')) return 'node other';
  if (url.includes('node_modules/')) return `npm ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)[1]}`;
  return 'other';
}

const label = (f) => `${f.functionName || '(anonymous)'} ${f.url ? `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}` : ''}`.trim();

// Self time per node from the samples.
const selfUs = new Map();
let total = 0;
let idle = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i + 1] ?? 0;
  const n = byId.get(profile.samples[i]);
  if (n.callFrame.functionName === '(idle)') { idle += dt; continue; }
  selfUs.set(n.id, (selfUs.get(n.id) ?? 0) + dt);
  total += dt;
}

const areas = new Map();
const selfFn = new Map();
const inclFn = new Map();
for (const [id, us] of selfUs) {
  const n = byId.get(id);
  const a = area(n.callFrame);
  areas.set(a, (areas.get(a) ?? 0) + us);
  const l = label(n.callFrame);
  selfFn.set(l, (selfFn.get(l) ?? 0) + us);
  const seen = new Set();
  for (let p = id; p !== undefined; p = parent.get(p)) {
    const pl = label(byId.get(p).callFrame);
    if (seen.has(pl)) continue;
    seen.add(pl);
    inclFn.set(pl, (inclFn.get(pl) ?? 0) + us);
  }
}

const fmt = (us) => `${(100 * us / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms${per ? `  ${(us / per).toFixed(1).padStart(7)} us/unit` : ''}`;
const print = (title, map, n) => {
  console.log(`\n${title}`);
  for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`  ${fmt(us)}  ${k}`);
};
console.log(`${file}: ${(total / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle${per ? `; per unit: ${(total / per).toFixed(1)} us busy (${per} units)` : ''}`);
print('self time by area', areas, 40);
print(`self time, top ${top} functions`, selfFn, top);
print(`inclusive time, top ${top} functions`, new Map([...inclFn].filter(([k]) => !k.startsWith('(root)'))), top);
