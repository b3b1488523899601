/**
 * Harness of the distributed tests: a real nats-server (startNatsServer),
 * and the run's processes as children of the test (`node bin/xmc.js cluster
 * <role>` from dist/), each supervised: restarted when it dies, as pm2
 * would, until the test stops it. Logs go to <runDir>/logs/<name>.log.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const root = join(import.meta.dirname, '..');
export const haveNats = spawnSync('nats-server', ['--version'], { encoding: 'utf8' }).status === 0;

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestMtime(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

/** Compiles the TypeScript to dist/ when a source is newer than the compiled CLI (the children run dist/). */
export function ensureBuilt(): void {
  const entry = join(root, 'dist', 'workers', 'worker.js');
  const newest = Math.max(...['src', 'coordinator', 'workers'].map((d) => newestMtime(join(root, d))));
  if (existsSync(entry) && statSync(entry).mtimeMs >= newest && statSync(join(root, 'dist', 'src', 'cli', 'main.js')).mtimeMs >= newest) return;
  const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc failed:\n${r.stdout}${r.stderr}`);
}

export interface Supervised {
  name: string;
  /** the current child */
  child: ChildProcess;
  /** exits seen so far (code or signal) */
  exits: string[];
  /** resolves when the process exits 0 (not restarted then) */
  finished: Promise<void>;
  /** stops supervising and kills the child */
  stop(): Promise<void>;
}

/**
 * Runs `xmc cluster <args>` and restarts it (after `restartDelayMs`) whenever
 * it exits other than with code 0. `firstEnv` applies to the first start only
 * (fault injection).
 */
export function supervise(runDir: string, name: string, args: string[], firstEnv: Record<string, string> = {}, restartDelayMs = 200): Supervised {
  mkdirSync(join(runDir, 'logs'), { recursive: true });
  const log = openSync(join(runDir, 'logs', `${name}.log`), 'a');
  let stopped = false;
  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => { resolveFinished = r; });
  const s: Supervised = {
    name, child: null as unknown as ChildProcess, exits: [], finished,
    async stop() {
      stopped = true;
      const c = s.child;
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await gone;
      }
    },
  };
  const start = (env: Record<string, string>) => {
    const child = spawn(process.execPath, [join(root, 'bin', 'xmc.js'), 'cluster', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', log, log] });
    s.child = child;
    child.once('exit', (code, signal) => {
      s.exits.push(signal ?? String(code));
      if (code === 0) { resolveFinished(); return; }
      if (!stopped) setTimeout(() => { if (!stopped) start({}); }, restartDelayMs);
    });
  };
  start(firstEnv);
  return s;
}

export const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 20 ms until it returns true or `ms` passes (then throws naming `what`). */
export async function until(what: string, check: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await wait(20);
  }
}
