/**
 * Learning-rate schedule and early stopping, both driven by the test P@3 of
 * each epoch (higher is better), with plain serialisable state so that a
 * resumed run continues exactly.
 *
 * An epoch improves when its metric is strictly above the best so far. Then:
 *   - reduce on plateau: after more than `lrPatience` consecutive epochs
 *     without improvement, lr = max(lr * lrFactor, minLr) and the count
 *     restarts (PyTorch's ReduceLROnPlateau, mode 'max', threshold 0, cooldown 0);
 *   - early stopping: after `earlyStopPatience` consecutive epochs without
 *     improvement, training stops; the best epoch's weights are the result.
 */
export interface ScheduleState {
  lr: number;
  /** best metric so far (-Infinity before the first epoch) */
  best: number;
  /** 1-based epoch of the best metric, 0 before the first epoch */
  bestEpoch: number;
  /** epochs since the last improvement or lr reduction (plateau counter) */
  plateauEpochs: number;
  /** epochs since the last improvement (early-stopping counter) */
  epochsWithoutImprovement: number;
  stopped: boolean;
}

export interface ScheduleOptions {
  lrFactor: number;
  lrPatience: number;
  minLr: number;
  earlyStopPatience: number;
}

export function initialSchedule(lr: number): ScheduleState {
  return { lr, best: -Infinity, bestEpoch: 0, plateauEpochs: 0, epochsWithoutImprovement: 0, stopped: false };
}

export interface ScheduleUpdate {
  improved: boolean;
  /** the learning rate was reduced after this epoch */
  reduced: boolean;
  /** training stops after this epoch */
  stop: boolean;
}

/** Records epoch `epoch`'s metric; updates `state` in place. */
export function updateSchedule(state: ScheduleState, options: ScheduleOptions, epoch: number, metric: number): ScheduleUpdate {
  const improved = metric > state.best;
  let reduced = false;
  if (improved) {
    state.best = metric;
    state.bestEpoch = epoch;
    state.plateauEpochs = 0;
    state.epochsWithoutImprovement = 0;
  } else {
    state.plateauEpochs++;
    state.epochsWithoutImprovement++;
    if (state.plateauEpochs > options.lrPatience) {
      const lr = Math.max(state.lr * options.lrFactor, options.minLr);
      reduced = lr < state.lr;
      state.lr = lr;
      state.plateauEpochs = 0;
    }
    if (state.epochsWithoutImprovement >= options.earlyStopPatience) state.stopped = true;
  }
  return { improved, reduced, stop: state.stopped };
}

/** JSON has no -Infinity: the state as stored in a checkpoint, and back. */
export function scheduleToJson(state: ScheduleState): Record<string, unknown> {
  return { ...state, best: Number.isFinite(state.best) ? state.best : null };
}

export function scheduleFromJson(json: Record<string, unknown>): ScheduleState {
  const s = json as unknown as ScheduleState & { best: number | null };
  return { ...s, best: s.best === null ? -Infinity : s.best };
}
