/**
 * Building and tidying CSR matrices (layout in types.ts).
 *
 * Readers collect one row at a time in scratch arrays, put the row in order
 * with `sortRowEntries` (so that they can name the line of a duplicate id),
 * then append it to a `CsrBuilder`.
 */
import { XmcError } from '../errors.js';
import { GrowableFloat32, GrowableUint32, MAX_CSR_ENTRIES } from './growable.js';
import type { CsrMatrix } from './types.js';

/**
 * Sorts the entries `[start, end)` of a row by column id, carrying `values`
 * (when given) along. Returns the first column id that occurs twice, or -1.
 * Rows that are already strictly increasing (the usual case) cost one pass.
 */
export function sortRowEntries(indices: Uint32Array, values: Float32Array | null, start: number, end: number): number {
  let sorted = true;
  for (let i = start + 1; i < end; i++) {
    if (indices[i] <= indices[i - 1]) { sorted = false; break; }
  }
  if (sorted) return -1;
  const n = end - start;
  if (values === null) {
    indices.subarray(start, end).sort();
  } else {
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const keys = indices.slice(start, end);
    const vals = values.slice(start, end);
    order.sort((a, b) => keys[a] - keys[b]);
    for (let i = 0; i < n; i++) {
      indices[start + i] = keys[order[i]];
      values[start + i] = vals[order[i]];
    }
  }
  for (let i = start + 1; i < end; i++) {
    if (indices[i] === indices[i - 1]) return indices[i];
  }
  return -1;
}

/**
 * Removes repeated ids from a sorted row in place (labels are a set, so a
 * repeated label id is harmless). Returns the new end of the row.
 */
export function dedupeSortedRow(indices: Uint32Array, start: number, end: number): number {
  if (end - start < 2) return end;
  let w = start + 1;
  for (let i = start + 1; i < end; i++) {
    if (indices[i] !== indices[w - 1]) indices[w++] = indices[i];
  }
  return w;
}

/** Appends rows one at a time; `finish` returns the matrix. */
export class CsrBuilder {
  readonly cols: number;
  readonly binary: boolean;
  private readonly indptr: GrowableUint32;
  private readonly indices: GrowableUint32;
  private readonly values: GrowableFloat32 | null;
  private rowCount = 0;

  /** `expectedRows` and `expectedEntries` only size the first buffers. */
  constructor(cols: number, { binary, expectedRows = 1024, expectedEntries = 4096 }:
    { binary: boolean; expectedRows?: number; expectedEntries?: number }) {
    this.cols = cols;
    this.binary = binary;
    this.indptr = new GrowableUint32(expectedRows + 1);
    this.indptr.push(0);
    this.indices = new GrowableUint32(expectedEntries);
    this.values = binary ? null : new GrowableFloat32(expectedEntries);
  }

  get rows(): number { return this.rowCount; }
  get entries(): number { return this.indices.length; }

  /**
   * Appends a row whose entries are `indices[start, start+count)` (sorted,
   * distinct, < cols: the caller has checked) with matching `values` unless
   * the matrix is binary.
   */
  appendRow(indices: ArrayLike<number>, values: ArrayLike<number> | null, start: number, count: number): void {
    const total = this.indices.length + count;
    if (total > MAX_CSR_ENTRIES) {
      throw new XmcError(`CSR matrix too large: more than ${MAX_CSR_ENTRIES} stored entries (a Uint32 indptr cannot address them)`);
    }
    this.indices.append(indices, start, count);
    if (this.values) {
      if (values === null) throw new XmcError('CsrBuilder: a row of a valued matrix needs values');
      this.values.append(values, start, count);
    }
    this.indptr.push(total);
    this.rowCount++;
  }

  finish(): CsrMatrix {
    return {
      kind: 'csr',
      rows: this.rowCount,
      cols: this.cols,
      indptr: this.indptr.finish(),
      indices: this.indices.finish(),
      values: this.values ? this.values.finish() : null,
    };
  }
}

/** Sorts every row of `m` in place by column id. Throws XmcError on a repeated id. */
export function sortCsrRows(m: CsrMatrix): CsrMatrix {
  for (let r = 0; r < m.rows; r++) {
    const dup = sortRowEntries(m.indices, m.values, m.indptr[r], m.indptr[r + 1]);
    if (dup >= 0) throw new XmcError(`row ${r} has column ${dup} twice`);
  }
  return m;
}

/** Number of stored entries of each row. */
export function rowNonzeros(m: CsrMatrix): Uint32Array {
  const out = new Uint32Array(m.rows);
  for (let r = 0; r < m.rows; r++) out[r] = m.indptr[r + 1] - m.indptr[r];
  return out;
}

/** Builds a CSR matrix from rows of column ids (and values), for tests and small inputs. */
export function csrFromRows(cols: number, rows: ReadonlyArray<ReadonlyArray<number>>,
  values?: ReadonlyArray<ReadonlyArray<number>>): CsrMatrix {
  const b = new CsrBuilder(cols, { binary: values === undefined, expectedRows: rows.length });
  rows.forEach((ids, r) => {
    const idx = Uint32Array.from(ids);
    const val = values ? Float32Array.from(values[r]) : null;
    const dup = sortRowEntries(idx, val, 0, idx.length);
    if (dup >= 0) throw new XmcError(`row ${r} has column ${dup} twice`);
    for (const c of idx) if (c >= cols) throw new XmcError(`row ${r}: column ${c} out of range (cols = ${cols})`);
    b.appendRow(idx, val, 0, idx.length);
  });
  return b.finish();
}
