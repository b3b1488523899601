import type { Command } from '../command.js';
import { XmcError } from '../../errors.js';

// TEMPORARY: replaced by the real command in this same change.
export const command: Command = {
  help: 'usage: xmc stats',
  async run() { throw new XmcError('xmc stats is not built yet'); },
};
