/**
 * Streaming line reader over bytes.
 *
 * The file is read in large chunks (1 MiB by default) and split on '\n'
 * with Buffer.indexOf (memchr); a trailing '\r' is dropped, so CRLF files read
 * like LF files. Lines are handed out as byte ranges of the chunk, not as
 * strings, so parsers can work on bytes and nothing proportional to the file
 * is ever held: memory is the chunk plus the longest line.
 *
 * Two ways in:
 * - `scanLines(path, onLine)`: calls `onLine(bytes, start, end, lineNumber,
 *   byteOffset)` synchronously for every line; the fastest path.
 * - `readLines(path)`: an async iterator of `Line` objects.
 * In both, the bytes are only valid until the next line is requested: copy
 * what you keep.
 *
 * Line numbers are 1-based; byte offsets are 0-based file offsets of the
 * line's first byte. A final line without '\n' is a line; the empty string
 * after a final '\n' is not.
 */
import { openForRead } from './files.js';

export interface Line {
  /** the chunk (or joined buffer) holding the line */
  readonly bytes: Uint8Array;
  /** the line is bytes[start, end), without '\n' or a trailing '\r' */
  readonly start: number;
  readonly end: number;
  readonly lineNumber: number;
  readonly byteOffset: number;
}

export type LineVisitor = (bytes: Uint8Array, start: number, end: number, lineNumber: number, byteOffset: number) => void;

export interface LineReaderOptions {
  /** bytes per read; default 1 MiB */
  chunkSize?: number;
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const DEFAULT_CHUNK = 1 << 20;

/**
 * Splits a byte stream into lines. Feed it chunks with `push`, then call
 * `end`. It keeps the unfinished tail of a chunk in its own buffer, which
 * grows to the longest line.
 */
export class LineSplitter {
  private carry = new Uint8Array(0);
  private carryLength = 0;
  /** file offset of the first carried byte */
  private carryOffset = 0;
  /** file offset of the next chunk's first byte */
  private chunkOffset = 0;
  private nextLineNumber = 1;

  /** Emits every complete line of `chunk`; keeps the rest for the next call. */
  push(chunk: Uint8Array, emit: LineVisitor): void {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const base = this.chunkOffset;
    this.chunkOffset += chunk.length;
    let pos = 0;
    if (this.carryLength > 0) {
      const nl = buf.indexOf(NEWLINE);
      if (nl < 0) {
        this.appendCarry(chunk, 0, chunk.length, base);
        return;
      }
      this.appendCarry(chunk, 0, nl, base);
      const n = this.carryLength;
      this.carryLength = 0;
      this.emitLine(this.carry, 0, n, this.carryOffset, emit);
      pos = nl + 1;
    }
    for (;;) {
      const nl = buf.indexOf(NEWLINE, pos);
      if (nl < 0) break;
      this.emitLine(chunk, pos, nl, base + pos, emit);
      pos = nl + 1;
    }
    if (pos < chunk.length) this.appendCarry(chunk, pos, chunk.length, base);
  }

  /** Emits the last line if the input did not end with '\n'. */
  end(emit: LineVisitor): void {
    if (this.carryLength > 0) {
      const n = this.carryLength;
      this.carryLength = 0;
      this.emitLine(this.carry, 0, n, this.carryOffset, emit);
    }
  }

  /** Lines emitted so far. */
  get lines(): number { return this.nextLineNumber - 1; }

  /** Bytes pushed so far. */
  get bytes(): number { return this.chunkOffset; }

  private emitLine(bytes: Uint8Array, start: number, end: number, offset: number, emit: LineVisitor): void {
    const lineEnd = end > start && bytes[end - 1] === CARRIAGE_RETURN ? end - 1 : end;
    emit(bytes, start, lineEnd, this.nextLineNumber++, offset);
  }

  private appendCarry(src: Uint8Array, start: number, end: number, base: number): void {
    const n = end - start;
    if (this.carryLength === 0) this.carryOffset = base + start;
    if (this.carryLength + n > this.carry.length) {
      const next = new Uint8Array(Math.max(this.carry.length * 2, this.carryLength + n, 4096));
      next.set(this.carry.subarray(0, this.carryLength));
      this.carry = next;
    }
    this.carry.set(src.subarray(start, end), this.carryLength);
    this.carryLength += n;
  }
}

/**
 * Calls `onLine` for every line of the file, in order. Resolves to the number
 * of lines and bytes read. An exception thrown by `onLine` stops the scan and
 * rejects (the file is closed).
 */
export async function scanLines(path: string, onLine: LineVisitor, options: LineReaderOptions = {}): Promise<{ lines: number; bytes: number }> {
  const fh = await openForRead(path);
  const splitter = new LineSplitter();
  // Two buffers: the next read runs in the thread pool while this chunk is parsed.
  const size = options.chunkSize ?? DEFAULT_CHUNK;
  const buffers = [new Uint8Array(size), new Uint8Array(size)];
  let which = 0;
  let pending = fh.read(buffers[0], 0, size, null);
  try {
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      const chunk = buffers[which].subarray(0, bytesRead);
      which ^= 1;
      pending = fh.read(buffers[which], 0, size, null);
      splitter.push(chunk, onLine);
    }
    splitter.end(onLine);
  } finally {
    // When onLine threw, a read may still be in flight: let it finish before closing.
    await pending.catch(() => undefined);
    await fh.close();
  }
  return { lines: splitter.lines, bytes: splitter.bytes };
}

/** Async iterator of the file's lines (see the module comment for validity of `bytes`). */
export async function* readLines(path: string, options: LineReaderOptions = {}): AsyncGenerator<Line> {
  const fh = await openForRead(path);
  const splitter = new LineSplitter();
  const size = options.chunkSize ?? DEFAULT_CHUNK;
  // One buffer: the lines of a chunk are handed out before the next read reuses it.
  const buffer = new Uint8Array(size);
  let batch: Line[] = [];
  const collect: LineVisitor = (bytes, start, end, lineNumber, byteOffset) => {
    if (bytes.buffer === buffer.buffer) {
      batch.push({ bytes, start, end, lineNumber, byteOffset });
    } else {
      // Joined across chunks in the splitter's carry buffer, which the rest
      // of this same chunk may overwrite: copy it.
      batch.push({ bytes: bytes.slice(start, end), start: 0, end: end - start, lineNumber, byteOffset });
    }
  };
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buffer, 0, size, null);
      if (bytesRead === 0) break;
      splitter.push(buffer.subarray(0, bytesRead), collect);
      for (const line of batch) yield line;
      batch = [];
    }
    splitter.end(collect);
    for (const line of batch) yield line;
  } finally {
    await fh.close();
  }
}

/** The line's text (UTF-8). */
export function lineText(line: Line): string {
  return Buffer.from(line.bytes.buffer, line.bytes.byteOffset + line.start, line.end - line.start).toString('utf8');
}
