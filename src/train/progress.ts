/**
 * What the trainer tells the user while it runs. On a terminal (stderr is a
 * TTY): a progress bar for the current epoch (samples/s, loss, ETA),
 * redrawn at most 10 times a second, and one line per finished epoch.
 * Otherwise (logs, CI): plain lines only, one per epoch and one every 30 s
 * within a long epoch.
 */
import type { Metrics } from './evaluate.js';
import { METRIC_NAMES } from './evaluate.js';

export interface EpochRecord {
  /** 1-based */
  epoch: number;
  /** global step at the end of the epoch */
  step: number;
  /** learning rate used during the epoch */
  lr: number;
  /** mean training loss over the epoch's steps */
  loss: number;
  metrics: Metrics;
  /** wall time of the epoch: training and evaluation (checkpoint writes not included) */
  seconds: number;
  trainSeconds: number;
  evalSeconds: number;
  samplesPerSecond: number;
  /** connections regrown during the epoch */
  rewired: number;
}

export interface StepInfo {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  samples: number;
  elapsedSeconds: number;
  /** mean loss of the steps read back so far this epoch (null before the first read) */
  loss: number | null;
}

export interface TrainReporter {
  message(text: string): void;
  step(info: StepInfo): void;
  epochEnd(record: EpochRecord, epochs: number, notes: string[]): void;
}

export const silentReporter: TrainReporter = { message() {}, step() {}, epochEnd() {} };

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}

export function formatMetrics(m: Metrics): string {
  return METRIC_NAMES.map((name) => `${name} ${(100 * m[name]).toFixed(2)}`).join('  ');
}

export function formatEpoch(r: EpochRecord, epochs: number): string {
  return `epoch ${r.epoch}/${epochs}  loss ${r.loss.toPrecision(5)}  lr ${r.lr.toPrecision(3)}  ${formatMetrics(r.metrics)}`
    + `  (${r.seconds.toFixed(1)} s, ${Math.round(r.samplesPerSecond)} samples/s)`;
}

export class ConsoleReporter implements TrainReporter {
  /** when the bar / log line was last written; 0 at the start of an epoch */
  private lastDraw = 0;
  private epochStarted = 0;
  private barShown = false;
  private readonly tty: boolean;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = Boolean(out.isTTY);
  }

  message(text: string): void {
    this.clearBar();
    this.out.write(text + '\n');
  }

  step(info: StepInfo): void {
    const now = Date.now();
    if (this.lastDraw === 0) this.epochStarted = now;
    if (this.tty) {
      if (now - this.lastDraw < 100 && info.step < info.steps) return;
    } else if (now - Math.max(this.lastDraw, this.epochStarted) < 30_000 || info.step === info.steps) {
      // Logs get a line every 30 s of a long epoch; the epoch's own line follows its end.
      if (this.lastDraw === 0) this.lastDraw = -1;
      return;
    }
    this.lastDraw = now;
    const rate = info.samples / Math.max(info.elapsedSeconds, 1e-9);
    const eta = info.step > 0 ? (info.elapsedSeconds / info.step) * (info.steps - info.step) : NaN;
    const loss = info.loss === null ? '-' : info.loss.toPrecision(4);
    const pct = Math.floor((100 * info.step) / info.steps);
    if (this.tty) {
      const width = 24;
      const filled = Math.round((width * info.step) / info.steps);
      const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
      const line = `epoch ${info.epoch}/${info.epochs} [${bar}] ${pct}% ${info.step}/${info.steps}  ${Math.round(rate)} samples/s  loss ${loss}  ETA ${formatDuration(eta)}`;
      const cols = this.out.columns ?? 120;
      this.out.write('\r' + line.slice(0, cols - 1) + '\x1b[K');
      this.barShown = true;
    } else {
      this.out.write(`epoch ${info.epoch}/${info.epochs}: ${pct}% (${info.step}/${info.steps} steps), ${Math.round(rate)} samples/s, loss ${loss}, ETA ${formatDuration(eta)}\n`);
    }
  }

  epochEnd(record: EpochRecord, epochs: number, notes: string[]): void {
    this.clearBar();
    this.lastDraw = 0;
    this.out.write(formatEpoch(record, epochs) + (notes.length ? `  ${notes.join(', ')}` : '') + '\n');
  }

  private clearBar(): void {
    if (this.barShown) {
      this.out.write('\r\x1b[K');
      this.barShown = false;
    }
  }
}
