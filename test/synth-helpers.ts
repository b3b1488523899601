/** Small readers for the synth tests (the project's own npy reader lives elsewhere; these stay independent of it). */
import { readFileSync } from 'node:fs';

export interface NpyFile {
  version: [number, number];
  headerLength: number;
  dataOffset: number;
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  bytes: Buffer;
}

export function parseNpy(path: string): NpyFile {
  const bytes = readFileSync(path);
  if (bytes[0] !== 0x93 || bytes.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: bad magic`);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.toString('latin1', 10, 10 + headerLength);
  const descr = /'descr': '([^']*)'/.exec(header)?.[1] ?? '';
  const fortran = /'fortran_order': (True|False)/.exec(header)?.[1];
  const shape = /'shape': \(([^)]*)\)/.exec(header)?.[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number) ?? [];
  if (!header.endsWith('\n')) throw new Error(`${path}: header does not end with a newline`);
  return { version: [bytes[6], bytes[7]], headerLength, dataOffset: 10 + headerLength, descr, fortranOrder: fortran === 'True', shape, bytes };
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** The feature matrix as float64 rows (float16 or float32 input). */
export function npyRows(f: NpyFile): Float64Array[] {
  const [rows, cols] = f.shape;
  const out: Float64Array[] = [];
  const width = f.descr === '<f2' ? 2 : 4;
  for (let r = 0; r < rows; r++) {
    const row = new Float64Array(cols);
    for (let c = 0; c < cols; c++) {
      const at = f.dataOffset + (r * cols + c) * width;
      row[c] = width === 2 ? halfToFloat(f.bytes.readUInt16LE(at)) : f.bytes.readFloatLE(at);
    }
    out.push(row);
  }
  return out;
}

export interface LabelFile { rows: number; cols: number; lines: string[]; labels: number[][] }

/** pyxclib label text: "rows cols", then one line of "l:1 l:1" per row. */
export function parseLabels(path: string): LabelFile {
  const text = readFileSync(path, 'utf8');
  if (!text.endsWith('\n')) throw new Error(`${path}: no final newline`);
  const lines = text.slice(0, -1).split('\n');
  const [rows, cols] = lines[0].split(' ').map(Number);
  const body = lines.slice(1);
  const labels = body.map((line) => (line === '' ? [] : line.split(' ').map((tok) => {
    const m = /^(\d+):1$/.exec(tok);
    if (!m) throw new Error(`${path}: bad token '${tok}'`);
    return Number(m[1]);
  })));
  return { rows, cols, lines: body, labels };
}
