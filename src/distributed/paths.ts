/** Files of a distributed run directory that more than one process reads or writes. */
import { join, resolve } from 'node:path';

/** A label-shard worker's checkpoint: `<run>/shards/shard-I.ckpt`, or `shard-I.best.ckpt` for the best epoch's weights. */
export const shardCheckpointPath = (runDir: string, shard: number, best = false): string =>
  join(resolve(runDir), 'shards', `shard-${shard}${best ? '.best' : ''}.ckpt`);
