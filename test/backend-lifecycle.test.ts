// Process-level behaviour of the stream, checked in child processes that load
// the addon directly: exiting with work still queued, a backend dropped (and
// garbage-collected) while a promise is pending, the event loop kept alive
// until pending promises settle.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../src/native/index.js';

const addon = process.env.XMC_NATIVE_ADDON ?? resolve(packageRoot(), 'build', 'Release', 'xmc_native.node');

const prelude = `
const a = require(${JSON.stringify(addon)});
function chain(be, ops) {
  const B = 64, I = 512, L = 16384, k = 32;
  const x = be.fromArray(new Float32Array(B * I).fill(0.5), [B, I]);
  const W = be.fromArray(new Float32Array(L * k).fill(0.1), [L, k]);
  const idx = be.fromArray(Uint32Array.from({ length: L * k }, (_, i) => (i * 7919) % I), [L, k]);
  const b = be.fromArray(new Float32Array(L)), out = be.tensor('float32', [B, L]);
  for (let i = 0; i < ops; i++) a.ffiForward(be, x, W, idx, b, out);
  return out;
}
`;

function runNode(script: string, args: string[] = []) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...args, '-e', prelude + script], { encoding: 'utf8', timeout: 60_000 });
  return { ...r, ms: performance.now() - t0 };
}

describe.skipIf(!existsSync(addon))('backend - process lifecycle', () => {
  it('a process exits promptly and cleanly with ops still queued and nothing awaited', () => {
    const r = runNode(`const be = new a.CpuBackend({ threads: 2 }); chain(be, 2000); console.log('enqueued');`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('enqueued');
    expect(r.ms).toBeLessThan(20_000); // 2000 ops would take minutes: the queue was dropped
  });

  it('a pending promise keeps the process alive until it settles, even if the backend is garbage-collected', () => {
    const r = runNode(`
      let pending;
      (() => {
        const be = new a.CpuBackend({ threads: 2 });
        const out = chain(be, 20);
        pending = out.read();
      })();
      global.gc();
      pending.then((v) => console.log('resolved', v.length, v[0] > 0));
    `, ['--expose-gc']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(`resolved ${64 * 16384} true`);
  });
});
