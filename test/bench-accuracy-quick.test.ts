import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const haveData = existsSync(resolve(root, '..', 'shared', 'data', 'bibtex_train.txt'));
const haveDist = existsSync(join(root, 'dist', 'src', 'train', 'run.js'));

describe('bench - accuracy, quick version (CI)', () => {
  it.skipIf(!haveData || !haveDist)('trains the five setups on bibtex for 3 epochs and meets the quick bars', () => {
    const run = spawnSync(process.execPath, [join(root, 'bench', 'accuracy.mjs'), '--quick'], { encoding: 'utf8', timeout: 600_000 });
    const out = run.stdout + run.stderr;
    expect(out).toMatch(/\| bibtex \| dense-ffi \|/);
    expect(out).not.toMatch(/^FAIL/m);
    expect(out).toMatch(/^PASS {2}bibtex dense-ffi P@1/m);
    expect(run.status, out).toBe(0);
  }, 600_000);
});
