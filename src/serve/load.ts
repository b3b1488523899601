/**
 * What a serve worker loads: shard I of a trained run, from either kind of
 * run directory.
 *
 *   single-process run (`xmc train`, any --shards S)
 *       config.json, checkpoint-best.ckpt (else checkpoint-last.ckpt); the
 *       checkpoint holds one section `shard/<i>` per shard: shard I is that
 *       section. An unsharded run is a model of 1 shard.
 *   distributed run (`xmc cluster`)
 *       config.json (with a `distributed` entry), and one checkpoint per
 *       shard: shards/shard-I.best.ckpt (else shards/shard-I.ckpt).
 *
 * Either way the result is the ShardModel that `Model.topK` would use for
 * labels [labelStart, labelEnd), with the parameters only (no Adam moments).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataFormatError, OptionError } from '../errors.js';
import { shardCheckpointPath } from '../distributed/paths.js';
import { readCheckpoint } from '../model/checkpoint.js';
import { validateModelConfig, type ModelConfig } from '../model/config.js';
import { ShardModel } from '../model/shard.js';
import type { Backend } from '../native/backend.js';
import { RUN_FILES } from '../train/trainer.js';

export type RunKind = 'single' | 'distributed';

export interface ServedRun {
  /** absolute run directory */
  dir: string;
  kind: RunKind;
  model: ModelConfig;
}

/** The model configuration and kind of a run directory (config.json); OptionError('--run') when it is not one. */
export function readServedRun(runDir: string): ServedRun {
  const dir = resolve(runDir);
  const path = join(dir, RUN_FILES.config);
  if (!existsSync(path)) throw new OptionError('--run', `${dir} is not a run directory: it has no ${RUN_FILES.config} (written by xmc train and xmc cluster)`);
  let parsed: { config?: { model?: ModelConfig }; distributed?: unknown };
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as typeof parsed;
  } catch (err) {
    throw new DataFormatError({ file: path }, `is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const model = parsed.config?.model;
  if (!model || typeof model !== 'object') throw new DataFormatError({ file: path }, 'has no config.model');
  try {
    validateModelConfig(model);
  } catch (err) {
    throw new DataFormatError({ file: path }, `config.model: ${(err as Error).message}`, { cause: err });
  }
  return { dir, kind: parsed.distributed ? 'distributed' : 'single', model };
}

/** The checkpoint file that holds shard `shard` of `run`, best epoch first. */
export function shardSource(run: ServedRun, shard: number): string {
  const candidates = run.kind === 'distributed'
    ? [shardCheckpointPath(run.dir, shard, true), shardCheckpointPath(run.dir, shard)]
    : [join(run.dir, RUN_FILES.best), join(run.dir, RUN_FILES.last)];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new OptionError('--run', `${run.dir} holds no checkpoint of shard ${shard} (looked for ${candidates.join(', ')})`);
  return found;
}

/** Builds shard `shard` of the run on `backend` and fills it from its checkpoint. */
export async function loadServedShard(backend: Backend, runDir: string, shard: number): Promise<{ run: ServedRun; model: ShardModel; source: string }> {
  const run = readServedRun(runDir);
  const S = run.model.shards;
  if (!Number.isInteger(shard) || shard < 0 || shard >= S) throw new OptionError('--shard', `${shard} is out of range: the run has ${S} shard${S === 1 ? '' : 's'} (0..${S - 1})`);
  const source = shardSource(run, shard);
  const checkpoint = await readCheckpoint(source);
  const name = `shard/${shard}`;
  const section = checkpoint.sections.get(name);
  if (!section) throw new DataFormatError({ file: source }, `has no section ${name}`);
  const model = new ShardModel(backend, run.model, shard, false);
  try {
    model.loadSection(section, false);
  } catch (err) {
    model.dispose();
    throw new DataFormatError({ file: source }, (err as Error).message, { cause: err });
  }
  return { run, model, source };
}
