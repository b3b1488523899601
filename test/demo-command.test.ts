import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { command } from '../src/cli/commands/demo.js';

const dir = mkdtempSync(join(tmpdir(), 'xmc-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('demo - quick start command', () => {
  it('generates synthetic data, trains, predicts and evaluates', async () => {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await command.run(['--synthetic', '--epochs', '1', '--out', dir, '--device', 'cpu'])).toBe(0);
    } finally {
      spy.mockRestore();
      err.mockRestore();
    }
    const predictions = readFileSync(join(dir, 'predictions.txt'), 'utf8').trimEnd().split('\n');
    const testLabels = readFileSync(join(dir, 'data', 'test.labels.txt'), 'utf8').split('\n');
    expect(predictions.length).toBe(Number(testLabels[0].split(' ')[0]));
    expect(predictions[0]).toMatch(/^(\d+:\S+ ){4}\d+:\S+$/);
    const table = out.join('');
    const p1 = Number(/^P\s+([\d.]+)/m.exec(table)?.[1]);
    // One epoch on the 'small' preset: far above chance (about 0.1%), far below 100%.
    expect(p1).toBeGreaterThan(5);
    expect(p1).toBeLessThan(95);
  }, 300_000);
});
