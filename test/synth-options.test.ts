import { afterAll, describe, expect, it, vi } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NativeError, OptionError } from '../src/errors.js';
import { generateSynthetic, SYNTH_FILES, type SynthProgress } from '../src/synth/index.js';
import { main } from '../src/cli/main.js';

const root = mkdtempSync(join(tmpdir(), 'xmc-synth-options-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const freshDir = () => join(root, `run-${counter++}`);

/** Runs the CLI and returns its exit code and what it wrote. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '', stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => { stdout += String(chunk); return true; });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => { stderr += String(chunk); return true; });
  try {
    const code = await main(['synth', ...args]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

async function optionErrorOf(promise: Promise<unknown>): Promise<OptionError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(OptionError);
  return err as OptionError;
}

describe('synth - option validation', () => {
  it('rejects an unknown preset, naming the option and the choices', async () => {
    const err = await optionErrorOf(generateSynthetic({ preset: 'amazon-670k', outDir: freshDir() }));
    expect(err.option).toBe('--preset');
    expect(err.message).toMatch(/--preset.*amazon-670k.*amazon670k/);
  });

  it('rejects scale <= 0, NaN and a scale that leaves no labels', async () => {
    for (const scale of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const err = await optionErrorOf(generateSynthetic({ preset: 'tiny', outDir: freshDir(), scale }));
      expect(err.option).toBe('--scale');
    }
    const err = await optionErrorOf(generateSynthetic({ preset: 'tiny', outDir: freshDir(), scale: 1e-6 }));
    expect(err.message).toMatch(/--scale.*too small/);
  });

  it('rejects a bad dtype, seed, thread count and model override', async () => {
    const dtype = await optionErrorOf(generateSynthetic({ preset: 'tiny', outDir: freshDir(), dtype: 'float64' as never }));
    expect(dtype.option).toBe('--dtype');
    expect(dtype.message).toMatch(/float64.*float16, float32/);
    expect((await optionErrorOf(generateSynthetic({ preset: 'tiny', outDir: freshDir(), seed: 1.5 }))).option).toBe('--seed');
    expect((await optionErrorOf(generateSynthetic({ preset: 'tiny', outDir: freshDir(), seed: -1 }))).option).toBe('--seed');
    expect((await optionErrorOf(generateSynthetic({ preset: 'tiny', outDir: freshDir(), threads: 0 }))).option).toBe('--threads');
    expect((await optionErrorOf(generateSynthetic({ preset: 'tiny', outDir: freshDir(), model: { noSuch: 1 } as never }))).option).toBe('model.noSuch');
    const mix = await optionErrorOf(generateSynthetic({ preset: 'tiny', outDir: freshDir(), model: { topicMix: 2 } }));
    expect(mix.message).toMatch(/topicMix/);
  });

  it('refuses a non-empty output folder unless forced, and never touches other files', async () => {
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep.txt'), 'mine');
    const err = await optionErrorOf(generateSynthetic({ preset: 'tiny', outDir: dir }));
    expect(err.option).toBe('--out');
    expect(err.message).toMatch(/not empty.*--force/);
    expect(readdirSync(dir)).toEqual(['keep.txt']);
    await generateSynthetic({ preset: 'tiny', outDir: dir, force: true, threads: 1 });
    expect(readdirSync(dir).sort()).toEqual([...Object.values(SYNTH_FILES), 'keep.txt'].sort());
  });

  it('refuses an output path that is a file', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, '');
    expect((await optionErrorOf(generateSynthetic({ preset: 'tiny', outDir: file, force: true }))).option).toBe('--out');
  });

  it('a write failure rejects with NativeError naming the file and leaves nothing under a final name', async () => {
    const dir = freshDir();
    mkdirSync(join(dir, `${SYNTH_FILES.testLabels}.partial`), { recursive: true });  // a folder where a file must go
    const err = await generateSynthetic({ preset: 'tiny', outDir: dir, force: true, threads: 2 }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect((err as Error).message).toMatch(/test\.labels\.txt\.partial: cannot open for writing/);
    for (const name of Object.values(SYNTH_FILES)) expect(existsSync(join(dir, name)), name).toBe(false);
    expect(readdirSync(dir)).toEqual([`${SYNTH_FILES.testLabels}.partial`]);  // the train .partial files were removed
  });

  it('reports progress, ending at all points', async () => {
    const seen: SynthProgress[] = [];
    await generateSynthetic({ preset: 'tiny', outDir: freshDir(), threads: 2, onProgress: (p) => seen.push(p) });
    expect(seen.length).toBeGreaterThan(0);
    const last = seen[seen.length - 1];
    expect(last.pointsDone).toBe(last.pointsTotal);
    expect(last.pointsTotal).toBe(2_500);
    expect(last.split).toBe('test');
  });
});

describe('synth - command line', () => {
  it('writes a data set and prints its shape', async () => {
    const dir = freshDir();
    const r = await cli(['--preset', 'tiny', '--out', dir, '--seed', '3', '--threads', '2', '--dtype', 'float32']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/train: 2000 x 768/);
    expect(r.stdout).toMatch(/seed 3, scale 1, float32/);
    for (const name of Object.values(SYNTH_FILES)) expect(existsSync(join(dir, name))).toBe(true);
  });

  it('exits 2 with a message naming the option', async () => {
    const cases: [string[], RegExp][] = [
      [['--preset', 'nope', '--out', freshDir()], /option --preset: unknown preset 'nope'/],
      [['--preset', 'tiny', '--out', freshDir(), '--scale', '0'], /option --scale/],
      [['--preset', 'tiny', '--out', freshDir(), '--scale', 'x'], /option --scale: 'x' is not a number/],
      [['--preset', 'tiny', '--out', freshDir(), '--dtype', 'int8'], /option --dtype: 'int8' is not one of float16, float32/],
      [['--preset', 'tiny', '--out', freshDir(), '--seed', '-2'], /option --seed/],
      [['--out', freshDir()], /option --preset: required/],
      [['--preset', 'tiny'], /option --out: required/],
      [['--preset', 'tiny', '--out', freshDir(), '--bogus'], /option --bogus/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});
