/**
 * Opening files for reading with clear errors, and atomic writes: every
 * writer of this project writes to a temporary file beside the target and
 * renames it into place, so a reader never sees half a file and a failed
 * write leaves the old file (if any) untouched.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DataFormatError, XmcError } from '../errors.js';

/** Opens `path` for reading; a missing or unreadable file becomes a DataFormatError naming it. */
export async function openForRead(path: string): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file'
      : e.code === 'EISDIR' ? 'is a directory'
      : e.code === 'EACCES' ? 'permission denied'
      : e.message;
    throw new DataFormatError({ file: path }, `cannot open for reading: ${why}`, { cause: err });
  }
  // open() succeeds on a directory on Linux; the first read would fail with a bare EISDIR.
  if ((await fh.stat()).isDirectory()) {
    await fh.close();
    throw new DataFormatError({ file: path }, 'cannot open for reading: is a directory');
  }
  return fh;
}

/** Reads up to `length` bytes at `position`, looping over short reads. Returns the bytes read. */
export async function readFully(fh: FileHandle, target: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Reads the first `max` bytes of a file (fewer if it is shorter). */
export async function readPrefix(path: string, max: number): Promise<Uint8Array> {
  const fh = await openForRead(path);
  try {
    const buf = new Uint8Array(max);
    const n = await readFully(fh, buf, 0);
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

const FLUSH_BYTES = 1 << 20;

/** Writes `text` to `path` atomically: a temporary file beside it, then a rename (AtomicFileWriter). */
export async function writeTextAtomically(path: string, text: string): Promise<void> {
  const w = await AtomicFileWriter.create(path);
  try {
    await w.writeText(text);
    await w.commit();
  } catch (err) {
    await w.abort();
    throw err;
  }
}

/**
 * A file written sequentially to `<dir>/.<name>.tmp-<random>` and renamed to
 * `path` by `commit()`. `abort()` (or any failure in `commit`) removes the
 * temporary file. Text is buffered and written in ~1 MiB blocks.
 */
export class AtomicFileWriter {
  readonly path: string;
  readonly tempPath: string;
  private fh: FileHandle | null;
  private pending: string[] = [];
  private pendingLength = 0;
  private bytesWritten = 0;

  private constructor(path: string, tempPath: string, fh: FileHandle) {
    this.path = path;
    this.tempPath = tempPath;
    this.fh = fh;
  }

  static async create(path: string): Promise<AtomicFileWriter> {
    const tempPath = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    let fh: FileHandle;
    try {
      fh = await open(tempPath, 'wx');
    } catch (err) {
      throw new XmcError(`cannot write ${path}: ${(err as Error).message}`, { cause: err });
    }
    return new AtomicFileWriter(path, tempPath, fh);
  }

  /** Bytes handed to the writer so far (text counted once flushed). */
  get position(): number { return this.bytesWritten; }

  /** Appends text (UTF-8). Resolves once it is buffered or written. */
  async writeText(text: string): Promise<void> {
    this.pending.push(text);
    this.pendingLength += text.length;
    if (this.pendingLength >= FLUSH_BYTES) await this.flushText();
  }

  /** Appends raw bytes (pending text first). */
  async writeBytes(bytes: Uint8Array): Promise<void> {
    await this.flushText();
    await this.writeAll(bytes);
  }

  private async flushText(): Promise<void> {
    if (this.pendingLength === 0) return;
    const bytes = Buffer.from(this.pending.join(''), 'utf8');
    this.pending = [];
    this.pendingLength = 0;
    await this.writeAll(bytes);
  }

  private async writeAll(bytes: Uint8Array): Promise<void> {
    const fh = this.handle();
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, null);
      done += bytesWritten;
    }
    this.bytesWritten += bytes.length;
  }

  private handle(): FileHandle {
    if (!this.fh) throw new XmcError(`${this.path}: writer already closed`);
    return this.fh;
  }

  /** Flushes, syncs and renames the temporary file to `path`. */
  async commit(): Promise<void> {
    try {
      await this.flushText();
      const fh = this.handle();
      await fh.sync();
      await fh.close();
      this.fh = null;
      await rename(this.tempPath, this.path);
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /** Closes and removes the temporary file; `path` is left as it was. */
  async abort(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    this.pending = [];
    if (fh) await fh.close().catch(() => undefined);
    await unlink(this.tempPath).catch(() => undefined);
  }
}

/** Runs `body` with an AtomicFileWriter for `path`; commits on success, aborts on failure. */
export async function writeFileAtomically(path: string, body: (w: AtomicFileWriter) => Promise<void>): Promise<void> {
  const w = await AtomicFileWriter.create(path);
  try {
    await body(w);
  } catch (err) {
    await w.abort();
    throw err;
  }
  await w.commit();
}
