/**
 * Sparse matrix text format of pyxclib and the Extreme Classification
 * Repository's split files (trn_X_Xf.txt, trn_X_Y.txt):
 *
 *   ROWS COLS                     header
 *   c:v c:v ...                   one line per row, column ids 0-based
 *
 * An empty (or blank) line is an empty row; blank lines after the last row
 * are ignored. With `binary: true` (label files) the values are checked and
 * dropped, a bare `c` is accepted as well as `c:v`, and repeated ids are
 * merged; otherwise a repeated column id is an error. Rows come out sorted.
 */
import { DataFormatError } from '../errors.js';
import { CsrBuilder } from '../data/csr.js';
import type { CsrMatrix } from '../data/types.js';
import { writeFileAtomically } from './files.js';
import { formatFloat32 } from './format.js';
import { parseHeaderLine, readHeaderLine } from './header.js';
import { scanLines } from './lines.js';
import { RowScratch, parseEntries, type IdDomain } from './sparse-row.js';
import { isBlank, latin1 } from './tokens.js';

export interface SparseTextHeader {
  rows: number;
  cols: number;
}

export interface SparseTextOptions {
  /** a label file: values dropped, every entry a column (label) id */
  binary?: boolean;
}

/** One row as views of scratch arrays (valid only during the callback); values null when binary. */
export interface SparseRowView {
  index: number;
  lineNumber: number;
  ids: Uint32Array;
  values: Float32Array | null;
}

const HEADER_SHAPE = "'ROWS COLS' (two non-negative integers)";

export function parseSparseTextHeader(file: string, text: string): SparseTextHeader {
  const [rows, cols] = parseHeaderLine(file, text, 2, HEADER_SHAPE);
  return { rows, cols };
}

export async function readSparseTextHeader(path: string): Promise<SparseTextHeader> {
  return parseSparseTextHeader(path, await readHeaderLine(path));
}

/** Streams the rows of a sparse text file through `onRow`. Resolves to the header. */
export async function scanSparseText(path: string, options: SparseTextOptions,
  onHeader: (h: SparseTextHeader) => void, onRow: (row: SparseRowView) => void): Promise<SparseTextHeader> {
  const binary = options.binary ?? false;
  let header: SparseTextHeader | null = null;
  let domain: IdDomain | null = null;
  const scratch = new RowScratch();
  let rows = 0;
  let lastLine = 0;
  await scanLines(path, (bytes, start, end, lineNumber) => {
    lastLine = lineNumber;
    if (header === null) {
      header = parseSparseTextHeader(path, latin1(bytes, start, end));
      domain = binary
        ? { noun: 'label', limit: header.cols, limitText: `the header says ${header.cols} labels (columns)` }
        : { noun: 'column', limit: header.cols, limitText: `the header says ${header.cols} columns` };
      onHeader(header);
      return;
    }
    if (rows >= header.rows) {
      if (isBlank(bytes, start, end)) return;
      throw new DataFormatError({ file: path, line: lineNumber }, `more rows than the header's ${header.rows}`);
    }
    parseEntries(bytes, start, end, domain!, binary, path, lineNumber, scratch);
    onRow({
      index: rows++,
      lineNumber,
      ids: scratch.ids.subarray(0, scratch.count),
      values: binary ? null : scratch.values.subarray(0, scratch.count),
    });
  });
  const h = header as SparseTextHeader | null;
  if (h === null) throw new DataFormatError({ file: path, line: 1 }, `empty file: expected a header ${HEADER_SHAPE}`);
  if (rows < h.rows) {
    throw new DataFormatError({ file: path, line: lastLine + 1 },
      `truncated: the file ends after ${rows} of the header's ${h.rows} rows`);
  }
  return h;
}

/** Reads a sparse text file into CSR (binary: values null). */
export async function readSparseText(path: string, options: SparseTextOptions = {}): Promise<CsrMatrix> {
  const binary = options.binary ?? false;
  let builder: CsrBuilder | null = null;
  await scanSparseText(path, options,
    (h) => { builder = new CsrBuilder(h.cols, { binary, expectedRows: h.rows, expectedEntries: h.rows * 8 }); },
    (row) => builder!.appendRow(row.ids, row.values, 0, row.ids.length));
  return builder!.finish();
}

/**
 * Writes `m` in sparse text format, atomically. A binary matrix is written
 * with value 1 for every entry (`c:1`), as pyxclib does.
 */
export async function writeSparseText(path: string, m: CsrMatrix): Promise<void> {
  await writeFileAtomically(path, async (w) => {
    await w.writeText(`${m.rows} ${m.cols}\n`);
    const entries: string[] = [];
    for (let r = 0; r < m.rows; r++) {
      entries.length = 0;
      for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) {
        entries.push(`${m.indices[k]}:${m.values ? formatFloat32(m.values[k]) : '1'}`);
      }
      await w.writeText(entries.join(' ') + '\n');
    }
  });
}
