import { describe, expect, it } from 'vitest';
import { decodeBatch, decodeWorkerReply, decodeWorkerRequest, encode, isError, runSubjects, type BatchMessage } from '../src/distributed/protocol.js';

const batch = (over: Partial<Record<keyof BatchMessage, unknown>> = {}): Uint8Array => encode({
  type: 'batch', runId: 'r1', epoch: 1, index: 0, steps: 3, step: 1, lr: 1e-3, rows: 2, cols: 3, dtype: 'float32',
  features: new Float32Array(6).fill(0.5), labelPtr: Uint32Array.from([0, 2, 3]), labelIds: Uint32Array.from([0, 4, 9]), ...over,
});

describe('dist - message validation', () => {
  it('a well-formed batch decodes with its typed arrays intact', () => {
    const b = decodeBatch(batch(), 'r1', 3, 10);
    expect(isError(b)).toBe(false);
    const ok = b as BatchMessage;
    expect(ok.features).toBeInstanceOf(Float32Array);
    expect(Array.from(ok.labelIds)).toEqual([0, 4, 9]);
  });

  const bad: [string, Uint8Array, RegExp][] = [
    ['truncated msgpack', batch().subarray(0, 20), /not msgpack/],
    ['an array', encode([1, 2] as unknown as object), /not a msgpack map/],
    ['another run', batch({ runId: 'r2' }), /run id/],
    ['a wrong feature count', batch({ features: new Float32Array(5) }), /rows x cols/],
    ['a dtype mismatch', batch({ dtype: 'float16' }), /Uint16Array/],
    ['an unknown dtype', batch({ dtype: 'int8' }), /unknown feature dtype/],
    ['a column count other than the model\'s', batch({ cols: 4, features: new Float32Array(8) }), /cols 4/],
    ['a label id out of range', batch({ labelIds: Uint32Array.from([0, 4, 10]) }), /label id 10/],
    ['a decreasing labelPtr', batch({ labelPtr: Uint32Array.from([0, 3, 2]), labelIds: Uint32Array.from([0, 1]) }), /labelPtr/],
    ['a labelPtr of the wrong length', batch({ labelPtr: Uint32Array.from([0, 3]) }), /rows \+ 1/],
    ['an index past the epoch', batch({ index: 3 }), /index 3/],
    ['a non-positive lr', batch({ lr: 0 }), /lr/],
  ];
  for (const [what, data, reason] of bad) {
    it(`a batch with ${what} is rejected with its reason, never thrown`, () => {
      const d = decodeBatch(data, 'r1', 3, 10);
      expect(isError(d)).toBe(true);
      expect((d as { error: string }).error).toMatch(reason);
    });
  }

  it('requests and replies: eval shape checked, unknown types rejected', () => {
    expect(isError(decodeWorkerRequest(encode({ type: 'eval', runId: 'r1', step: 3, k: 5, rows: 2, cols: 3, features: new Float32Array(6) }), 'r1', 3))).toBe(false);
    expect(decodeWorkerRequest(encode({ type: 'eval', runId: 'r1', step: 3, k: 5, rows: 2, cols: 3, features: new Float32Array(5) }), 'r1', 3)).toEqual({ error: expect.stringMatching(/rows x cols/) });
    expect(decodeWorkerRequest(encode({ type: 'reboot', runId: 'r1' }), 'r1', 3)).toEqual({ error: expect.stringMatching(/unknown request type/) });
    expect(decodeWorkerReply(encode({ type: 'topk', shard: 0, step: 1, rows: 2, k: 2, labels: new Int32Array(3), scores: new Float32Array(4) }))).toEqual({ error: expect.stringMatching(/rows x k/) });
  });

  it('run ids are checked before they become subjects', () => {
    expect(runSubjects('run_1-a').batch).toBe('xmc.run_1-a.batch');
    expect(() => runSubjects('a.b')).toThrow(/must match/);
    expect(() => runSubjects('a b')).toThrow(/must match/);
  });
});
