/**
 * A label-shard worker of a distributed run: owns ShardModel `shard` (its
 * label range, its own intermediate and output layers, Adam moments), trains
 * it on every batch of xmc.R.batch in stream order, and answers the
 * coordinator's requests on xmc.R.worker.<shard> (status, the epoch's
 * losses, checkpoint commits, evaluation top-k).
 *
 * A step is exactly the single-process Model.trainStep restricted to this
 * shard: input dropout with the (seed, step) mask, then the shard's forward,
 * loss (normalised by the total label count), backward and Adam at the
 * batch's lr; rewiring at the same steps with the same (seed, shard, step)
 * seeds. With the same backend and thread count the shard's weights are
 * bit-identical to those of shard `shard` in `xmc train --shards S`.
 *
 * Position and recovery: the shard's checkpoint (<run>/shards/shard-I.ckpt)
 * records the stream sequence and step of the last batch applied. On start
 * the worker loads it and (re)creates its durable consumer to deliver from
 * the next sequence, so after a crash no batch is skipped or applied twice;
 * a batch whose step it has already applied (a redelivery) is acknowledged
 * and dropped. Checkpoints are written in the background (the state is
 * captured at the step, the file written while training goes on) every
 * `checkpointEvery` steps or `checkpointSeconds` seconds, and at
 * each end-of-epoch commit.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { Msg } from '@nats-io/transport-node';
import { float16ToFloat32Array } from '../src/io/float16.js';
import { readCheckpoint, snapshotSections, writeCheckpoint } from '../src/model/checkpoint.js';
import { STREAM_DROPOUT, opSeed } from '../src/model/init.js';
import { ShardModel } from '../src/model/shard.js';
import type { Backend, FloatTensor } from '../src/native/backend.js';
import { createDeviceBackend, type Device, type GpuOptions } from '../src/train/run.js';
import { waitForConfig } from '../src/encoder/encoder.js';
import { faultArmed, faultPoint } from '../src/distributed/fault.js';
import { shardCheckpointPath } from '../src/distributed/paths.js';
import { connectRun, ensureStream, logger, retrying } from '../src/distributed/nats.js';
import { StageTimes, statsWriter } from '../src/distributed/timing.js';
import {
  decodeBatch, decodeWorkerRequest, encode, isError, runSubjects,
  type BatchMessage, type WorkerReply, type WorkerRequest, type WorkerStatus,
} from '../src/distributed/protocol.js';

export interface WorkerOptions {
  url: string;
  runId: string;
  /** the run directory (shard checkpoints go to <runDir>/shards) */
  runDir: string;
  shard: number;
  device?: Device;
  threads?: number;
  /** CUDA backend options (--tf32, --bf16-gathers) */
  gpu?: GpuOptions;
  /**
   * Steps between two checkpoints within an epoch; 0 (default): every
   * `checkpointSeconds` instead. The epoch's end is always checkpointed (the
   * coordinator's commit); these only bound the replay after a crash.
   */
  checkpointEvery?: number;
  /** with checkpointEvery 0: seconds between two checkpoints within an epoch (default 600) */
  checkpointSeconds?: number;
  /** training steps queued on the backend at most (default 2) */
  maxInFlight?: number;
  /** appends one line of stage timings per epoch here (src/distributed/timing.ts) */
  statsFile?: string;
  log?: (message: string) => void;
}

/** The `meta` of a worker's checkpoint. */
export interface WorkerCheckpointMeta {
  kind: 'worker';
  runId: string;
  shard: number;
  /** epoch of the last applied batch (0 before the first) */
  epoch: number;
  step: number;
  seq: number;
  /** this epoch's per-step losses so far, and connections rewired */
  losses: number[];
  rewired: number;
  savedAt: string;
}

export { shardCheckpointPath };

/** Runs the worker until the coordinator says shutdown; resolves then. */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const { runId, shard } = options;
  const log = options.log ?? logger(`worker ${shard}`);
  const s = runSubjects(runId);
  const checkpointEvery = options.checkpointEvery ?? 0;
  const conn = await connectRun(options.url, `xmc-worker-${runId}-${shard}`);
  await retrying('creating the stream', () => ensureStream(conn.jsm, s), 600_000, log);
  const run = await waitForConfig(conn, s, runId, log);
  const { config } = run;
  const mc = config.model;
  if (shard < 0 || shard >= mc.shards) throw new Error(`shard ${shard} is out of range: the run has ${mc.shards} shards`);
  const backend: Backend = createDeviceBackend(options.device ?? 'auto', options.threads, options.gpu);

  // The shard: from its checkpoint, or freshly initialised.
  const path = shardCheckpointPath(options.runDir, shard);
  mkdirSync(join(resolve(options.runDir), 'shards'), { recursive: true });
  let model: ShardModel;
  let state: Omit<WorkerCheckpointMeta, 'kind' | 'runId' | 'shard' | 'savedAt'>;
  if (existsSync(path)) {
    const ckpt = await readCheckpoint<WorkerCheckpointMeta>(path);
    if (ckpt.meta?.kind !== 'worker' || ckpt.meta.runId !== runId || ckpt.meta.shard !== shard) {
      throw new Error(`${path} is not a checkpoint of shard ${shard} of run ${runId}`);
    }
    model = new ShardModel(backend, mc, shard, false);
    const section = ckpt.sections.get(`shard/${shard}`);
    if (!section) throw new Error(`${path} has no section shard/${shard}`);
    model.loadSection(section, true);
    const { epoch, step, seq, losses, rewired } = ckpt.meta;
    state = { epoch, step, seq, losses, rewired };
    log(`resumed from ${path}: epoch ${epoch}, step ${step}, stream sequence ${seq}`);
  } else {
    model = new ShardModel(backend, mc, shard, true);
    state = { epoch: 0, step: 0, seq: 0, losses: [], rewired: 0 };
    log(`new shard ${shard}: labels [${model.labelStart}, ${model.labelEnd})`);
  }
  let checkpointSeq = state.seq;
  let committing: { step: number; done: Promise<void> } | null = null;

  // Per-step loss tensors not read back yet. Reads are issued without waiting
  // (they complete in queue order, after their step) and chained, so the values
  // land in step order in the array of the epoch they were issued in.
  const pendingLosses: { tensor: FloatTensor }[] = [];
  const lossPool: FloatTensor[] = [];
  let lossReads: Promise<void> = Promise.resolve();
  /** Issues the reads of the pending losses; the promise settles when every loss issued so far is in its epoch's array. */
  const flushLosses = (): Promise<void> => {
    const taken = pendingLosses.splice(0);
    if (taken.length > 0) {
      const target = state.losses;
      const values = Promise.all(taken.map((p) => p.tensor.read()));
      lossReads = lossReads.then(() => values).then((v) => {
        for (const x of v) target.push(x[0]);
        for (const p of taken) lossPool.push(p.tensor);
      });
    }
    return lossReads;
  };

  // Checkpoints: the state as of the last enqueued step is captured at once (every
  // tensor's read-back and the losses are issued in queue order, snapshotSections),
  // and the file is written while the following steps run, so the device is not
  // left idle for the seconds a large shard takes to read back, hash and write.
  // One at a time: a checkpoint due while another is being written waits for it.
  const checkpointSeconds = options.checkpointSeconds ?? 600;
  let checkpointing: Promise<void> | null = null;
  let lastCheckpointAt = performance.now();
  const startCheckpoint = (best: boolean): Promise<void> => {
    const losses = state.losses;
    const count = losses.length + pendingLosses.length;
    const lossesRead = flushLosses();
    const base = { kind: 'worker' as const, runId, shard, epoch: state.epoch, step: state.step, seq: state.seq, rewired: state.rewired };
    const [full, params] = snapshotSections([model.section(true), ...(best ? [model.section(false)] : [])]);
    lastCheckpointAt = performance.now();
    const write = (async () => {
      await lossesRead;
      const meta: WorkerCheckpointMeta = { ...base, losses: losses.slice(0, count), savedAt: new Date().toISOString() };
      await writeCheckpoint(path, meta, [full]);
      if (params) await writeCheckpoint(shardCheckpointPath(options.runDir, shard, true), meta, [params]);
      checkpointSeq = Math.max(checkpointSeq, base.seq);
    })();
    checkpointing = write;
    void write.finally(() => { if (checkpointing === write) checkpointing = null; }).catch(() => undefined);
    return write;
  };
  /** A checkpoint now, once any background one is on disk (commits: awaited). */
  const saveCheckpoint = async (best: boolean): Promise<void> => {
    if (checkpointing) await checkpointing;
    await startCheckpoint(best);
  };

  const inputs = new Map<number, { x: FloatTensor; dropped: FloatTensor }>();
  const inputFor = (rows: number) => {
    let t = inputs.get(rows);
    if (!t) {
      t = { x: backend.tensor('float32', [rows, mc.inputDim]), dropped: backend.tensor('float32', [rows, mc.inputDim]) };
      inputs.set(rows, t);
    }
    return t;
  };
  const evalInputs = new Map<number, FloatTensor>();

  let stopping = false;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => { resolveStopped = r; });
  let messages: ConsumerMessages | null = null;

  // Requests from the coordinator. They run between steps (one JavaScript thread);
  // backend ops run in queue order, so a top-k sees exactly the weights after `step`.
  const status = (): WorkerStatus => ({ shard, epoch: state.epoch, step: state.step, seq: state.seq, checkpointSeq });
  const handle = async (req: WorkerRequest): Promise<WorkerReply> => {
    switch (req.type) {
      case 'status':
        return { type: 'status', ...status() };
      case 'report':
        if (state.step < req.step) return { type: 'behind', shard, step: state.step };
        if (state.step > req.step || state.epoch !== req.epoch) return { type: 'error', shard, reason: `asked for epoch ${req.epoch} at step ${req.step}, the shard is at epoch ${state.epoch}, step ${state.step}` };
        await flushLosses();
        return { type: 'report', shard, step: state.step, losses: Float32Array.from(state.losses), rewired: state.rewired };
      case 'commit':
        if (state.step !== req.step) return state.step < req.step ? { type: 'behind', shard, step: state.step } : { type: 'error', shard, reason: `commit at step ${req.step}, the shard is at step ${state.step}` };
        // A commit sent again (its reply was lost) joins the one in progress.
        if (!committing || committing.step !== req.step) committing = { step: req.step, done: saveCheckpoint(req.best) };
        await committing.done;
        return { type: 'committed', shard, step: state.step, checkpointSeq };
      case 'eval': {
        if (state.step < req.step) return { type: 'behind', shard, step: state.step };
        if (state.step > req.step) return { type: 'error', shard, reason: `eval at step ${req.step}, the shard is at step ${state.step}` };
        let x = evalInputs.get(req.rows);
        if (!x) { x = backend.tensor('float32', [req.rows, mc.inputDim]); evalInputs.set(req.rows, x); }
        x.write(req.features);
        const top = await model.topK(x, req.k);
        return { type: 'topk', shard, step: state.step, rows: top.rows, k: top.k, labels: top.labels, scores: top.scores };
      }
      case 'shutdown':
        stopping = true;
        setImmediate(() => { messages?.stop(); resolveStopped(); });
        return { type: 'status', ...status() };
    }
  };
  const sub = conn.nc.subscribe(s.worker(shard), {
    callback: (err, msg: Msg) => {
      if (err) { log(`request subscription: ${err.message}`); return; }
      const req = decodeWorkerRequest(msg.data, runId, mc.inputDim);
      if (isError(req)) {
        log(`rejected a request: ${req.error}`);
        msg.respond(encode({ type: 'error', shard, reason: req.error }));
        return;
      }
      handle(req).then(
        (reply) => msg.respond(encode(reply)),
        (e: Error) => { log(`request ${req.type} failed: ${e.message}`); msg.respond(encode({ type: 'error', shard, reason: e.message })); },
      );
    },
  });

  // The batch stream, from the position after the checkpoint.
  const consumerName = s.consumer(shard);
  await retrying('creating the consumer', async () => {
    try { await conn.jsm.consumers.delete(s.stream, consumerName); } catch { /* not there */ }
    await conn.jsm.consumers.add(s.stream, {
      durable_name: consumerName,
      filter_subject: s.batch,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: state.seq + 1,
      ack_wait: 600_000_000_000, // 10 min in ns: a slow step must not cause redelivery
      max_ack_pending: 1024,
    });
  }, 600_000, log);
  const consumer = await conn.js.consumers.get(s.stream, consumerName);

  // Steps enqueued whose completion has not been awaited yet (their messages are
  // acked once done). Up to `maxInFlight` are queued, so the backend has the next
  // step while the JS thread receives and decodes the one after; ops run in queue
  // order, so the depth changes no result.
  const maxInFlight = Math.max(1, options.maxInFlight ?? 2);
  const pending: { done: Promise<void>; msg: JsMsg }[] = [];
  const settle = async (keep: number): Promise<void> => {
    while (pending.length > keep) {
      const p = pending.shift()!;
      await p.done;
      p.msg.ack();
    }
  };

  // Stage timings of the epoch (one stats line per epoch): `deviceIdle` is the
  // time no step was queued on the backend (as the JS thread sees it: a step's
  // completion is noticed when its promise settles).
  const writeStats = statsWriter(options.statsFile, log);
  const times = new StageTimes();
  let statsEpoch = -1;
  let windowStart = 0;
  let stepsInWindow = 0;
  let inFlight = 0;
  let idleSince = -1;
  /** Called just before a step's ops are enqueued; `done` settles when they have run. */
  const stepStarts = (now: number): void => {
    if (inFlight === 0 && idleSince >= 0) times.addSeconds('deviceIdle', (now - idleSince) / 1000);
    idleSince = -1;
  };
  const stepEnqueued = (done: Promise<void>): void => {
    inFlight++;
    done.then(() => { if (--inFlight === 0) idleSince = performance.now(); }, () => undefined);
  };
  const applyBatch = (b: BatchMessage): void => {
    if (b.epoch !== state.epoch) {
      state.epoch = b.epoch;
      state.losses = [];
      state.rewired = 0;
    }
    const { x, dropped } = inputFor(b.rows);
    x.write(b.dtype === 'float16' ? float16ToFloat32Array(b.features as Uint16Array) : (b.features as Float32Array));
    let input = x;
    if (config.dropout > 0) {
      backend.dropout(x, dropped, config.dropout, opSeed(mc.seed, STREAM_DROPOUT, b.step));
      input = dropped;
    }
    const ptr = backend.fromArray(b.labelPtr);
    // An empty batch label list still needs a tensor: one unused id (as labelTensors does).
    const ids = backend.fromArray(b.labelIds.length > 0 ? b.labelIds : new Uint32Array(1));
    const lossOut = lossPool.pop() ?? backend.tensor('float32', [1]);
    model.trainStep(input, ptr, ids, { step: b.step, lr: b.lr, loss: config.loss, lossOut });
    ptr.dispose();
    ids.dispose();
    pendingLosses.push({ tensor: lossOut });
    if (config.rewireInterval > 0 && b.step % config.rewireInterval === 0) state.rewired += model.rewire(b.step, config.rewireFraction);
    state.step = b.step;
  };

  try {
    while (!stopping) {
      // Short pull expiry and heartbeats: after a nats-server restart the pull is re-issued within seconds.
      messages = await consumer.consume({ max_messages: 16, expires: 2000, idle_heartbeat: 1000 });
      void (async (m: ConsumerMessages) => {
        for await (const st of m.status()) if (st.type !== 'next' && st.type !== 'discard') log(`batch consumer: ${st.type}${'data' in st ? ` ${JSON.stringify(st.data)}` : ''}`);
      })(messages).catch(() => undefined);
      if (stopping) messages.stop();
      let loopEnd = performance.now();
      for await (const msg of messages) {
        const received = times.add('waitForBatch', loopEnd);
        const b = decodeBatch(msg.data, runId, mc.inputDim, mc.numLabels);
        let t = times.add('decode', received);
        if (!isError(b) && b.epoch !== statsEpoch && b.step > state.step) {
          // The first batch of an epoch (or of this process): the window starts here.
          times.take();
          statsEpoch = b.epoch;
          windowStart = received;
          stepsInWindow = 0;
          idleSince = inFlight === 0 ? received : -1;
        }
        if (isError(b)) {
          log(`rejected batch at stream sequence ${msg.seq}: ${b.error}`);
          msg.term();
          loopEnd = performance.now();
          continue;
        }
        if (b.step <= state.step) {
          msg.ack(); // a redelivery of a batch already applied
          loopEnd = performance.now();
          continue;
        }
        if (b.step !== state.step + 1) log(`batch at stream sequence ${msg.seq} has step ${b.step}, expected ${state.step + 1}: steps ${state.step + 1}..${b.step - 1} are missing from the stream`);
        stepStarts(t);
        applyBatch(b);
        state.seq = msg.seq;
        const done = backend.sync();
        done.catch(() => undefined); // awaited below
        stepEnqueued(done);
        stepsInWindow++;
        t = times.add('enqueue', t);
        pending.push({ done, msg });
        await settle(maxInFlight - 1);
        t = times.add('waitForDevice', t);
        // A fault injected at this step fires once the checkpoints started before it are on disk.
        if (faultArmed('WORKER_STEP', b.step) && checkpointing) await checkpointing;
        faultPoint('WORKER_STEP', b.step);
        if (pendingLosses.length >= 64) void flushLosses().catch(() => undefined); // failures surface at the next awaited flush
        const due = checkpointEvery > 0 ? b.step % checkpointEvery === 0 : performance.now() - lastCheckpointAt >= 1000 * checkpointSeconds;
        if (due && b.index !== b.steps - 1) {
          // The previous one still being written (checkpoints closer together than one takes): wait for it.
          if (checkpointing) await checkpointing;
          startCheckpoint(false).catch((e: Error) => log(`checkpoint at step ${b.step} failed: ${e.message}`));
          times.count('checkpoints');
          t = times.add('checkpoint', t);
        }
        if (b.index === b.steps - 1) {
          await settle(0);
          t = times.add('waitForDevice', t);
          writeStats({ role: 'worker', shard, epoch: b.epoch, lastStep: b.step, steps: stepsInWindow, windowSeconds: Math.round((t - windowStart) * 1e3) / 1e6,
            peakDeviceBytes: backend.memoryStats().peakBytes, ...times.take() });
        }
        loopEnd = performance.now();
      }
    }
    await stopped;
  } finally {
    for (const p of pending) await p.done.catch(() => undefined);
    if (checkpointing) await (checkpointing as Promise<void>).catch(() => undefined);
    sub.unsubscribe();
    await conn.nc.drain().catch(() => undefined);
    model.dispose();
  }
  log('shut down');
}
