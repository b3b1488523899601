import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NpyWriter, npyHeaderBytes, openNpy, readNpy, writeNpy } from '../src/io/npy.js';
import { float32ToFloat16Array, float16ToFloat32Array } from '../src/io/float16.js';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'xmc-io-npy-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    out[i] = (seed / 2 ** 32 - 0.5) * 100;
  }
  return out;
}

/** A .npy file with a hand-written header dict and version. */
function npyFile(dict: string, data: Uint8Array, major = 1): Buffer {
  const prefix = major === 1 ? 10 : 12;
  const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  const header = Buffer.alloc(total, 0x20);
  header.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  if (major === 1) header.writeUInt16LE(total - prefix, 8); else header.writeUInt32LE(total - prefix, 8);
  header.write(dict, prefix, 'utf8');
  header[total - 1] = 0x0a;
  return Buffer.concat([header, data]);
}

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

describe('io - npy format', () => {
  it('writes the header numpy writes (version 1.0, 64-byte aligned)', () => {
    const h = npyHeaderBytes(2, 3, 'f4');
    expect(h.length).toBe(128);
    const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    expect(Buffer.from(h).toString('latin1')).toBe('\x93NUMPY\x01\x00\x76\x00' + dict + ' '.repeat(128 - 10 - dict.length - 1) + '\n');
  });

  it('round-trips float32 and float16 matrices', async () => {
    const data = randomMatrix(37, 11, 5);
    const f4 = join(dir, 'm4.npy');
    await writeNpy(f4, { kind: 'dense', rows: 37, cols: 11, data });
    const back = await readNpy(f4);
    expect([back.rows, back.cols]).toEqual([37, 11]);
    expect(back.data).toEqual(data);
    const f2 = join(dir, 'm2.npy');
    await writeNpy(f2, { kind: 'dense', rows: 37, cols: 11, data }, 'f2');
    const half = await readNpy(f2);
    expect(half.data).toEqual(float16ToFloat32Array(float32ToFloat16Array(data)));
    expect(readFileSync(f2).length).toBe(128 + 37 * 11 * 2);
  });

  it('reads row ranges of a file written in blocks', async () => {
    const data = randomMatrix(100, 7, 9);
    const path = join(dir, 'blocks.npy');
    const w = await NpyWriter.open(path, 100, 7, 'f4');
    for (let r = 0; r < 100; r += 30) await w.append(data.subarray(r * 7, Math.min(100, r + 30) * 7));
    expect(existsSync(path)).toBe(false); // not in place before close
    await w.close();
    const reader = await openNpy(path);
    try {
      expect([reader.rows, reader.cols, reader.dtype]).toEqual([100, 7, 'f4']);
      expect(await reader.readRows(0, 0)).toEqual(new Float32Array(0));
      expect(await reader.readRows(42, 13)).toEqual(data.subarray(42 * 7, 55 * 7));
      expect(await reader.readRows(99, 1)).toEqual(data.subarray(99 * 7));
      await expect(reader.readRows(95, 6)).rejects.toThrow(/rows \[95, 101\) of 100/);
    } finally {
      await reader.close();
    }
  });

  it('a writer closed with fewer rows than declared throws and leaves nothing; too many rows are refused', async () => {
    const path = join(dir, 'short.npy');
    const w = await NpyWriter.open(path, 10, 4);
    await w.append(new Float32Array(8));
    await expect(w.append(new Float32Array(9 * 4))).rejects.toThrow(/exceed the declared 10/);
    await expect(w.append(new Float32Array(3))).rejects.toThrow(/not whole rows of 4/);
    await expect(w.close()).rejects.toThrow(/closed after 2 of the declared 10 rows/);
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.startsWith('.short.npy'))).toEqual([]);
    const nan = await NpyWriter.open(join(dir, 'nan.npy'), 1, 2);
    await expect(nan.append(Float32Array.from([1, NaN]))).rejects.toThrow(/row 0, column 1 is NaN/);
    await nan.abort();
    const big = await NpyWriter.open(join(dir, 'big.npy'), 1, 1, 'f2');
    await expect(big.append(Float32Array.from([1e5]))).rejects.toThrow(/overflows float16/);
    await big.abort();
  });

  it('reads version 2.0 and 3.0 headers and extra header spacing', async () => {
    const values = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const bytes = new Uint8Array(values.buffer);
    for (const [major, dict] of [[2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"],
      [3, "{'descr':'<f4','fortran_order':False,'shape':(3,2)}"], [1, '{"shape": (3, 2), "fortran_order": False, "descr": "<f4"}']] as const) {
      const path = join(dir, `v${major}.npy`);
      writeFileSync(path, npyFile(dict, bytes, major));
      const m = await readNpy(path);
      expect([m.rows, m.cols, Array.from(m.data)]).toEqual([3, 2, [1, 2, 3, 4, 5, 6]]);
    }
  });

  it.skipIf(!hasNumpy)('interoperates with numpy (skipped when python3 has no numpy)', async () => {
    const ours = join(dir, 'ours.npy');
    const data = randomMatrix(5, 3, 77);
    await writeNpy(ours, { kind: 'dense', rows: 5, cols: 3, data }, 'f2');
    const theirs = join(dir, 'theirs.npy');
    const script = `import numpy as np
a = np.load('${ours}')
assert a.dtype == np.float16 and a.shape == (5, 3), (a.dtype, a.shape)
np.save('${theirs}', (a.astype(np.float32) * 2).astype('<f4'))
print(repr(a.astype(np.float32).ravel().tolist()))`;
    const r = spawnSync('python3', ['-c', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout.trim())).toEqual(Array.from(float16ToFloat32Array(float32ToFloat16Array(data))));
    const back = await readNpy(theirs);
    expect(Array.from(back.data)).toEqual(JSON.parse(r.stdout.trim()).map((v: number) => v * 2));
  });
});
