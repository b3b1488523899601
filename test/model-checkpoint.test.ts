import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataFormatError } from '../src/errors.js';
import type { ModelConfig } from '../src/model/config.js';
import { readCheckpoint, snapshotSections, writeCheckpoint } from '../src/model/checkpoint.js';
import { Model } from '../src/model/model.js';
import { createBackend } from '../src/native/backend.js';

const backend = createBackend('cpu', { threads: 2 });
const dir = mkdtempSync(join(tmpdir(), 'xmc-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config: ModelConfig = { setup: 'dense-ffi', inputDim: 16, numLabels: 9, intermediate: 20, fanIn: 4, shards: 2, seed: 3 };

async function contents(model: Model, optimiser: boolean): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const section of model.sections(optimiser)) {
    for (const t of section.tensors) out.set(`${section.name}/${t.name}`, Array.from(await t.tensor.read()));
  }
  return out;
}

/** A model whose Adam moments are not zero, written to `name`. */
async function written(name: string, optimiser = true): Promise<{ path: string; model: Model }> {
  const model = new Model(backend, config);
  for (const s of model.sections(true)) {
    for (const t of s.tensors) if (t.role === 'optimiser') backend.fill(t.tensor, 0.25);
  }
  const path = join(dir, name);
  await writeCheckpoint(path, { note: 'hello', step: 12 }, model.sections(optimiser));
  return { path, model };
}

async function rejection(path: string): Promise<DataFormatError> {
  let error: unknown;
  try { await readCheckpoint(path); } catch (err) { error = err; }
  expect(error).toBeInstanceOf(DataFormatError);
  expect((error as Error).message).toContain(path);
  return error as DataFormatError;
}

describe('model - checkpoints', () => {
  it('round trip: parameters, structure, Adam moments and meta come back bit for bit', async () => {
    const { path, model } = await written('round.ckpt');
    const ckpt = await readCheckpoint<{ note: string; step: number }>(path);
    expect(ckpt.meta).toEqual({ note: 'hello', step: 12 });
    expect([...ckpt.sections.keys()]).toEqual(['shard/0', 'shard/1']);
    expect(ckpt.sha256).toMatch(/^[0-9a-f]{64}$/);
    const copy = new Model(backend, config, false);
    copy.load(ckpt.sections, true);
    expect(await contents(copy, true)).toEqual(await contents(model, true));
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    model.dispose();
    copy.dispose();
  });

  it('a parameters-only checkpoint loads for prediction (moments zeroed) but cannot resume training', async () => {
    const { path, model } = await written('params.ckpt', false);
    const ckpt = await readCheckpoint(path);
    const copy = new Model(backend, config, false);
    copy.load(ckpt.sections, false);
    const got = await contents(copy, true);
    const want = await contents(model, false);
    for (const [name, values] of want) expect(got.get(name)).toEqual(values);
    expect(got.get('shard/0/output.W.m')!.every((v) => v === 0)).toBe(true);
    expect(() => copy.load(ckpt.sections, true)).toThrow(/has no optimiser state .*cannot resume training/);
    model.dispose();
    copy.dispose();
  });

  it('a checkpoint of another configuration is refused, saying what differs', async () => {
    const { path, model } = await written('other.ckpt');
    const ckpt = await readCheckpoint(path);
    const wider = new Model(backend, { ...config, intermediate: 22 }, false);
    expect(() => wider.load(ckpt.sections, true)).toThrow(/section shard\/0 describes .*"outputDim":10.* the model expects .*"outputDim":11/);
    model.dispose();
    wider.dispose();
  });

  it('a flipped byte (payload or header) is rejected: SHA-256 mismatch, naming the file', async () => {
    const { path, model } = await written('flip.ckpt');
    model.dispose();
    const bytes = readFileSync(path);
    for (const at of [bytes.length - 100, Math.floor(bytes.length / 2), 40]) {
      const bad = Buffer.from(bytes);
      bad[at] ^= 0x01;
      const badPath = join(dir, `flip-${at}.ckpt`);
      writeFileSync(badPath, bad);
      const err = await rejection(badPath);
      expect(err.message).toMatch(/corrupt checkpoint: SHA-256 mismatch/);
    }
  });

  it('a truncated checkpoint is rejected, saying how long it is and should be', async () => {
    const { path, model } = await written('trunc.ckpt');
    model.dispose();
    const bytes = readFileSync(path);
    const cut = join(dir, 'cut.ckpt');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 1000));
    expect((await rejection(cut)).message).toMatch(new RegExp(`truncated checkpoint: ${bytes.length - 1000} bytes, but its header declares ${bytes.length}`));
    writeFileSync(cut, bytes.subarray(0, 10));
    expect((await rejection(cut)).message).toMatch(/10 bytes, shorter than the 24-byte prefix/);
    writeFileSync(cut, Buffer.concat([bytes, Buffer.from([0])]));
    expect((await rejection(cut)).message).toMatch(/1 unexpected bytes after the checksum/);
  });

  it('something else than a checkpoint, or no file, is rejected clearly', async () => {
    const text = join(dir, 'text.ckpt');
    writeFileSync(text, '3 4 5\n0 1:1\n'.repeat(10));
    expect((await rejection(text)).message).toMatch(/not an xmc checkpoint/);
    expect((await rejection(join(dir, 'missing.ckpt'))).message).toMatch(/no such file/);
  });

  it('a failed write leaves the previous checkpoint intact and no temporary file behind', async () => {
    const { path, model } = await written('atomic.ckpt');
    const before = readFileSync(path);
    const sections = model.sections(true);
    sections[1].tensors[0].tensor.dispose(); // reading it back fails half-way through the write
    await expect(writeCheckpoint(path, { note: 'second' }, sections)).rejects.toThrow();
    expect(readFileSync(path).equals(before)).toBe(true);
    expect((await readCheckpoint(path)).meta).toEqual({ note: 'hello', step: 12 });
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('a snapshot holds the tensors as of the snapshot, though ops changing them are enqueued before it is written', async () => {
    const model = new Model(backend, config);
    const before = await contents(model, true);
    const snapshot = snapshotSections(model.sections(true));
    // Ops enqueued after the snapshot (as the training steps that run while a worker writes it).
    for (const s of model.sections(true)) for (const t of s.tensors) if (t.tensor.dtype === 'float32') backend.fill(t.tensor, 7);
    const path = join(dir, 'snapshot.ckpt');
    await writeCheckpoint(path, { step: 3 }, snapshot);
    const back = await readCheckpoint(path);
    let compared = 0;
    for (const [name, values] of before) {
      const [section, tensor] = [name.slice(0, name.lastIndexOf('/')), name.slice(name.lastIndexOf('/') + 1)];
      expect(Array.from(back.sections.get(section)!.tensors.get(tensor)!.data), name).toEqual(values);
      compared++;
    }
    expect(compared).toBeGreaterThan(4);
    // ...and the fills did run before the snapshot was written.
    const now = await contents(model, true);
    expect([...now].filter(([name, v]) => v.every((x) => x === 7) && before.get(name)!.some((x) => x !== 7)).length).toBeGreaterThan(0);
    model.dispose();
  });
});
