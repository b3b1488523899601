/**
 * `xmc status RUN_DIR`: where a distributed run stands, from its files
 * (coordinator.json, metrics) and, when its NATS server answers, each live
 * worker's position (epoch, step, stream sequence, checkpointed sequence).
 */
import type { Command } from '../command.js';
import { parseOptions } from '../command.js';
import { OptionError } from '../../errors.js';
import { METRIC_NAMES } from '../../train/evaluate.js';

const HELP = `usage: xmc status RUN_DIR [--json] [--offline]

Shows a distributed run's progress: epochs done, step, learning rate, best
epoch, the metrics of each epoch, and the live state of every worker (asked
over NATS, 1 s timeout; --offline skips that).`;

export const command: Command = {
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values: v, positionals } = parseOptions(args, { json: { type: 'boolean' }, offline: { type: 'boolean' } }, true);
    const dir = positionals[0];
    if (!dir) throw new OptionError('RUN_DIR', 'is required');
    const { readClusterStatus } = await import('../../../coordinator/coordinator.js');
    const st = await readClusterStatus(dir, { live: !v.offline });
    if (v.json) {
      process.stdout.write(JSON.stringify(st, null, 2) + '\n');
      return 0;
    }
    const lines = [
      `run ${st.runId ?? '(no cluster.json)'}  nats ${st.nats ?? '-'}`,
      `epochs done ${st.epochsDone}, step ${st.step}, lr ${st.lr ?? '-'}, best epoch ${st.bestEpoch || '-'}, ${st.finished ? `finished (${st.finished})` : 'running'}`,
    ];
    for (const r of st.history) {
      lines.push(`  epoch ${r.epoch}: loss ${r.loss.toFixed(5)}  ${METRIC_NAMES.map((m) => `${m} ${(100 * r.metrics[m]).toFixed(2)}`).join('  ')}  ${r.samplesPerSecond.toFixed(0)} samples/s`);
    }
    for (const w of st.workers) {
      lines.push('down' in w ? `  worker ${w.shard}: down (${w.down})` : `  worker ${w.shard}: epoch ${w.epoch}, step ${w.step}, stream seq ${w.seq}, checkpointed seq ${w.checkpointSeq}`);
    }
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  },
};
