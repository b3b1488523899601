/**
 * The encoder process of a distributed run: reads the training set named in
 * the run's configuration, L2-normalises its rows (prepareFeatures, as the
 * single-process trainer does), and for every epoch plan the coordinator
 * publishes (xmc.R.control) publishes that epoch's batches on xmc.R.batch:
 * the order is batchIndices(n, {batchSize, seed, epoch - 1}), exactly the
 * single-process trainer's, and each batch carries its global step and lr.
 *
 * Stateless: where to continue is read from the stream (the last batch
 * published and the last plan), so a restarted encoder picks up after the
 * last batch the stream holds; each publish carries a message id
 * (R:epoch:index) so a batch republished within the duplicate window is
 * dropped by JetStream.
 *
 * Pacing: a batch goes out only while the stream holds fewer than
 * `maxAhead` batches past the step the slowest worker has applied (workers'
 * status replies, asked once per maxAhead batches while they keep up), so
 * memory and stream size stay bounded whatever the workers' speed.
 */
import { loadDataset } from '../data/load.js';
import { batchIndices } from '../data/batches.js';
import type { CsrMatrix, FeatureMatrix } from '../data/types.js';
import { float32ToFloat16Array } from '../io/float16.js';
import { prepareFeatures } from '../model/inputs.js';
import { connectRun, ensureStream, lastMessage, logger, retrying, sleep, type RunConnection } from '../distributed/nats.js';
import {
  decodeBatch, decodeConfig, decodeControl, decodeWorkerReply, encode, isError, runSubjects,
  type BatchMessage, type ConfigMessage, type ControlMessage, type RunSubjects,
} from '../distributed/protocol.js';
import { StageTimes, statsWriter } from '../distributed/timing.js';

export interface EncoderOptions {
  url: string;
  runId: string;
  /** appends one line of stage timings per epoch here (src/distributed/timing.ts) */
  statsFile?: string;
  log?: (message: string) => void;
}

/** Waits for the run's configuration message (the coordinator publishes it first). */
export async function waitForConfig(conn: RunConnection, s: RunSubjects, runId: string, log: (m: string) => void): Promise<ConfigMessage> {
  let said = false;
  for (;;) {
    const m = await retrying('reading the run configuration', () => lastMessage(conn.jsm, s.stream, s.config), 600_000, log);
    if (m) {
      const c = decodeConfig(m.data, runId);
      if (!isError(c)) return c;
      log(`ignoring a malformed configuration message (seq ${m.seq}): ${c.error}`);
    } else if (!said) {
      log('waiting for the coordinator to publish the run configuration');
      said = true;
    }
    await sleep(200);
  }
}

/** The rows of a batch as a dense row-major [rows, F] Float32Array (zeros where a CSR row has no entry). */
export function denseRows(features: FeatureMatrix, rows: Uint32Array, F: number): Float32Array {
  const out = new Float32Array(rows.length * F);
  if (features.kind === 'dense') {
    for (let i = 0; i < rows.length; i++) out.set(features.data.subarray(rows[i] * F, (rows[i] + 1) * F), i * F);
  } else {
    const { indptr, indices, values } = features;
    for (let i = 0; i < rows.length; i++) {
      for (let e = indptr[rows[i]]; e < indptr[rows[i] + 1]; e++) out[i * F + indices[e]] = values ? values[e] : 1;
    }
  }
  return out;
}

/** The batch CSR of label rows `rows` (global ids). */
export function labelRows(labels: CsrMatrix, rows: Uint32Array): { ptr: Uint32Array; ids: Uint32Array } {
  const ptr = new Uint32Array(rows.length + 1);
  for (let i = 0; i < rows.length; i++) ptr[i + 1] = ptr[i] + labels.indptr[rows[i] + 1] - labels.indptr[rows[i]];
  const ids = new Uint32Array(ptr[rows.length]);
  for (let i = 0; i < rows.length; i++) ids.set(labels.indices.subarray(labels.indptr[rows[i]], labels.indptr[rows[i] + 1]), ptr[i]);
  return { ptr, ids };
}

/**
 * The lowest step every worker has applied, asked over NATS (status
 * requests); -1 while a worker does not answer (starting, restarting). The
 * workers' own positions are used rather than their consumers' ack floors:
 * acknowledgements in flight when nats-server dies are lost, and the ack
 * floor would then stay behind for good.
 */
async function slowestStep(conn: RunConnection, s: RunSubjects, runId: string, workers: number): Promise<number> {
  const ask = encode({ type: 'status', runId });
  const steps = await Promise.all(Array.from({ length: workers }, async (_, w) => {
    try {
      const r = decodeWorkerReply((await conn.nc.request(s.worker(w), ask, { timeout: 2000 })).data);
      return !isError(r) && r.type === 'status' ? r.step : -1;
    } catch {
      return -1;
    }
  }));
  return Math.min(...steps);
}

/** Runs until the coordinator publishes 'finished'; resolves then. */
export async function runEncoder(options: EncoderOptions): Promise<void> {
  const log = options.log ?? logger('encoder');
  const { runId } = options;
  const s = runSubjects(runId);
  const conn = await connectRun(options.url, `xmc-encoder-${runId}`);
  try {
    await retrying('creating the stream', () => ensureStream(conn.jsm, s), 600_000, log);
    const run = await waitForConfig(conn, s, runId, log);
    const { config } = run;
    const mc = config.model;
    const train = await loadDataset(run.data.train);
    const features = prepareFeatures(train.features, mc.inputDim, train.source);
    const n = features.rows;
    log(`loaded ${train.source}: ${n} rows, ${mc.inputDim} features; ${run.workers} workers, at most ${run.maxAhead} batches ahead`);

    const writeStats = statsWriter(options.statsFile, log);
    const times = new StageTimes();
    let lastPlanSeq = -1;
    let budget = 0;
    /** step of the last batch in the stream */
    let publishedStep = 0;
    /** since when publishing has failed without a batch getting through (null: it works) */
    let failingSince: number | null = null;
    // A new plan wakes the encoder at once (a core subscription sees the stream's
    // messages too); the poll below is the fallback (a reconnect may miss one).
    let wake: () => void = () => undefined;
    let woken = false;
    const planSub = conn.nc.subscribe(s.control, { callback: () => { woken = true; wake(); } });
    for (;;) {
      const planMsg = await retrying('reading the epoch plan', () => lastMessage(conn.jsm, s.stream, s.control), 600_000, log);
      if (!planMsg || planMsg.seq === lastPlanSeq) {
        if (woken) {
          // Woken by a control message the stream query did not return yet: ask again shortly.
          woken = false;
          await sleep(5);
        } else {
          await new Promise<void>((r) => { const timer = setTimeout(r, 100); wake = () => { clearTimeout(timer); r(); }; });
          wake = () => undefined;
        }
        continue;
      }
      const plan: ControlMessage | { error: string } = decodeControl(planMsg.data, runId);
      if (isError(plan)) {
        log(`ignoring a malformed control message (seq ${planMsg.seq}): ${plan.error}`);
        lastPlanSeq = planMsg.seq;
        continue;
      }
      if (plan.type === 'finished') {
        log(`run finished (${plan.reason})`);
        planSub.unsubscribe();
        return;
      }
      // Where this epoch stands in the stream.
      const lastBatch = await retrying('reading the last batch', () => lastMessage(conn.jsm, s.stream, s.batch), 600_000, log);
      let start = 0;
      if (lastBatch) {
        const b = decodeBatch(lastBatch.data, runId, mc.inputDim, mc.numLabels);
        if (isError(b)) throw new Error(`the last batch in the stream (seq ${lastBatch.seq}) is malformed: ${b.error}`);
        publishedStep = b.step;
        if (b.epoch === plan.epoch) start = b.index + 1;
        else if (b.epoch > plan.epoch) throw new Error(`the stream holds batches of epoch ${b.epoch}, past the plan's epoch ${plan.epoch}`);
      }
      if (start > 0 && start < plan.steps) log(`epoch ${plan.epoch}: continuing after batch ${start} of ${plan.steps} already in the stream`);
      let index = 0;
      times.take();
      const windowStart = performance.now();
      // Publishes awaiting their acknowledgement, in order (PUBLISHES_IN_FLIGHT, below,
      // says how a gap is prevented). After a failure the epoch continues from the
      // stream's last batch (the same path as a restarted encoder; message ids drop repeats).
      const acks: Promise<unknown>[] = [];
      const batchId = (i: number): string => `${runId}:${plan.epoch}:${i}`;
      // The first publish of this pass goes alone and without an expectation (the server's
      // last message id may be unknown after its restart); each later one expects its
      // predecessor to be the stream's last message.
      let chained = false;
      const failure: { error: Error | null } = { error: null };
      const settleAcks = async (keep: number): Promise<void> => {
        while (acks.length > keep) {
          try { await acks.shift(); failingSince = null; } catch (err) { failure.error ??= err as Error; }
        }
      };
      for (const rows of batchIndices(n, { batchSize: config.batchSize, seed: mc.seed, epoch: plan.epoch - 1 })) {
        if (index >= start) {
          if (index >= plan.steps) throw new Error(`epoch ${plan.epoch} has more batches than the plan's ${plan.steps}`);
          let t = performance.now();
          const x = denseRows(features, rows, mc.inputDim);
          const { ptr, ids } = labelRows(train.labels, rows);
          const message: BatchMessage = {
            type: 'batch', runId, epoch: plan.epoch, index, steps: plan.steps, step: plan.firstStep + index, lr: plan.lr,
            rows: rows.length, cols: mc.inputDim, dtype: run.featureDtype,
            features: run.featureDtype === 'float16' ? float32ToFloat16Array(x) : x,
            labelPtr: ptr, labelIds: ids,
          };
          t = times.add('read', t);
          const data = encode(message);
          t = times.add('encode', t);
          // `budget`: batches that may still go out before the consumers must be asked again.
          for (let waited = 0; budget <= 0; waited++) {
            const slowest = await slowestStep(conn, s, runId, run.workers);
            times.count('statusRequests');
            budget = slowest < 0 ? 0 : run.maxAhead - (publishedStep - slowest);
            if (budget <= 0) await sleep(Math.min(2 + waited, 50));
          }
          budget--;
          t = times.add('pace', t);
          const ack = conn.js.publish(s.batch, data, { msgID: batchId(index), ...(chained ? { expect: { lastMsgID: batchId(index - 1) } } : {}) });
          ack.catch(() => undefined); // settled in order by settleAcks
          acks.push(ack);
          await settleAcks(chained ? PUBLISHES_IN_FLIGHT - 1 : 0);
          chained = failure.error === null;
          times.add('publish', t);
          times.count('batches');
          times.count('bytes', data.length);
          publishedStep = message.step;
          if (failure.error) break;
        }
        index++;
      }
      const t = performance.now();
      await settleAcks(0);
      times.add('publish', t);
      const failed = failure.error;
      if (failed) {
        // Continue from what the stream holds (this plan is read again: lastPlanSeq is unchanged).
        failingSince ??= Date.now();
        if (Date.now() - failingSince > 600_000) throw new Error(`publishing batches: ${failed.message}`, { cause: failed });
        log(`publishing a batch: ${failed.message}; continuing after the stream's last batch`);
        budget = 0;
        await sleep(200);
        continue;
      }
      if (start < plan.steps) writeStats({ role: 'encoder', epoch: plan.epoch, windowSeconds: Math.round(performance.now() - windowStart) / 1000, ...times.take() });
      if (start < plan.steps) log(`epoch ${plan.epoch}: published batches ${start + 1}..${plan.steps} (steps ${plan.firstStep + start}..${plan.firstStep + plan.steps - 1}, lr ${plan.lr})`);
      lastPlanSeq = planMsg.seq;
    }
  } finally {
    await conn.nc.close().catch(() => undefined);
  }
}

/**
 * Batches published before the encoder waits for the oldest one's
 * acknowledgement. With several in flight, a nats-server killed in between
 * can lose the ones already written to its socket while the client sends the
 * ones it still buffered after reconnecting (seen in the nats-server restart
 * test: steps 14-15 lost, 16-17 stored, a gap). So every publish but the
 * first of a pass carries the expectation that its predecessor's message id
 * is the stream's last (Nats-Expected-Last-Msg-Id): the server refuses 16
 * when 15 is missing, and the refusal takes the failure path (continue after
 * the stream's last batch). Only the encoder writes to the stream while an
 * epoch's batches go out (the plan comes before them, 'finished' after).
 * One round trip per batch was ~2.6 ms of every 4.4 ms step of 2 workers on
 * an H200 host (docs/PERFORMANCE.md, Scaling over GPUs).
 */
const PUBLISHES_IN_FLIGHT = 4;
