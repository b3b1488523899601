/**
 * Per-epoch stage timings of the distributed processes (where an epoch's
 * wall time goes: waiting for batches, decoding, enqueueing, waiting for the
 * device, checkpoints, pacing, publishing). Each process appends one JSON
 * line per epoch to <run>/stats/<role>.jsonl; bench/cluster.mjs prints them
 * next to the samples/s (`--stages`). Timings only: nothing here changes
 * what is trained.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** The stats file of `role` ('encoder', 'worker-0', ...) in a run directory. */
export const statsPath = (runDir: string, role: string): string => join(resolve(runDir), 'stats', `${role}.jsonl`);

/** Seconds spent per named stage, plus counters, since the last reset. */
export class StageTimes {
  private seconds = new Map<string, number>();
  private counts = new Map<string, number>();

  /** Adds the time since `startMs` (a performance.now() value) to `stage`; returns now. */
  add(stage: string, startMs: number): number {
    const now = performance.now();
    this.seconds.set(stage, (this.seconds.get(stage) ?? 0) + (now - startMs) / 1000);
    return now;
  }

  addSeconds(stage: string, seconds: number): void {
    this.seconds.set(stage, (this.seconds.get(stage) ?? 0) + seconds);
  }

  count(name: string, n = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + n);
  }

  /** `{ stage: seconds (rounded to µs), ..., counter: n }` and a reset. */
  take(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of this.seconds) out[`${k}Seconds`] = Math.round(v * 1e6) / 1e6;
    for (const [k, v] of this.counts) out[k] = v;
    this.seconds.clear();
    this.counts.clear();
    return out;
  }
}

/** Appends one JSON line to `path` (best effort: a stats file that cannot be written is reported once, never fatal). */
export function statsWriter(path: string | undefined, log: (m: string) => void): (record: object) => void {
  let failed = false;
  return (record) => {
    if (!path || failed) return;
    try {
      mkdirSync(dirname(path), { recursive: true });
      appendFileSync(path, JSON.stringify({ ...record, at: new Date().toISOString() }) + '\n');
    } catch (err) {
      failed = true;
      log(`stats file ${path}: ${(err as Error).message} (no more stage timings are written)`);
    }
  };
}
