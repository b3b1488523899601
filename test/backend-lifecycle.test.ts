// Process-level behaviour of the stream, checked in child processes that load
// the addon directly: exiting with work still queued, a backend dropped (and
// garbage-collected) while a promise is pending, the event loop kept alive
// until pending promises settle.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { addonPath, runAddonScript } from './addon-process.js';

const runNode = (script: string, args: string[] = []) => runAddonScript('a', script, args);

describe.skipIf(!existsSync(addonPath))('backend - process lifecycle', () => {
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
