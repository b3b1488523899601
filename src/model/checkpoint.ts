/**
 * Checkpoint files: the run's state and the shards' tensors in one binary
 * file, written atomically and verified on load.
 *
 * Layout (integers little-endian):
 *
 *   offset   size  field
 *   0        8     magic "XMCCKPT1"
 *   8        4     u32 H, header length in bytes
 *   12       4     u32 0 (reserved)
 *   16       8     u64 P, payload length in bytes
 *   24       H     header: UTF-8 JSON {format, version, meta, sections}
 *   24+H     P     payload: the tensors' raw bytes (float32 / uint32 / int32,
 *                  little-endian, row-major), in header order
 *   24+H+P   32    SHA-256 of bytes [0, 24+H+P)
 *
 * sections[i] = {name, meta, tensors: [{name, dtype, shape, offset, bytes}]}
 * with offsets relative to the payload. A shard is one section (`shard/<i>`),
 * so a worker process can write and read its own part alone; `meta` holds
 * the caller's state (configuration, step, scheduler, history, ...).
 *
 * Writing streams one tensor at a time (read back from the backend, hashed,
 * written) to `<dir>/.<name>.tmp-*`, then fsync, rename over the target and
 * fsync of the directory: a crash leaves the previous checkpoint intact.
 * Reading checks the magic, the length the header declares (truncation), the
 * checksum (any flipped byte), then the JSON, and names the file and the
 * problem in a DataFormatError.
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DataFormatError } from '../errors.js';
import { AtomicFileWriter } from '../io/files.js';
import type { DType, Tensor } from '../native/backend.js';
import type { LoadedSection, StoredTensor } from './shard.js';

const MAGIC = 'XMCCKPT1';
const PREFIX = 24;
const CHECKSUM = 32;
export const CHECKPOINT_VERSION = 1;

/** What writeCheckpoint needs of a tensor: its shape and dtype, and its contents (read back when written). */
export type CheckpointTensor = Pick<Tensor, 'dtype' | 'shape' | 'size' | 'read'>;

export interface CheckpointSectionInput {
  name: string;
  meta: unknown;
  tensors: readonly { name: string; tensor: CheckpointTensor }[];
}

/**
 * The same sections with every tensor's read-back issued now: reads run in
 * queue order, so the checkpoint written from the result holds the state as
 * of this call even when more ops (training steps) are enqueued while it is
 * written. Costs a host copy of every tensor until written. A tensor listed
 * in several sections (a parameter in both the full and the parameters-only
 * section) is read once.
 */
export function snapshotSections(sections: readonly CheckpointSectionInput[]): CheckpointSectionInput[] {
  const reads = new Map<CheckpointTensor, ReturnType<Tensor['read']>>();
  const snap = (t: CheckpointTensor): CheckpointTensor => {
    let data = reads.get(t);
    if (!data) {
      data = t.read();
      data.catch(() => undefined); // rejected reads surface when the checkpoint is written
      reads.set(t, data);
    }
    const read = data;
    return { dtype: t.dtype, shape: [...t.shape], size: t.size, read: () => read } as CheckpointTensor;
  };
  return sections.map((s) => ({ name: s.name, meta: s.meta, tensors: s.tensors.map(({ name, tensor }) => ({ name, tensor: snap(tensor) })) }));
}

/** Bytes hashed between two yields to the event loop (a large tensor must not block the loop for long: see workers/worker.ts). */
const HASH_CHUNK = 4 << 20;

interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  offset: number;
  bytes: number;
}

interface Header {
  format: 'xmc-checkpoint';
  version: number;
  meta: unknown;
  sections: { name: string; meta: unknown; tensors: TensorEntry[] }[];
}

export interface Checkpoint<M = unknown> {
  path: string;
  meta: M;
  sections: Map<string, LoadedSection>;
  /** hex SHA-256 of the file's content (before the checksum) */
  sha256: string;
  bytes: number;
}

/** Writes a checkpoint atomically; resolves to its size and checksum. */
export async function writeCheckpoint(path: string, meta: unknown, sections: readonly CheckpointSectionInput[]): Promise<{ bytes: number; sha256: string }> {
  let offset = 0;
  const header: Header = {
    format: 'xmc-checkpoint',
    version: CHECKPOINT_VERSION,
    meta,
    sections: sections.map((s) => ({
      name: s.name,
      meta: s.meta,
      tensors: s.tensors.map(({ name, tensor }) => {
        const entry: TensorEntry = { name, dtype: tensor.dtype, shape: [...tensor.shape], offset, bytes: 4 * tensor.size };
        offset += entry.bytes;
        return entry;
      }),
    })),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(PREFIX);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(headerBytes.length, 8);
  prefix.writeUInt32LE(0, 12);
  prefix.writeBigUInt64LE(BigInt(offset), 16);

  const hash = createHash('sha256');
  const writer = await AtomicFileWriter.create(path);
  try {
    for (const part of [prefix, headerBytes]) {
      hash.update(part);
      await writer.writeBytes(part);
    }
    for (const s of sections) {
      for (const { tensor } of s.tensors) {
        const data = await tensor.read();
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        const written = writer.writeBytes(bytes);
        written.catch(() => undefined); // awaited below
        for (let at = 0; at < bytes.length; at += HASH_CHUNK) {
          hash.update(bytes.subarray(at, at + HASH_CHUNK));
          if (at + HASH_CHUNK < bytes.length) await new Promise<void>((r) => setImmediate(r));
        }
        await written;
      }
    }
    const digest = hash.digest();
    await writer.writeBytes(digest);
    await writer.commit();
    await syncDirectory(dirname(path));
    return { bytes: PREFIX + headerBytes.length + offset + CHECKSUM, sha256: digest.toString('hex') };
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/** fsync of a directory, so that a rename in it survives a crash (best effort where unsupported). */
async function syncDirectory(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename itself is still atomic.
  } finally {
    await fh?.close();
  }
}

/** Reads and verifies a checkpoint; DataFormatError naming the file and the problem when it is not intact. */
export async function readCheckpoint<M = unknown>(path: string): Promise<Checkpoint<M>> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DataFormatError({ file: path }, `cannot read the checkpoint: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { cause: err });
  }
  const fail = (reason: string, byteOffset?: number): never => {
    throw new DataFormatError(byteOffset === undefined ? { file: path } : { file: path, byteOffset }, reason);
  };
  if (buf.length < PREFIX) fail(`not a complete checkpoint: ${buf.length} bytes, shorter than the ${PREFIX}-byte prefix (truncated?)`);
  if (buf.toString('latin1', 0, 8) !== MAGIC) fail(`not an xmc checkpoint: the file does not start with '${MAGIC}'`, 0);
  const H = buf.readUInt32LE(8);
  const P = Number(buf.readBigUInt64LE(16));
  const expected = PREFIX + H + P + CHECKSUM;
  if (buf.length < expected) {
    fail(`truncated checkpoint: ${buf.length} bytes, but its header declares ${expected} (header ${H} + payload ${P} + prefix and checksum)`);
  }
  if (buf.length > expected) fail(`corrupt checkpoint: ${buf.length - expected} unexpected bytes after the checksum (declared size ${expected})`, expected);
  const digest = createHash('sha256').update(buf.subarray(0, expected - CHECKSUM)).digest();
  const stored = buf.subarray(expected - CHECKSUM, expected);
  if (!digest.equals(stored)) {
    fail(`corrupt checkpoint: SHA-256 mismatch (stored ${stored.toString('hex').slice(0, 16)}..., content hashes to ${digest.toString('hex').slice(0, 16)}...): the file was damaged after it was written`);
  }
  let header: Header;
  try {
    header = JSON.parse(buf.toString('utf8', PREFIX, PREFIX + H)) as Header;
  } catch (err) {
    return fail(`corrupt checkpoint header: ${(err as Error).message}`, PREFIX);
  }
  if (header.format !== 'xmc-checkpoint' || !Array.isArray(header.sections)) fail('the header is not an xmc checkpoint header', PREFIX);
  if (header.version !== CHECKPOINT_VERSION) fail(`checkpoint version ${header.version}; this program reads version ${CHECKPOINT_VERSION}`, PREFIX);

  const payload = PREFIX + H;
  const sections = new Map<string, LoadedSection>();
  for (const s of header.sections) {
    const tensors = new Map<string, StoredTensor>();
    for (const t of s.tensors) {
      const count = t.shape.reduce((a, b) => a * b, 1);
      if (t.bytes !== 4 * count || t.offset < 0 || t.offset + t.bytes > P) {
        fail(`tensor ${s.name}/${t.name}: ${t.bytes} bytes at payload offset ${t.offset} do not fit its shape [${t.shape}] or the ${P}-byte payload`);
      }
      const bytes = buf.buffer.slice(buf.byteOffset + payload + t.offset, buf.byteOffset + payload + t.offset + t.bytes);
      const data = t.dtype === 'float32' ? new Float32Array(bytes) : t.dtype === 'int32' ? new Int32Array(bytes) : t.dtype === 'uint32' ? new Uint32Array(bytes) : fail(`tensor ${s.name}/${t.name} has unknown dtype ${String(t.dtype)}`);
      tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data });
    }
    sections.set(s.name, { name: s.name, meta: s.meta, tensors });
  }
  return { path, meta: header.meta as M, sections, sha256: digest.toString('hex'), bytes: expected };
}
