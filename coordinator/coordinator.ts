/**
 * The coordinator of a distributed run: owns the run's configuration, the
 * epoch loop, the learning-rate schedule, early stopping, evaluation,
 * checkpoints of the run state and the metrics log.
 *
 * Per epoch e (from the state file, so a restarted coordinator continues):
 *   1. publish the epoch plan {epoch, lr, firstStep, steps} on xmc.R.control
 *      (unless the stream's last plan is already this one; before it, wait
 *      until every worker answers a status request, i.e. has built its
 *      model: the epoch's training time starts at the plan): the encoder
 *      publishes the epoch's batches with that lr, so every worker applies
 *      the same schedule;
 *   2. ask every worker for the epoch's per-step losses once it has applied
 *      the epoch's last step (it answers 'behind' until then) and compute the
 *      epoch loss in the single-process trainer's summation order;
 *   3. evaluate: for each block of evalBatchSize test rows, every worker's
 *      top-5 of its labels, merged with mergeTopK and streamed into the
 *      single-process evaluator (evaluateTopKBlocks);
 *   4. updateSchedule (reduce on plateau, early stopping), then ask every
 *      worker to commit (checkpoint) its shard at the epoch's end (and as
 *      'best' when the epoch improved), then write the run state
 *      (coordinator.json), metrics.jsonl, and purge the batches every worker
 *      has checkpointed past.
 * No new batch is published between 1 of one epoch and 1 of the next, so
 * workers sit exactly at the epoch's last step while 2-4 run.
 *
 * Files of the run directory: config.json, cluster.json (run id, NATS URL),
 * coordinator.json (state), metrics.jsonl, summary.json, shards/ (workers'
 * checkpoints), nats/ (JetStream store and server log, when started here).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { batchCount } from '../src/data/batches.js';
import { loadDataset } from '../src/data/load.js';
import { writeTextAtomically } from '../src/io/files.js';
import { inversePropensities } from '../src/metrics/propensity.js';
import { describeModel } from '../src/model/config.js';
import { prepareFeatures } from '../src/model/inputs.js';
import { mergeTopK, type TopK } from '../src/topk/topk.js';
import { denseRows } from '../src/encoder/encoder.js';
import type { TrainConfig } from '../src/train/config.js';
import { METRIC_NAMES, SELECTION_METRIC, evaluateTopKBlocks } from '../src/train/evaluate.js';
import type { EpochRecord } from '../src/train/progress.js';
import { initialSchedule, updateSchedule } from '../src/train/schedule.js';
import { RUN_FILES, meanEpochLoss, metricsJsonl, stateFromJson, type DataSpecs, type RunCheckpointMeta, type TrainerState } from '../src/train/trainer.js';
import { scheduleToJson } from '../src/train/schedule.js';
import { faultPoint } from '../src/distributed/fault.js';
import { connectRun, ensureStream, lastMessage, logger, retrying, sleep, type RunConnection } from '../src/distributed/nats.js';
import {
  decodeConfig, decodeControl, decodeWorkerReply, encode, isError, runSubjects,
  type ConfigMessage, type EpochMessage, type FeatureDtype, type RunSubjects, type WorkerReply, type WorkerRequest, type WorkerStatus,
} from '../src/distributed/protocol.js';

/** Files the coordinator adds to a run directory. */
export const CLUSTER_FILES = { state: 'coordinator.json', cluster: 'cluster.json' } as const;

export interface CoordinatorOptions {
  url: string;
  runId: string;
  runDir: string;
  /** a new run: its configuration and data (ignored when the stream already holds the run's configuration) */
  config?: TrainConfig;
  data?: DataSpecs;
  /** default 16 */
  maxAhead?: number;
  /** default float32 (float16 halves the stream but changes the inputs' bits) */
  featureDtype?: FeatureDtype;
  /** seconds a commit or eval request to a worker may take before it is sent again (default 30; a repeated commit joins the one in progress) */
  requestTimeoutSeconds?: number;
  log?: (message: string) => void;
}

/** The state file: the trainer's state plus the run id. */
interface StateFile {
  runId: string;
  state: RunCheckpointMeta['state'];
  savedAt: string;
}

export interface CoordinatorResult {
  history: EpochRecord[];
  best: EpochRecord | null;
  stoppedBy: 'early-stop' | 'epochs';
  workers: number;
}

/** Asks worker `shard` until it answers something other than 'behind' (or a transport error), then returns that. */
async function askWorker(conn: RunConnection, s: RunSubjects, shard: number, req: WorkerRequest, timeoutMs: number, log: (m: string) => void): Promise<Exclude<WorkerReply, { type: 'behind' }>> {
  const data = encode(req);
  // A request lost while nats-server restarts is only noticed at its timeout: status and
  // report answer at once, so they use a short one; commit (a checkpoint write) and eval
  // (a top-k over the shard) may take long, and use the caller's.
  const timeout = req.type === 'report' || req.type === 'status' ? Math.min(timeoutMs, 5000) : timeoutMs;
  let wait = 5;
  let lastNote = 0;
  for (;;) {
    let reply: WorkerReply | { error: string };
    try {
      const m = await conn.nc.request(s.worker(shard), data, { timeout });
      reply = decodeWorkerReply(m.data);
    } catch (err) {
      // No responder (the worker is restarting), a timeout, or the server restarting: ask again.
      if (Date.now() - lastNote > 10_000) { log(`worker ${shard}: ${req.type}: ${(err as Error).message}; asking again`); lastNote = Date.now(); }
      await sleep(200);
      continue;
    }
    if (isError(reply)) throw new Error(`worker ${shard} sent a malformed reply to ${req.type}: ${reply.error}`);
    if (reply.type === 'behind') {
      await sleep(wait);
      // The end of an epoch's training time is when the last worker's report arrives: ask often (a status costs the worker little).
      wait = Math.min(wait * 2, req.type === 'report' ? 20 : 100);
      continue;
    }
    if (reply.type === 'error') throw new Error(`worker ${shard} refused ${req.type}: ${reply.reason}`);
    return reply;
  }
}

/** Runs (or continues) the run until its last epoch or early stop. */
export async function runCoordinator(options: CoordinatorOptions): Promise<CoordinatorResult> {
  const { runId } = options;
  const log = options.log ?? logger('coordinator');
  const runDir = resolve(options.runDir);
  const s = runSubjects(runId);
  const timeoutMs = 1000 * (options.requestTimeoutSeconds ?? 30);
  await mkdir(runDir, { recursive: true });
  const conn = await connectRun(options.url, `xmc-coordinator-${runId}`);
  try {
    await retrying('creating the stream', () => ensureStream(conn.jsm, s), 600_000, log);
    await writeTextAtomically(join(runDir, CLUSTER_FILES.cluster), JSON.stringify({ runId, nats: options.url, stream: s.stream, updatedAt: new Date().toISOString() }, null, 2) + '\n');

    // The run's configuration: the stream's, or a new one published now.
    let run: ConfigMessage;
    const existing = await retrying('reading the configuration', () => lastMessage(conn.jsm, s.stream, s.config), 600_000, log);
    if (existing) {
      const c = decodeConfig(existing.data, runId);
      if (isError(c)) throw new Error(`the stream's configuration message is malformed: ${c.error}`);
      run = c;
      if (options.config && options.config.epochs !== run.config.epochs) {
        log(`the run's configuration comes from the stream; --epochs ${options.config.epochs} replaces ${run.config.epochs}`);
        run = { ...run, config: { ...run.config, epochs: options.config.epochs } };
      }
    } else {
      if (!options.config || !options.data) throw new Error(`run ${runId} has no configuration in the stream yet: give the training options and data`);
      run = {
        type: 'config', runId, config: options.config, data: options.data, workers: options.config.model.shards,
        maxAhead: options.maxAhead ?? 16, featureDtype: options.featureDtype ?? 'float32', createdAt: new Date().toISOString(),
      };
      await retrying('publishing the configuration', () => conn.js.publish(s.config, encode(run)), 600_000, log);
      await writeTextAtomically(join(runDir, RUN_FILES.config), JSON.stringify({
        description: describeModel(run.config.model), config: run.config, data: run.data, distributed: { runId, workers: run.workers, maxAhead: run.maxAhead, featureDtype: run.featureDtype },
        createdAt: run.createdAt,
      }, null, 2) + '\n');
    }
    const { config } = run;
    const mc = config.model;

    // Data the coordinator needs: the test set, the training labels (propensities) and the training row count.
    const [trainSet, testSet] = [await loadDataset(run.data.train), await loadDataset(run.data.test)];
    const testFeatures = prepareFeatures(testSet.features, mc.inputDim, testSet.source);
    const invProp = inversePropensities(trainSet.labels, config.propensity, trainSet.labels.rows);
    const padded = new Float64Array(mc.numLabels).fill(1);
    padded.set(invProp);
    const steps = batchCount(trainSet.features.rows, config.batchSize);
    const maxPayload = conn.nc.info?.max_payload ?? Infinity;
    const evalBytes = 4 * Math.min(config.evalBatchSize, testFeatures.rows) * mc.inputDim + 1024;
    if (evalBytes > maxPayload) {
      throw new Error(`an evaluation block of ${config.evalBatchSize} rows x ${mc.inputDim} features is ${evalBytes} bytes, above the server's max_payload ${maxPayload}: lower --eval-batch-size`);
    }

    // The run state.
    const statePath = join(runDir, CLUSTER_FILES.state);
    let state: TrainerState;
    if (existsSync(statePath)) {
      const file = JSON.parse(readFileSync(statePath, 'utf8')) as StateFile;
      if (file.runId !== runId) throw new Error(`${statePath} belongs to run ${file.runId}, not ${runId}`);
      state = stateFromJson(file.state);
      log(`continuing after epoch ${state.epochsDone} (step ${state.step})`);
      if (state.finished === 'epochs' && state.epochsDone < config.epochs) state.finished = null;
    } else {
      state = { epochsDone: 0, step: 0, schedule: initialSchedule(config.lr), history: [], finished: null };
    }
    log(`run ${runId}: ${describeModel(mc)}; ${run.workers} workers; ${steps} steps per epoch`);

    while (state.finished === null && state.epochsDone < config.epochs) {
      const epoch = state.epochsDone + 1;
      const lr = state.schedule.lr;
      const plan: EpochMessage = { type: 'epoch', runId, epoch, lr, firstStep: state.step + 1, steps };
      const last = await retrying('reading the last plan', () => lastMessage(conn.jsm, s.stream, s.control), 600_000, log);
      const lastPlan = last ? decodeControl(last.data, runId) : null;
      const publishedPlan = lastPlan && !isError(lastPlan) && lastPlan.type === 'epoch' && lastPlan.epoch === epoch ? lastPlan : null;
      if (!publishedPlan) {
        // Every worker answers once its model is built: the epoch's training time starts after that, as the
        // single-process trainer's does (it excludes building the model), not during the workers' start-up.
        await Promise.all(Array.from({ length: run.workers }, (_, w) => askWorker(conn, s, w, { type: 'status', runId }, timeoutMs, log)));
      }
      const epochStart = performance.now();
      if (publishedPlan) {
        if (publishedPlan.firstStep !== plan.firstStep || publishedPlan.lr !== plan.lr || publishedPlan.steps !== plan.steps) {
          throw new Error(`the stream's plan for epoch ${epoch} (${JSON.stringify(publishedPlan)}) differs from the state's (${JSON.stringify(plan)})`);
        }
        log(`epoch ${epoch}: plan already published; waiting for the workers`);
      } else {
        await retrying('publishing the epoch plan', () => conn.js.publish(s.control, encode(plan), { msgID: `${runId}:plan:${epoch}` }), 600_000, log);
        log(`epoch ${epoch}: lr ${lr}, steps ${plan.firstStep}..${plan.firstStep + steps - 1}`);
      }
      const lastStep = state.step + steps;
      faultPoint('COORDINATOR_EPOCH', epoch);

      // 2. losses, once every worker has applied the epoch.
      const reports = await Promise.all(Array.from({ length: run.workers }, (_, w) =>
        askWorker(conn, s, w, { type: 'report', runId, epoch, step: lastStep }, timeoutMs, log)));
      const perShard: Float32Array[] = [];
      let rewired = 0;
      for (const r of reports) {
        if (r.type !== 'report' || r.losses.length !== steps) throw new Error(`worker ${r.shard} reported ${r.type === 'report' ? r.losses.length : 'no'} losses for the ${steps} steps of epoch ${epoch}`);
        perShard[r.shard] = r.losses;
        rewired += r.rewired;
      }
      const loss = meanEpochLoss(perShard, steps);
      if (!Number.isFinite(loss)) throw new Error(`training diverged: the mean loss of epoch ${epoch} is ${loss}; try a lower --lr`);
      const trainSeconds = (performance.now() - epochStart) / 1000;

      // 3. evaluation: each block's per-shard top-5, merged.
      const evalStart = performance.now();
      const blocks = async function* (): AsyncGenerator<TopK> {
        for (let start = 0; start < testFeatures.rows; start += config.evalBatchSize) {
          const rows = new Uint32Array(Math.min(testFeatures.rows, start + config.evalBatchSize) - start).map((_, i) => start + i);
          const features = denseRows(testFeatures, rows, mc.inputDim);
          const req: WorkerRequest = { type: 'eval', runId, step: lastStep, k: 5, rows: rows.length, cols: mc.inputDim, features };
          const parts = await Promise.all(Array.from({ length: run.workers }, (_, w) => askWorker(conn, s, w, req, timeoutMs, log)));
          const tops: TopK[] = parts.map((p) => {
            if (p.type !== 'topk' || p.rows !== rows.length || p.k !== 5) throw new Error(`worker ${p.shard} answered an eval request with ${p.type}`);
            return { rows: p.rows, k: p.k, labels: p.labels, scores: p.scores };
          });
          yield tops.length === 1 ? tops[0] : mergeTopK(tops, 5);
        }
      };
      const metrics = await evaluateTopKBlocks(blocks(), testSet.labels, mc.numLabels, padded);
      const evalSeconds = (performance.now() - evalStart) / 1000;

      // 4. schedule, commits, state.
      const update = updateSchedule(state.schedule, config, epoch, metrics[SELECTION_METRIC]);
      const committed = await Promise.all(Array.from({ length: run.workers }, (_, w) =>
        askWorker(conn, s, w, { type: 'commit', runId, epoch, step: lastStep, best: update.improved }, timeoutMs, log)));
      state.step = lastStep;
      state.epochsDone = epoch;
      if (update.stop) state.finished = 'early-stop';
      else if (epoch >= config.epochs) state.finished = 'epochs';
      const record: EpochRecord = {
        epoch, step: state.step, lr, loss, metrics, seconds: trainSeconds + evalSeconds, trainSeconds, evalSeconds,
        samplesPerSecond: trainSet.features.rows / Math.max(trainSeconds, 1e-9), rewired,
      };
      state.history.push(record);
      const file: StateFile = { runId, state: { ...state, schedule: scheduleToJson(state.schedule) }, savedAt: new Date().toISOString() };
      await writeTextAtomically(statePath, JSON.stringify(file, null, 2) + '\n');
      await writeTextAtomically(join(runDir, RUN_FILES.metrics), metricsJsonl(state.history));
      const notes: string[] = [];
      if (update.improved) notes.push('best');
      if (update.reduced) notes.push(`lr -> ${state.schedule.lr.toPrecision(3)}`);
      if (update.stop) notes.push('early stop');
      log(`epoch ${epoch}: loss ${loss.toFixed(5)}  ${METRIC_NAMES.map((m) => `${m} ${(100 * metrics[m]).toFixed(2)}`).join('  ')}  `
        + `${record.samplesPerSecond.toFixed(0)} samples/s${notes.length ? `  (${notes.join(', ')})` : ''}`);

      // Batches every worker has checkpointed past are no longer needed.
      const floor = Math.min(...committed.map((c) => (c.type === 'committed' ? c.checkpointSeq : 0)));
      if (floor > 0) await conn.jsm.streams.purge(s.stream, { filter: s.batch, seq: floor + 1 }).catch((e: Error) => log(`purge: ${e.message}`));
    }

    const stoppedBy = state.finished ?? 'epochs';
    await retrying('publishing the end of the run', () => conn.js.publish(s.control, encode({ type: 'finished', runId, reason: stoppedBy }), { msgID: `${runId}:finished:${state.epochsDone}` }), 600_000, log);
    const best = state.history.find((r) => r.epoch === state.schedule.bestEpoch) ?? null;
    await writeTextAtomically(join(runDir, RUN_FILES.summary), JSON.stringify({
      description: describeModel(mc), distributed: { runId, workers: run.workers }, stoppedBy, epochs: state.epochsDone, steps: state.step,
      bestEpoch: best?.epoch ?? null, best: best ? { ...best.metrics, loss: best.loss, lr: best.lr } : null,
    }, null, 2) + '\n');
    if (best) log(`best epoch ${best.epoch}: ${METRIC_NAMES.map((m) => `${m} ${(100 * best.metrics[m]).toFixed(2)}`).join('  ')}`);
    return { history: state.history, best, stoppedBy, workers: run.workers };
  } finally {
    await conn.nc.close().catch(() => undefined);
  }
}

/** Asks every worker to exit (best effort: a worker that is down is skipped). */
export async function shutdownWorkers(url: string, runId: string, workers: number): Promise<void> {
  const conn = await connectRun(url, `xmc-shutdown-${runId}`);
  const s = runSubjects(runId);
  try {
    await Promise.all(Array.from({ length: workers }, (_, w) =>
      conn.nc.request(s.worker(w), encode({ type: 'shutdown', runId }), { timeout: 2000 }).catch(() => undefined)));
  } finally {
    await conn.nc.close();
  }
}

/** What `xmc status` shows: the files of the run directory, and the live workers when the NATS server answers. */
export interface ClusterStatus {
  runId: string | null;
  nats: string | null;
  epochsDone: number;
  step: number;
  lr: number | null;
  bestEpoch: number;
  finished: string | null;
  history: EpochRecord[];
  workers: (WorkerStatus | { shard: number; down: string })[];
}

export async function readClusterStatus(runDir: string, options: { live?: boolean; timeoutMs?: number } = {}): Promise<ClusterStatus> {
  const dir = resolve(runDir);
  const read = <T>(name: string): T | null => (existsSync(join(dir, name)) ? JSON.parse(readFileSync(join(dir, name), 'utf8')) as T : null);
  const cluster = read<{ runId: string; nats: string }>(CLUSTER_FILES.cluster);
  const file = read<StateFile>(CLUSTER_FILES.state);
  const cfg = read<{ config: TrainConfig }>(RUN_FILES.config);
  const state = file ? stateFromJson(file.state) : null;
  const status: ClusterStatus = {
    runId: cluster?.runId ?? null, nats: cluster?.nats ?? null,
    epochsDone: state?.epochsDone ?? 0, step: state?.step ?? 0, lr: state?.schedule.lr ?? cfg?.config.lr ?? null,
    bestEpoch: state?.schedule.bestEpoch ?? 0, finished: state?.finished ?? null, history: state?.history ?? [], workers: [],
  };
  const workers = cfg?.config.model.shards ?? 0;
  if (options.live !== false && cluster && workers > 0) {
    const { connect } = await import('@nats-io/transport-node');
    let nc;
    try {
      nc = await connect({ servers: cluster.nats, reconnect: false, timeout: options.timeoutMs ?? 1000 });
    } catch (err) {
      for (let w = 0; w < workers; w++) status.workers.push({ shard: w, down: `NATS ${cluster.nats} unreachable: ${(err as Error).message}` });
      return status;
    }
    const s = runSubjects(cluster.runId);
    for (let w = 0; w < workers; w++) {
      try {
        const m = await nc.request(s.worker(w), encode({ type: 'status', runId: cluster.runId }), { timeout: options.timeoutMs ?? 1000 });
        const r = decodeWorkerReply(m.data);
        if (isError(r) || r.type !== 'status') status.workers.push({ shard: w, down: 'unexpected reply' });
        else { const { type: _t, ...rest } = r; status.workers.push(rest); }
      } catch (err) {
        status.workers.push({ shard: w, down: (err as Error).message });
      }
    }
    await nc.close();
  }
  return status;
}
