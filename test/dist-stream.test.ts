// The run's stream as the encoder uses it (src/encoder/encoder.ts, PUBLISHES_IN_FLIGHT): several batches in
// flight, each but the first of a pass expecting its predecessor's message id to be the stream's last, so that
// a batch lost in a nats-server crash cannot be followed by a stored later one (a gap). Real nats-server.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectRun, ensureStream, startNatsServer } from '../src/distributed/nats.js';
import { runSubjects } from '../src/distributed/protocol.js';

const dir = mkdtempSync(join(tmpdir(), 'xmc-stream-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dist - stream', () => {
  it('a batch expecting a predecessor that is not the last message is refused; in order, across a restart, it is stored', async () => {
    let nats = await startNatsServer({ runDir: dir });
    const s = runSubjects('chain');
    let conn = await connectRun(nats.url, 'test');
    try {
      await ensureStream(conn.jsm, s);
      const publish = (id: string, previous: string | null) =>
        conn.js.publish(s.batch, new Uint8Array([1]), { msgID: id, ...(previous ? { expect: { lastMsgID: previous } } : {}) })
          .then((a) => `stored ${a.seq}${a.duplicate ? ' (duplicate)' : ''}`, (e: Error) => `refused: ${e.message}`);
      await conn.js.publish(s.control, new Uint8Array([0]), { msgID: 'plan' });
      expect(await publish('b0', null)).toBe('stored 2');
      expect(await publish('b1', 'b0')).toBe('stored 3');
      expect(await publish('b3', 'b2')).toBe('refused: wrong last msg ID: b1'); // b2 lost: b3 must not land
      expect(await publish('b2', 'b1')).toBe('stored 4');
      expect(await publish('b1', 'b0')).toBe('stored 3 (duplicate)'); // a resent batch is dropped, not an error
      await conn.nc.close();
      nats.process.kill('SIGKILL');
      await new Promise((r) => nats.process.once('exit', r));
      nats = await startNatsServer({ runDir: dir, port: nats.port });
      conn = await connectRun(nats.url, 'test');
      expect(await publish('b3', 'b2')).toBe('stored 5'); // the last message id survives the restart
    } finally {
      await conn.nc.close().catch(() => undefined);
      await nats.stop();
    }
  });
});
