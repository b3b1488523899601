#!/usr/bin/env node
// Seconds one worker checkpoint (weights + Adam moments, writeCheckpoint) of
// a shard takes on this machine's disk, with the CPU backend:
//
//   node bench/checkpoint-cost.mjs [H]      (default H 65536: the A670K-FFI32-64k shard, ~956 MB)
//
// dense-ffi 768 -> H -> FFI k=32 -> 670,091 labels, one shard. Needs ~3 GB of RAM and a build.
import { rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { createBackend } = await import(join(root, 'dist', 'src', 'native', 'backend.js'));
const { ShardModel } = await import(join(root, 'dist', 'src', 'model', 'shard.js'));
const { writeCheckpoint } = await import(join(root, 'dist', 'src', 'model', 'checkpoint.js'));
const H = Number(process.argv[2] ?? 65536);
const mc = { setup: 'dense-ffi', inputDim: 768, numLabels: 670091, intermediate: H, fanIn: 32, shards: 1, seed: 1 };
const backend = createBackend('cpu', { threads: 1 });
const model = new ShardModel(backend, mc, 0, true);
await backend.sync();
const path = join(tmpdir(), `xmc-checkpoint-cost-${process.pid}.ckpt`);
for (let i = 0; i < 2; i++) {
  const t = performance.now();
  await writeCheckpoint(path, { kind: 'worker' }, [model.section(true)]);
  console.log(`checkpoint of ${(statSync(path).size / 1e6).toFixed(0)} MB: ${((performance.now() - t) / 1000).toFixed(2)} s`);
}
rmSync(path);
model.dispose();
