/**
 * Micro-batching of concurrent requests: a worker computes one batch at a
 * time, made of the requests that arrived meanwhile.
 *
 *   idle, a request arrives      a timer of `maxWaitMs` starts; the batch goes
 *                                when it fires, or at once when the queued rows
 *                                reach `maxRows`
 *   maxInFlight batches running  arrivals queue; when one ends the next batch
 *                                goes at once (its requests have waited the
 *                                length of a batch already). With maxInFlight
 *                                1 (the default) a worker computes one batch
 *                                at a time; with 2 it packs and enqueues the
 *                                next batch while the previous one computes
 *
 * A batch holds whole requests, in arrival order, up to `maxRows` rows (a
 * single request of more rows goes alone). The runner answers every request
 * of its batch, in order; a runner that throws fails every request of it.
 */

export interface BatcherOptions {
  /** longest wait for more requests once the first one is there (ms; 0: go on the next tick) */
  maxWaitMs: number;
  /** rows that fill a batch */
  maxRows: number;
  /** batches running at once (default 1) */
  maxInFlight?: number;
}

/** Computes one batch; resolves to one answer per item, in order. */
export type BatchRunner<T, R> = (items: readonly T[], rows: number) => Promise<R[]>;

interface Pending<T, R> {
  item: T;
  rows: number;
  resolve(value: R): void;
  reject(reason: unknown): void;
}

export class MicroBatcher<T, R> {
  private readonly queue: Pending<T, R>[] = [];
  private queuedRows = 0;
  private timer: NodeJS.Timeout | null = null;
  private running = 0;
  private closed = false;

  constructor(private readonly run: BatchRunner<T, R>, readonly options: BatcherOptions, private readonly rowsOf: (item: T) => number) {
    if (!(options.maxWaitMs >= 0) || !Number.isFinite(options.maxWaitMs)) throw new RangeError(`MicroBatcher: maxWaitMs must be a finite number >= 0, got ${options.maxWaitMs}`);
    if (!Number.isInteger(options.maxRows) || options.maxRows < 1) throw new RangeError(`MicroBatcher: maxRows must be a positive integer, got ${options.maxRows}`);
    const inFlight = options.maxInFlight ?? 1;
    if (!Number.isInteger(inFlight) || inFlight < 1) throw new RangeError(`MicroBatcher: maxInFlight must be a positive integer, got ${inFlight}`);
  }

  private get maxInFlight(): number {
    return this.options.maxInFlight ?? 1;
  }

  /** Requests waiting for a batch (not counting the running ones). */
  get waiting(): number {
    return this.queue.length;
  }

  submit(item: T): Promise<R> {
    if (this.closed) return Promise.reject(new Error('the batcher is closed'));
    return new Promise<R>((resolve, reject) => {
      const rows = this.rowsOf(item);
      this.queue.push({ item, rows, resolve, reject });
      this.queuedRows += rows;
      if (this.running >= this.maxInFlight) return;
      if (this.queuedRows >= this.options.maxRows) this.flush();
      else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.options.maxWaitMs);
    });
  }

  /** Fails the queued requests and refuses new ones; a running batch finishes. */
  close(reason = 'the batcher is closed'): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const p of this.queue.splice(0)) p.reject(new Error(reason));
    this.queuedRows = 0;
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.running >= this.maxInFlight || this.queue.length === 0) return;
    let rows = this.queue[0].rows;
    let n = 1;
    while (n < this.queue.length && rows + this.queue[n].rows <= this.options.maxRows) rows += this.queue[n++].rows;
    const batch = this.queue.splice(0, n);
    this.queuedRows -= rows;
    this.running++;
    let answers: Promise<R[]>;
    try {
      answers = this.run(batch.map((p) => p.item), rows);
    } catch (err) {
      answers = Promise.reject(err);
    }
    answers.then(
      (results) => {
        if (results.length !== batch.length) throw new Error(`the batch runner gave ${results.length} answers for ${batch.length} requests`);
        batch.forEach((p, i) => p.resolve(results[i]));
      },
    ).catch((err: unknown) => {
      for (const p of batch) p.reject(err);
    }).finally(() => {
      this.running--;
      if (this.queue.length > 0 && !this.closed) this.flush();
    });
  }
}
