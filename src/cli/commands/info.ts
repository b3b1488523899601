import { backendInfo } from '../../native/index.js';
import type { Command } from '../command.js';

export const command: Command = {
  help: 'usage: xmc info\n\nPrints the native backends this build has: CPU threads, and CUDA devices or why there are none.',
  async run() {
    const info = backendInfo();
    process.stdout.write(`cpu: yes (${info.hardwareThreads} hardware threads)\n`);
    const c = info.cuda;
    if (!c.compiled) process.stdout.write(`cuda: not built (${c.error})\n`);
    else if (c.error) process.stdout.write(`cuda: built, unavailable: ${c.error}\n`);
    else process.stdout.write(`cuda: ${c.deviceCount} device(s), device 0: ${c.deviceName}, runtime ${c.runtimeVersion}, driver ${c.driverVersion}\n`);
    return 0;
  },
};
