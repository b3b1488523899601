import type { Command } from '../command.js';
import { XmcError } from '../../errors.js';

// TEMPORARY: replaced by the real command in this same change.
export const command: Command = {
  help: 'usage: xmc synth',
  async run() { throw new XmcError('xmc synth is not built yet'); },
};
