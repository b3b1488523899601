/**
 * NumPy .npy files holding 2-D dense features.
 *
 * Layout: magic `\x93NUMPY`, major and minor version bytes, the header
 * length (uint16 LE for version 1.0, uint32 LE for 2.0 and 3.0), then the
 * header, a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 300), }
 * padded with spaces and ending in '\n' so the data starts on a 64-byte
 * boundary (version 3.0 only differs in allowing UTF-8 in the header). Then
 * rows * cols values, row-major.
 *
 * Supported: dtype '<f4' (float32) and '<f2' (float16, converted to float32
 * on read), C order, exactly 2 dimensions. Everything else is rejected with
 * a DataFormatError naming the file, the byte offset and the problem, as are
 * files shorter or longer than the header says and NaN/Inf values.
 *
 * `openNpy` reads any range of rows, so a file larger than memory can be
 * processed in blocks; `NpyWriter` writes row blocks to a temporary file and
 * renames it into place on `close`.
 */
import { endianness } from 'node:os';
import type { FileHandle } from 'node:fs/promises';
import { DataFormatError, XmcError } from '../errors.js';
import type { DenseMatrix } from '../data/types.js';
import { AtomicFileWriter, openForRead, readFully } from './files.js';
import { float16ToFloat32Array, float32ToFloat16Array, isFloat16NonFinite } from './float16.js';

export type NpyDtype = 'f4' | 'f2';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ITEM_SIZE: Record<NpyDtype, number> = { f4: 4, f2: 2 };
/** Rows are converted in blocks of about this many bytes (bounds temporary memory). */
const BLOCK_BYTES = 16 << 20;

if (endianness() !== 'LE') {
  // Typed arrays use the host byte order; every machine we target is little-endian.
  throw new XmcError('src/io/npy.ts supports little-endian hosts only');
}

export interface NpyHeader {
  dtype: NpyDtype;
  rows: number;
  cols: number;
  /** byte offset of the first value */
  dataOffset: number;
  version: string;
}

/** Parses the magic, version and header dict at the start of `bytes` (the first bytes of `file`). */
export function parseNpyHeader(file: string, bytes: Uint8Array): NpyHeader {
  const fail = (byteOffset: number, reason: string): never => {
    throw new DataFormatError({ file, byteOffset }, reason);
  };
  if (bytes.length < 10) fail(0, `not a .npy file: only ${bytes.length} bytes`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) fail(i, 'bad magic: not a .npy file (expected \\x93NUMPY)');
  }
  const major = bytes[6];
  const minor = bytes[7];
  if (!((major === 1 || major === 2 || major === 3) && minor === 0)) {
    fail(6, `unsupported .npy version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
  }
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = bytes[8] | (bytes[9] << 8);
    headerStart = 10;
  } else {
    if (bytes.length < 12) fail(8, 'truncated header length field');
    headerLength = (bytes[8] | (bytes[9] << 8) | (bytes[10] << 16) | (bytes[11] << 24)) >>> 0;
    headerStart = 12;
  }
  const dataOffset = headerStart + headerLength;
  if (bytes.length < dataOffset) {
    fail(headerStart, `truncated header: the header length field says ${headerLength} bytes, only ${bytes.length - headerStart} present`);
  }
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + headerStart, headerLength).toString(major === 3 ? 'utf8' : 'latin1');
  let dict: Map<string, PyValue>;
  try {
    dict = parsePyDict(text);
  } catch (err) {
    return fail(headerStart, `bad header ${JSON.stringify(text.trim().slice(0, 120))}: ${(err as Error).message}`);
  }
  for (const key of dict.keys()) {
    if (key !== 'descr' && key !== 'fortran_order' && key !== 'shape') fail(headerStart, `bad header: unexpected key '${key}'`);
  }
  const descr = dict.get('descr');
  const fortran = dict.get('fortran_order');
  const shape = dict.get('shape');
  if (descr === undefined || fortran === undefined || shape === undefined) {
    fail(headerStart, "bad header: it needs the keys 'descr', 'fortran_order' and 'shape'");
  }
  if (typeof descr !== 'string') return fail(headerStart, `unsupported dtype ${formatPy(descr!)}: only '<f4' (float32) and '<f2' (float16)`);
  let dtype: NpyDtype;
  if (descr === '<f4') dtype = 'f4';
  else if (descr === '<f2') dtype = 'f2';
  else if (descr === '>f4' || descr === '>f2') {
    return fail(headerStart, `unsupported byte order '${descr}' (big-endian): only little-endian '<f4' and '<f2'; convert with arr.astype('<f4')`);
  } else {
    return fail(headerStart, `unsupported dtype '${descr}': only '<f4' (float32) and '<f2' (float16); convert with arr.astype('<f4')`);
  }
  if (typeof fortran !== 'boolean') return fail(headerStart, `bad header: fortran_order must be True or False, got ${formatPy(fortran!)}`);
  if (fortran) fail(headerStart, 'fortran_order True is not supported: save a C-order array (np.ascontiguousarray)');
  if (!Array.isArray(shape)) return fail(headerStart, `bad header: shape must be a tuple, got ${formatPy(shape!)}`);
  if (!shape.every((d) => typeof d === 'number')) fail(headerStart, `bad header: shape must hold integers, got ${formatPy(shape)}`);
  if (shape.length !== 2) fail(headerStart, `expected a 2-D array, the shape is ${formatPy(shape)}`);
  const [rows, cols] = shape as number[];
  if (!Number.isSafeInteger(rows * cols * ITEM_SIZE[dtype])) fail(headerStart, `shape ${formatPy(shape)} is too large`);
  return { dtype, rows, cols, dataOffset, version: `${major}.${minor}` };
}

/** An open .npy file. Close it when done. */
export interface NpyReader {
  readonly path: string;
  readonly rows: number;
  readonly cols: number;
  readonly dtype: NpyDtype;
  /** Rows [start, start + count) as float32, row-major. Rejects NaN/Inf values. */
  readRows(start: number, count: number): Promise<Float32Array>;
  close(): Promise<void>;
}

/** Longest header read when opening (numpy itself limits headers to 10 000 bytes by default). */
const MAX_HEADER_BYTES = 1 << 20;

export async function openNpy(path: string): Promise<NpyReader> {
  const fh = await openForRead(path);
  try {
    const size = (await fh.stat()).size;
    const prefix = new Uint8Array(Math.min(size, MAX_HEADER_BYTES));
    await readFully(fh, prefix, 0);
    const header = parseNpyHeader(path, prefix);
    const dataBytes = header.rows * header.cols * ITEM_SIZE[header.dtype];
    const expected = header.dataOffset + dataBytes;
    if (size < expected) {
      throw new DataFormatError({ file: path, byteOffset: size },
        `truncated: shape (${header.rows}, ${header.cols}) of '<${header.dtype}' needs ${dataBytes} data bytes from offset ${header.dataOffset}, the file ends after ${size - header.dataOffset}`);
    }
    if (size > expected) {
      throw new DataFormatError({ file: path, byteOffset: expected },
        `${size - expected} bytes after the end of the data (shape (${header.rows}, ${header.cols}) of '<${header.dtype}')`);
    }
    return new FileNpyReader(path, fh, header);
  } catch (err) {
    await fh.close();
    throw err;
  }
}

class FileNpyReader implements NpyReader {
  readonly path: string;
  readonly rows: number;
  readonly cols: number;
  readonly dtype: NpyDtype;
  private readonly fh: FileHandle;
  private readonly dataOffset: number;

  constructor(path: string, fh: FileHandle, header: NpyHeader) {
    this.path = path;
    this.fh = fh;
    this.rows = header.rows;
    this.cols = header.cols;
    this.dtype = header.dtype;
    this.dataOffset = header.dataOffset;
  }

  async readRows(start: number, count: number): Promise<Float32Array> {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.rows) {
      throw new XmcError(`${this.path}: cannot read rows [${start}, ${start + count}) of ${this.rows}`);
    }
    const out = new Float32Array(count * this.cols);
    const item = ITEM_SIZE[this.dtype];
    const rowBytes = this.cols * item;
    const offset = this.dataOffset + start * rowBytes;
    if (this.dtype === 'f4') {
      const bytes = new Uint8Array(out.buffer);
      await this.readExactly(bytes, offset);
      this.checkFinite(out, offset, 4, (i) => !Number.isFinite(out[i]));
      return out;
    }
    const blockRows = Math.max(1, Math.floor(BLOCK_BYTES / Math.max(1, rowBytes)));
    const halves = new Uint16Array(Math.min(count, blockRows) * this.cols);
    for (let r = 0; r < count; r += blockRows) {
      const n = Math.min(blockRows, count - r);
      const block = halves.subarray(0, n * this.cols);
      const blockOffset = offset + r * rowBytes;
      await this.readExactly(new Uint8Array(block.buffer, 0, block.length * 2), blockOffset);
      this.checkFinite(block, blockOffset, 2, (i) => isFloat16NonFinite(block[i]));
      float16ToFloat32Array(block, out.subarray(r * this.cols, (r + n) * this.cols));
    }
    return out;
  }

  private async readExactly(target: Uint8Array, position: number): Promise<void> {
    const n = await readFully(this.fh, target, position);
    if (n < target.length) {
      throw new DataFormatError({ file: this.path, byteOffset: position + n }, 'truncated: the file ended while reading data (changed since it was opened?)');
    }
  }

  private checkFinite(values: ArrayLike<number>, byteOffset: number, item: number, bad: (i: number) => boolean): void {
    for (let i = 0; i < values.length; i++) {
      if (bad(i)) {
        const flat = (byteOffset - this.dataOffset) / item + i;
        const row = Math.floor(flat / this.cols);
        const col = flat % this.cols;
        const what = item === 2 ? ((values[i] & 0x3ff) ? 'NaN' : 'infinite') : Number.isNaN(values[i]) ? 'NaN' : 'infinite';
        throw new DataFormatError({ file: this.path, byteOffset: byteOffset + i * item }, `${what} value at row ${row}, column ${col}`);
      }
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Reads a whole .npy file as a dense float32 matrix. */
export async function readNpy(path: string): Promise<DenseMatrix> {
  const reader = await openNpy(path);
  try {
    const data = await reader.readRows(0, reader.rows);
    return { kind: 'dense', rows: reader.rows, cols: reader.cols, data };
  } finally {
    await reader.close();
  }
}

/** The header bytes (magic to padding) for a C-order 2-D array. */
export function npyHeaderBytes(rows: number, cols: number, dtype: NpyDtype): Uint8Array {
  const dict = `{'descr': '<${dtype}', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  let major = 1;
  let prefix = 10;
  if (dict.length + 1 + prefix > 0xffff) {
    major = 2;
    prefix = 12;
  }
  const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  const headerLength = total - prefix;
  const text = dict + ' '.repeat(headerLength - dict.length - 1) + '\n';
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  if (major === 1) {
    out[8] = headerLength & 0xff;
    out[9] = headerLength >>> 8;
  } else {
    new DataView(out.buffer).setUint32(8, headerLength, true);
  }
  out.set(Buffer.from(text, 'latin1'), prefix);
  return out;
}

/**
 * Writes a rows x cols .npy file in row blocks. `close` renames it into place
 * and throws if fewer rows than declared were appended (the partial file is
 * removed); `abort` gives up.
 */
export class NpyWriter {
  readonly path: string;
  readonly rows: number;
  readonly cols: number;
  readonly dtype: NpyDtype;
  private written = 0;
  private readonly out: AtomicFileWriter;

  private constructor(path: string, rows: number, cols: number, dtype: NpyDtype, out: AtomicFileWriter) {
    this.path = path;
    this.rows = rows;
    this.cols = cols;
    this.dtype = dtype;
    this.out = out;
  }

  static async open(path: string, rows: number, cols: number, dtype: NpyDtype = 'f4'): Promise<NpyWriter> {
    if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 0 || cols < 0) {
      throw new XmcError(`${path}: bad .npy shape (${rows}, ${cols})`);
    }
    if (dtype !== 'f4' && dtype !== 'f2') throw new XmcError(`${path}: unsupported .npy dtype '${dtype}' (f4 or f2)`);
    const out = await AtomicFileWriter.create(path);
    try {
      await out.writeBytes(npyHeaderBytes(rows, cols, dtype));
    } catch (err) {
      await out.abort();
      throw err;
    }
    return new NpyWriter(path, rows, cols, dtype, out);
  }

  get rowsWritten(): number { return this.written; }

  /** Appends whole rows (length a multiple of cols). Rejects NaN/Inf and rows past the declared count. */
  async append(block: Float32Array): Promise<void> {
    if (this.cols === 0 ? block.length !== 0 : block.length % this.cols !== 0) {
      throw new XmcError(`${this.path}: a block of ${block.length} values is not whole rows of ${this.cols}`);
    }
    const n = this.cols === 0 ? 0 : block.length / this.cols;
    if (this.written + n > this.rows) {
      throw new XmcError(`${this.path}: appending ${n} rows would exceed the declared ${this.rows} (already ${this.written})`);
    }
    for (let i = 0; i < block.length; i++) {
      if (!Number.isFinite(block[i])) {
        throw new XmcError(`${this.path}: value at row ${this.written + Math.floor(i / this.cols)}, column ${i % this.cols} is ${block[i]}`);
      }
    }
    if (this.dtype === 'f4') {
      await this.out.writeBytes(new Uint8Array(block.buffer, block.byteOffset, block.byteLength));
    } else {
      const halves = float32ToFloat16Array(block);
      for (let i = 0; i < halves.length; i++) {
        if (isFloat16NonFinite(halves[i])) {
          throw new XmcError(`${this.path}: value ${block[i]} at row ${this.written + Math.floor(i / this.cols)}, column ${i % this.cols} overflows float16 (largest 65504)`);
        }
      }
      await this.out.writeBytes(new Uint8Array(halves.buffer, 0, halves.byteLength));
    }
    this.written += n;
  }

  /** Renames the file into place; throws (and removes it) if rows are missing. */
  async close(): Promise<void> {
    if (this.written !== this.rows) {
      await this.out.abort();
      throw new XmcError(`${this.path}: closed after ${this.written} of the declared ${this.rows} rows; nothing written`);
    }
    await this.out.commit();
  }

  async abort(): Promise<void> {
    await this.out.abort();
  }
}

/** Writes a dense matrix as .npy (float32 or float16). */
export async function writeNpy(path: string, m: DenseMatrix, dtype: NpyDtype = 'f4'): Promise<void> {
  const w = await NpyWriter.open(path, m.rows, m.cols, dtype);
  try {
    const rowsPerBlock = Math.max(1, Math.floor(BLOCK_BYTES / Math.max(1, m.cols * 4)));
    for (let r = 0; r < m.rows; r += rowsPerBlock) {
      const n = Math.min(rowsPerBlock, m.rows - r);
      await w.append(m.data.subarray(r * m.cols, (r + n) * m.cols));
    }
  } catch (err) {
    await w.abort();
    throw err;
  }
  await w.close();
}

// ---- a parser for the Python literal of the header ----

type PyValue = string | boolean | number | PyValue[];

function formatPy(v: PyValue): string {
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return String(v);
  return v.length === 1 ? `(${formatPy(v[0])},)` : `(${v.map(formatPy).join(', ')})`;
}

/** Parses `{'key': value, ...}` with string, True/False, int and tuple/list values. */
function parsePyDict(text: string): Map<string, PyValue> {
  let i = 0;
  const ws = () => { while (i < text.length && /\s/.test(text[i])) i++; };
  const expect = (c: string) => {
    ws();
    if (text[i] !== c) throw new Error(`expected '${c}' at character ${i}`);
    i++;
  };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new Error('unterminated string');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const items: PyValue[] = [];
      for (;;) {
        ws();
        if (text[i] === close) { i++; return items; }
        items.push(value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === close) { i++; return items; }
        throw new Error(`expected ',' or '${close}' at character ${i}`);
      }
    }
    const m = /^(True|False|\d+)/.exec(text.slice(i));
    if (!m) throw new Error(`unexpected ${JSON.stringify(text.slice(i, i + 10))} at character ${i}`);
    i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    return Number(m[0]);
  };
  const dict = new Map<string, PyValue>();
  expect('{');
  for (;;) {
    ws();
    if (text[i] === '}') { i++; break; }
    const key = value();
    if (typeof key !== 'string') throw new Error('dict keys must be strings');
    if (dict.has(key)) throw new Error(`key '${key}' given twice`);
    expect(':');
    dict.set(key, value());
    ws();
    if (text[i] === ',') { i++; continue; }
    if (text[i] === '}') { i++; break; }
    throw new Error(`expected ',' or '}' at character ${i}`);
  }
  ws();
  if (i !== text.length) throw new Error(`unexpected text after the dict at character ${i}`);
  return dict;
}
