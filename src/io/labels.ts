/**
 * Reading a label matrix from either kind of label-bearing text file, told
 * apart by the header: three integers `N F L` is an XC text file (its labels
 * are returned, features parsed for validation and dropped), two integers
 * `ROWS COLS` is a sparse text label file (values dropped).
 */
import { DataFormatError } from '../errors.js';
import { CsrBuilder } from '../data/csr.js';
import type { CsrMatrix } from '../data/types.js';
import { headerIntegers, readHeaderLine } from './header.js';
import { readSparseText } from './sparse-text.js';
import { scanXcText } from './xc-text.js';

export type TextFileKind = 'xc' | 'sparse';

/** 'xc' for an `N F L` header, 'sparse' for `ROWS COLS`; throws DataFormatError otherwise. */
export async function detectTextFormat(path: string): Promise<TextFileKind> {
  const line = await readHeaderLine(path);
  const ints = headerIntegers(line);
  if (ints?.length === 3) return 'xc';
  if (ints?.length === 2) return 'sparse';
  const shown = line.length > 60 ? line.slice(0, 60) + '...' : line;
  throw new DataFormatError({ file: path, line: 1 },
    `bad header '${shown}': expected 'N F L' (XC text file) or 'ROWS COLS' (sparse text file)`);
}

/** The binary label matrix of an XC text file or a sparse text label file. */
export async function readLabelMatrix(path: string): Promise<CsrMatrix> {
  if ((await detectTextFormat(path)) === 'sparse') return readSparseText(path, { binary: true });
  let labels: CsrBuilder | null = null;
  await scanXcText(path, {
    header(h) { labels = new CsrBuilder(h.labels, { binary: true, expectedRows: h.points, expectedEntries: h.points * 4 }); },
    row(r) { labels!.appendRow(r.labels, null, 0, r.labels.length); },
  });
  return labels!.finish();
}
