import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineSplitter, readLines, scanLines } from '../src/io/lines.js';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'xmc-io-lines-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Seen { text: string; lineNumber: number; byteOffset: number }

/** The lines of `content` by plain string splitting: the reference. */
function referenceLines(content: string): Seen[] {
  const out: Seen[] = [];
  const parts = content.split('\n');
  if (parts[parts.length - 1] === '') parts.pop();
  let offset = 0;
  parts.forEach((p, i) => {
    out.push({ text: p.endsWith('\r') ? p.slice(0, -1) : p, lineNumber: i + 1, byteOffset: offset });
    offset += Buffer.byteLength(p) + 1;
  });
  return out;
}

async function scanned(path: string, chunkSize?: number): Promise<Seen[]> {
  const out: Seen[] = [];
  await scanLines(path, (b, s, e, lineNumber, byteOffset) => {
    out.push({ text: Buffer.from(b.subarray(s, e)).toString('utf8'), lineNumber, byteOffset });
  }, { chunkSize });
  return out;
}

describe('io - line reader', () => {
  it('splits LF and CRLF lines with 1-based numbers and byte offsets', async () => {
    const content = 'first\r\nsecond\n\nfourth é\r\nlast without newline';
    const path = join(dir, 'mixed.txt');
    writeFileSync(path, content);
    expect(await scanned(path)).toEqual(referenceLines(content));
  });

  it('gives no extra line after a final newline, and nothing for an empty file', async () => {
    const path = join(dir, 'final.txt');
    writeFileSync(path, 'a\nb\n');
    expect((await scanned(path)).map((l) => l.text)).toEqual(['a', 'b']);
    writeFileSync(path, '');
    expect(await scanned(path)).toEqual([]);
    writeFileSync(path, '\n\n');
    expect((await scanned(path)).map((l) => l.text)).toEqual(['', '']);
  });

  it('handles lines across chunk boundaries and lines longer than a chunk', async () => {
    let seed = 12345;
    const rand = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32; };
    let content = '';
    for (let i = 0; i < 400; i++) {
      const len = rand() < 0.05 ? Math.floor(rand() * 200) : Math.floor(rand() * 12);
      content += 'x'.repeat(len) + (rand() < 0.3 ? '\r\n' : '\n');
    }
    content += 'tail';
    const path = join(dir, 'chunks.txt');
    writeFileSync(path, content);
    const expected = referenceLines(content);
    for (const chunkSize of [1, 2, 7, 64, 1 << 20]) {
      expect(await scanned(path, chunkSize)).toEqual(expected);
      const viaIterator: Seen[] = [];
      for await (const l of readLines(path, { chunkSize })) {
        viaIterator.push({ text: Buffer.from(l.bytes.subarray(l.start, l.end)).toString('utf8'), lineNumber: l.lineNumber, byteOffset: l.byteOffset });
      }
      expect(viaIterator).toEqual(expected);
    }
  });

  it('keeps a line joined across chunks intact while later lines of the chunk are handed out', async () => {
    // 'aaaa' spans the first two chunks of 3 bytes; the iterator must copy it
    // before the splitter's carry buffer is reused for 'cc...'.
    const path = join(dir, 'carry.txt');
    writeFileSync(path, 'aaaa\nb\ncc');
    const lines = [];
    for await (const l of readLines(path, { chunkSize: 3 })) lines.push(l);
    const first = lines[0];
    expect(Buffer.from(first.bytes.subarray(first.start, first.end)).toString()).toBe('aaaa');
  });

  it('splitter fed by hand reports lines and bytes', () => {
    const s = new LineSplitter();
    const got: string[] = [];
    const emit = (b: Uint8Array, st: number, e: number) => { got.push(Buffer.from(b.subarray(st, e)).toString()); };
    s.push(Buffer.from('ab'), emit);
    s.push(Buffer.from('c\nd'), emit);
    s.end(emit);
    expect(got).toEqual(['abc', 'd']);
    expect(s.lines).toBe(2);
    expect(s.bytes).toBe(5);
  });

  it('streams: a 48 MB file is scanned without memory growing with its size', async () => {
    const path = join(dir, 'big.txt');
    const out = createWriteStream(path);
    const line = '1,2,3 ' + Array.from({ length: 60 }, (_, i) => `${i * 7}:1`).join(' ') + '\n';
    const block = line.repeat(Math.ceil((1 << 20) / line.length));
    for (let i = 0; i < 48; i++) if (!out.write(block)) await new Promise<void>((r) => out.once('drain', () => r()));
    await new Promise<void>((r) => out.end(r));
    const base = process.memoryUsage();
    let peak = 0;
    let lines = 0;
    const { bytes } = await scanLines(path, () => {
      if (++lines % 20000 === 0) {
        const m = process.memoryUsage();
        peak = Math.max(peak, m.heapUsed - base.heapUsed + m.arrayBuffers - base.arrayBuffers);
      }
    });
    expect(bytes).toBeGreaterThan(48 << 20);
    expect(lines).toBeGreaterThan(100000);
    expect(peak).toBeLessThan(16 << 20);
  });
});
