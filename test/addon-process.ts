/**
 * Child processes that load the native addon directly (process-level
 * behaviour of a backend's stream: exits with work queued, garbage-collected
 * backends, the event loop kept alive). The script runs after a prelude that
 * defines `a` (the addon) and `chain(be, ops)`, which enqueues `ops` FFI
 * forwards of a 64 x 512 -> 16,384-label layer on backend `be`.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { resolve } from 'node:path';
import { packageRoot } from '../src/native/index.js';

export const addonPath = process.env.XMC_NATIVE_ADDON ?? resolve(packageRoot(), 'build', 'Release', 'xmc_native.node');

/** `ops`: where the backend's op functions live, `a` (CPU) or `a.cuda`. */
function prelude(ops: 'a' | 'a.cuda'): string {
  return `
const a = require(${JSON.stringify(addonPath)});
function chain(be, ops) {
  const B = 64, I = 512, L = 16384, k = 32;
  const x = be.fromArray(new Float32Array(B * I).fill(0.5), [B, I]);
  const W = be.fromArray(new Float32Array(L * k).fill(0.1), [L, k]);
  const idx = be.fromArray(Uint32Array.from({ length: L * k }, (_, i) => (i * 7919) % I), [L, k]);
  const b = be.fromArray(new Float32Array(L)), out = be.tensor('float32', [B, L]);
  for (let i = 0; i < ops; i++) ${ops}.ffiForward(be, x, W, idx, b, out);
  return out;
}
`;
}

/** Runs `script` in a new node process (extra node flags in `args`); `ms`: its wall time. */
export function runAddonScript(ops: 'a' | 'a.cuda', script: string, args: string[] = []): SpawnSyncReturns<string> & { ms: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...args, '-e', prelude(ops) + script], { encoding: 'utf8', timeout: 60_000 });
  return { ...r, ms: performance.now() - t0 };
}
