/**
 * Extreme Classification Repository text format.
 *
 *   N F L                         header: points, features, labels
 *   l1,l2,... f:v f:v ...         one line per point, ids 0-based
 *
 * A point with no labels starts with a blank (or directly with `f:v`); a
 * blank line is a point with neither labels nor features. Blank lines after
 * the N points are ignored. Feature ids must be < F, label ids < L; values
 * must be finite as float32. Within a line, repeated label ids are merged and
 * a repeated feature id is an error. Rows come out sorted by id.
 *
 * Reading streams (src/io/lines.ts): `scanXcText` calls back per row with
 * views of scratch arrays (fastest, used by `readXcText` and `xmc stats`),
 * `readXcRows` is an async iterator of copied rows. Writing is atomic.
 */
import { DataFormatError } from '../errors.js';
import { CsrBuilder } from '../data/csr.js';
import type { CsrMatrix, Dataset, FeatureMatrix } from '../data/types.js';
import { writeFileAtomically } from './files.js';
import { formatFloat32 } from './format.js';
import { readLines, scanLines, type LineVisitor } from './lines.js';
import { RowScratch, parseEntries, parseIdList, type IdDomain } from './sparse-row.js';
import { COLON, SPACE, TAB, isBlank, latin1, tokenEnd } from './tokens.js';
import { parseHeaderLine, readHeaderLine } from './header.js';

export interface XcHeader {
  points: number;
  features: number;
  labels: number;
}

/** One point, as views of scratch arrays (valid only during the callback). */
export interface XcRowView {
  /** 0-based point index */
  index: number;
  lineNumber: number;
  labels: Uint32Array;
  featureIds: Uint32Array;
  featureValues: Float32Array;
}

/** One point with its own arrays. */
export type XcRow = XcRowView;

const HEADER_SHAPE = "'N F L' (points, features, labels: three non-negative integers)";

/** Parses the header line of an XC text file. */
export function parseXcHeader(file: string, text: string): XcHeader {
  const [points, features, labels] = parseHeaderLine(file, text, 3, HEADER_SHAPE);
  return { points, features, labels };
}

/** Reads only the header of an XC text file. */
export async function readXcHeader(path: string): Promise<XcHeader> {
  return parseXcHeader(path, await readHeaderLine(path));
}

/**
 * Per-file parsing state: the header, the scratch rows, and the count of
 * points seen. `line` is called for every line after the header.
 */
class XcParser {
  readonly file: string;
  readonly header: XcHeader;
  readonly labelDomain: IdDomain;
  readonly featureDomain: IdDomain;
  readonly labelScratch = new RowScratch();
  readonly featureScratch = new RowScratch();
  points = 0;
  lastLine = 1;

  constructor(file: string, header: XcHeader) {
    this.file = file;
    this.header = header;
    this.labelDomain = { noun: 'label', limit: header.labels, limitText: `the header says ${header.labels} labels` };
    this.featureDomain = { noun: 'feature', limit: header.features, limitText: `the header says ${header.features} features` };
  }

  /** Parses one point line; returns false for a blank line past the last point. */
  parse(bytes: Uint8Array, start: number, end: number, lineNumber: number): boolean {
    this.lastLine = lineNumber;
    if (this.points >= this.header.points) {
      if (isBlank(bytes, start, end)) return false;
      throw new DataFormatError({ file: this.file, line: lineNumber },
        `more points than the header's ${this.header.points}`);
    }
    let p = start;
    this.labelScratch.count = 0;
    if (p < end && bytes[p] !== SPACE && bytes[p] !== TAB) {
      const te = tokenEnd(bytes, p, end);
      let hasColon = false;
      for (let i = p; i < te; i++) if (bytes[i] === COLON) { hasColon = true; break; }
      if (!hasColon) {
        parseIdList(bytes, p, te, this.labelDomain, this.file, lineNumber, this.labelScratch);
        p = te;
      }
    }
    parseEntries(bytes, p, end, this.featureDomain, false, this.file, lineNumber, this.featureScratch);
    this.points++;
    return true;
  }

  view(lineNumber: number): XcRowView {
    return {
      index: this.points - 1,
      lineNumber,
      labels: this.labelScratch.ids.subarray(0, this.labelScratch.count),
      featureIds: this.featureScratch.ids.subarray(0, this.featureScratch.count),
      featureValues: this.featureScratch.values.subarray(0, this.featureScratch.count),
    };
  }

  /** Throws if the file ended before the header's N points. */
  finish(): void {
    if (this.points < this.header.points) {
      throw new DataFormatError({ file: this.file, line: this.lastLine + 1 },
        `truncated: the file ends after ${this.points} of the header's ${this.header.points} points`);
    }
  }
}

export interface XcVisitor {
  /** Called once, before any row. */
  header?(header: XcHeader): void;
  /** Called per point, with views valid only during the call. */
  row(row: XcRowView): void;
}

/** Streams an XC text file through `visitor`. Resolves to the header. */
export async function scanXcText(path: string, visitor: XcVisitor): Promise<XcHeader> {
  let parser: XcParser | null = null;
  const onLine: LineVisitor = (bytes, start, end, lineNumber) => {
    if (parser === null) {
      parser = new XcParser(path, parseXcHeader(path, latin1(bytes, start, end)));
      visitor.header?.(parser.header);
      return;
    }
    if (parser.parse(bytes, start, end, lineNumber)) visitor.row(parser.view(lineNumber));
  };
  await scanLines(path, onLine);
  const p = parser as XcParser | null;
  if (p === null) throw new DataFormatError({ file: path, line: 1 }, `empty file: expected a header ${HEADER_SHAPE}`);
  p.finish();
  return p.header;
}

/** Async iterator of the points of an XC text file (each with its own arrays). */
export async function* readXcRows(path: string): AsyncGenerator<XcRow> {
  let parser: XcParser | null = null;
  for await (const line of readLines(path)) {
    if (parser === null) {
      parser = new XcParser(path, parseXcHeader(path, latin1(line.bytes, line.start, line.end)));
      continue;
    }
    if (!parser.parse(line.bytes, line.start, line.end, line.lineNumber)) continue;
    const v = parser.view(line.lineNumber);
    yield { index: v.index, lineNumber: v.lineNumber, labels: v.labels.slice(), featureIds: v.featureIds.slice(), featureValues: v.featureValues.slice() };
  }
  if (parser === null) throw new DataFormatError({ file: path, line: 1 }, `empty file: expected a header ${HEADER_SHAPE}`);
  parser.finish();
}

/** Reads a whole XC text file: CSR features with values, binary CSR labels. */
export async function readXcText(path: string): Promise<Dataset> {
  let features: CsrBuilder | null = null;
  let labels: CsrBuilder | null = null;
  await scanXcText(path, {
    header(h) {
      features = new CsrBuilder(h.features, { binary: false, expectedRows: h.points, expectedEntries: h.points * 16 });
      labels = new CsrBuilder(h.labels, { binary: true, expectedRows: h.points, expectedEntries: h.points * 4 });
    },
    row(r) {
      features!.appendRow(r.featureIds, r.featureValues, 0, r.featureIds.length);
      labels!.appendRow(r.labels, null, 0, r.labels.length);
    },
  });
  return { features: features!.finish(), labels: labels!.finish(), source: path };
}

/** Writes `dataset` in XC text format, atomically. Dense features are written as their nonzero entries. */
export async function writeXcText(path: string, dataset: Dataset): Promise<void> {
  const { features, labels } = dataset;
  if (features.rows !== labels.rows) {
    throw new DataFormatError({ file: path }, `cannot write: features have ${features.rows} rows but labels have ${labels.rows}`);
  }
  await writeFileAtomically(path, async (w) => {
    await w.writeText(`${features.rows} ${features.cols} ${labels.cols}\n`);
    const entries: string[] = [];
    for (let r = 0; r < features.rows; r++) {
      entries.length = 0;
      appendFeatureEntries(features, r, entries);
      const labelText = labelList(labels, r);
      const featureText = entries.join(' ');
      // No labels: the line starts with a blank, as the format says.
      const line = labelText === '' ? ' ' + featureText : featureText === '' ? labelText : labelText + ' ' + featureText;
      await w.writeText(line + '\n');
    }
  });
}

function labelList(labels: CsrMatrix, r: number): string {
  const a = labels.indptr[r];
  const b = labels.indptr[r + 1];
  if (a === b) return '';
  return Array.prototype.join.call(labels.indices.subarray(a, b), ',');
}

/** Appends `id:value` strings of row r (nonzero entries for dense rows). */
export function appendFeatureEntries(m: FeatureMatrix, r: number, out: string[]): void {
  if (m.kind === 'csr') {
    for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) {
      out.push(`${m.indices[k]}:${m.values ? formatFloat32(m.values[k]) : '1'}`);
    }
  } else {
    const base = r * m.cols;
    for (let c = 0; c < m.cols; c++) {
      const v = m.data[base + c];
      if (v !== 0) out.push(`${c}:${formatFloat32(v)}`);
    }
  }
}
