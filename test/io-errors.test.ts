import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataFormatError } from '../src/errors.js';
import { readXcText } from '../src/io/xc-text.js';
import { readSparseText } from '../src/io/sparse-text.js';
import { readNpy } from '../src/io/npy.js';
import { readLabelMatrix } from '../src/io/labels.js';
import { loadDataset } from '../src/data/load.js';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'xmc-io-errors-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
function file(content: string | Uint8Array, ext = '.txt'): string {
  const path = join(dir, `case-${++counter}${ext}`);
  writeFileSync(path, content);
  return path;
}

/** Expects a DataFormatError whose message names the file, the place and the problem. */
async function expectDataError(run: Promise<unknown>, path: string, where: { line?: number; byteOffset?: number }, problem: RegExp) {
  let error: unknown;
  try {
    await run;
  } catch (err) {
    error = err;
  }
  expect(error, 'expected a DataFormatError').toBeInstanceOf(DataFormatError);
  const e = error as DataFormatError;
  expect(e.location.file).toBe(path);
  expect(e.message).toContain(path);
  if (where.line !== undefined) {
    expect(e.location.line).toBe(where.line);
    expect(e.message).toContain(`line ${where.line}`);
  }
  if (where.byteOffset !== undefined) {
    expect(e.location.byteOffset).toBe(where.byteOffset);
    expect(e.message).toContain(`byte offset ${where.byteOffset}`);
  }
  expect(e.reason).toMatch(problem);
}

const xc = (body: string) => file(body);

describe('io - XC text errors', () => {
  const cases: Array<[string, string, number, RegExp]> = [
    ['malformed value', '2 10 5\n0 3:abc\n1 2:1\n', 2, /malformed value 'abc' in '3:abc'/],
    ['malformed feature id', '2 10 5\n0 x:1\n1 2:1\n', 2, /malformed feature id 'x' in 'x:1'/],
    ['missing colon', '2 10 5\n0 3:1 4\n1 2:1\n', 2, /missing ':' in feature entry '4'/],
    ['stray comma', '2 10 5\n0,,2 3:1\n1 2:1\n', 2, /empty label id \(stray comma\) in '0,,2'/],
    ['trailing comma', '2 10 5\n1 2:1\n0,2, 3:1\n', 3, /empty label id \(stray comma\) in '0,2,'/],
    ['malformed label id', '2 10 5\n1 2:1\n0,a 3:1\n', 3, /malformed label id 'a' in '0,a'/],
    ['label id out of range', '2 10 5\n1 2:1\n0,5 3:1\n', 3, /label id 5 out of range: the header says 5 labels/],
    ['feature id out of range', '2 10 5\n1 2:1 10:1\n0 3:1\n', 2, /feature id 10 out of range: the header says 10 features/],
    ['NaN value', '2 10 5\n1 2:nan\n0 3:1\n', 2, /NaN value in '2:nan'/],
    ['infinite value', '2 10 5\n1 2:1\n0 3:-inf\n', 3, /infinite value in '3:-inf'/],
    ['float32 overflow', '2 10 5\n1 2:1e39\n0 3:1\n', 2, /value overflows float32 in '2:1e39'/],
    ['repeated feature id', '2 10 5\n1 2:1 7:1 2:3\n0 3:1\n', 2, /feature id 2 appears twice/],
    ['too many rows', '2 10 5\n1 2:1\n0 3:1\n4 1:1\n', 4, /more points than the header's 2/],
    ['too few rows (truncated)', '3 10 5\n1 2:1\n0 3:1\n', 4, /truncated: the file ends after 2 of the header's 3 points/],
    ['bad header', 'ten 10 5\n1 2:1\n', 1, /bad header 'ten 10 5': expected 'N F L'/],
    ['two-number header', '2 10\n1 2:1\n', 1, /bad header '2 10': expected 'N F L'/],
    ['empty file', '', 1, /empty file/],
  ];
  for (const [name, body, line, problem] of cases) {
    it(`rejects ${name} naming the file and line ${line}`, async () => {
      const path = xc(body);
      await expectDataError(readXcText(path), path, { line }, problem);
    });
  }

  it('rejects a missing file or a directory with a DataFormatError naming it', async () => {
    const path = join(dir, 'does-not-exist.txt');
    await expectDataError(readXcText(path), path, {}, /cannot open for reading: no such file/);
    await expectDataError(readXcText(dir), dir, {}, /cannot open for reading: is a directory/);
  });
});

describe('io - sparse text errors', () => {
  const cases: Array<[string, string, boolean, number, RegExp]> = [
    ['missing colon in a valued file', '2 5\n1:1 3\n\n', false, 2, /missing ':' in column entry '3'/],
    ['malformed value', '2 5\n1:1\n3:1.0.0\n', false, 3, /malformed value '1.0.0'/],
    ['column id out of range', '2 5\n1:1\n5:1\n', false, 3, /column id 5 out of range: the header says 5 columns/],
    ['label id out of range', '2 5\n1:1\n7:1\n', true, 3, /label id 7 out of range: the header says 5 labels/],
    ['malformed label id', '2 5\n1:1 -2:1\n\n', true, 2, /malformed label id '-2' in '-2:1'/],
    ['stray comma', '2 5\n1:1,\n\n', false, 2, /malformed value '1,' in '1:1,'/],
    ['malformed bare label id', '2 5\n1 4x\n\n', true, 2, /malformed label id '4x' \(expected id or id:value\)/],
    ['duplicate column id', '1 5\n1:1 1:2\n', false, 2, /column id 1 appears twice/],
    ['NaN value', '1 5\n1:NaN\n', false, 2, /NaN value in '1:NaN'/],
    ['too many rows', '1 5\n1:1\n2:1\n', false, 3, /more rows than the header's 1/],
    ['too few rows (truncated)', '3 5\n1:1\n', true, 3, /truncated: the file ends after 1 of the header's 3 rows/],
    ['infinite value', '1 5\n1:Infinity\n', false, 2, /infinite value in '1:Infinity'/],
    ['bad header', '1 5 7 9\n1:1\n', false, 1, /bad header '1 5 7 9': expected 'ROWS COLS'/],
  ];
  for (const [name, body, binary, line, problem] of cases) {
    it(`rejects ${name} naming the file and line ${line}`, async () => {
      const path = file(body);
      await expectDataError(readSparseText(path, { binary }), path, { line }, problem);
    });
  }

  it('rejects a label file whose header is neither format', async () => {
    const path = file('label file\n1 2\n');
    await expectDataError(readLabelMatrix(path), path, { line: 1 }, /expected 'N F L' \(XC text file\) or 'ROWS COLS'/);
  });
});

/** A .npy file with header dict `dict` and `dataBytes` bytes of data (version 1.0). */
function npy(dict: string, data: Uint8Array | number): string {
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const header = Buffer.alloc(total, 0x20);
  header.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  header.writeUInt16LE(total - 10, 8);
  header.write(dict, 10, 'latin1');
  header[total - 1] = 0x0a;
  return file(Buffer.concat([header, typeof data === 'number' ? Buffer.alloc(data) : data]), '.npy');
}
const dict = (descr: string, shape = '(2, 3)', fortran = 'False') => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;

describe('io - npy errors', () => {
  it('rejects bad magic at byte offset 0', async () => {
    const path = file(Buffer.from('PK\x03\x04 not numpy at all'), '.npy');
    await expectDataError(readNpy(path), path, { byteOffset: 0 }, /bad magic/);
  });
  it('rejects an unsupported version', async () => {
    const p = npy(dict('<f4'), 24);
    const b = readFileSync(p);
    b[6] = 4;
    writeFileSync(p, b);
    await expectDataError(readNpy(p), p, { byteOffset: 6 }, /unsupported .npy version 4.0/);
  });
  for (const [descr, problem] of [['<f8', /unsupported dtype '<f8'/], ['<i4', /unsupported dtype '<i4'/], ['>f4', /unsupported byte order '>f4' \(big-endian\)/]] as const) {
    it(`rejects dtype ${descr} at the header's offset`, async () => {
      const path = npy(dict(descr), 48);
      await expectDataError(readNpy(path), path, { byteOffset: 10 }, problem);
    });
  }
  it('rejects fortran_order True', async () => {
    const path = npy(dict('<f4', '(2, 3)', 'True'), 24);
    await expectDataError(readNpy(path), path, { byteOffset: 10 }, /fortran_order True is not supported/);
  });
  it('rejects a shape that is not 2-D', async () => {
    const path = npy(dict('<f4', '(2, 3, 4)'), 96);
    await expectDataError(readNpy(path), path, { byteOffset: 10 }, /expected a 2-D array, the shape is \(2, 3, 4\)/);
  });
  it('rejects a header that is not a dict literal, or lacks keys', async () => {
    const garbage = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3) oops}", 24);
    await expectDataError(readNpy(garbage), garbage, { byteOffset: 10 }, /bad header .*expected ',' or '}'/);
    const missing = npy("{'descr': '<f4', 'shape': (2, 3), }", 24);
    await expectDataError(readNpy(missing), missing, { byteOffset: 10 }, /needs the keys 'descr', 'fortran_order' and 'shape'/);
  });
  it('rejects a truncated header', async () => {
    const path = file(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0x76, 0, 0x7b]), '.npy');
    await expectDataError(readNpy(path), path, { byteOffset: 10 }, /truncated header/);
  });
  it('rejects data shorter than the header says, at the end of the file', async () => {
    const path = npy(dict('<f4'), 20);
    await expectDataError(readNpy(path), path, { byteOffset: 128 + 20 }, /truncated: shape \(2, 3\) of '<f4' needs 24 data bytes from offset 128, the file ends after 20/);
  });
  it('rejects bytes after the data', async () => {
    const path = npy(dict('<f2'), 14);
    await expectDataError(readNpy(path), path, { byteOffset: 128 + 12 }, /2 bytes after the end of the data/);
  });
  it('rejects NaN and Inf values at their byte offset', async () => {
    const f4 = npy(dict('<f4'), new Uint8Array(Float32Array.from([0, 1, 2, 3, NaN, 5]).buffer));
    await expectDataError(readNpy(f4), f4, { byteOffset: 128 + 16 }, /NaN value at row 1, column 1/);
    const f2 = npy(dict('<f2'), new Uint8Array(Uint16Array.from([0, 0x3c00, 0x7c00, 0, 0, 0]).buffer));
    await expectDataError(readNpy(f2), f2, { byteOffset: 128 + 4 }, /infinite value at row 0, column 2/);
  });
});

describe('io - dataset loading errors', () => {
  it('names both files when the row counts disagree', async () => {
    const features = file('3 4\n0:1\n1:1\n2:1\n');
    const labels = file('2 5\n0:1\n1:1\n');
    let message = '';
    try {
      await loadDataset({ features, labels });
    } catch (err) {
      expect(err).toBeInstanceOf(DataFormatError);
      message = (err as Error).message;
    }
    expect(message).toContain(features);
    expect(message).toContain(labels);
    expect(message).toMatch(/2 rows of labels but the features file .* has 3 rows/);
  });
});
