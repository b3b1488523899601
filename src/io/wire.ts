/**
 * The msgpack encoding of the processes' messages (distributed training,
 * src/distributed/protocol.ts; serving, src/serve/protocol.ts): maps with
 * typed arrays as msgpackr typed-array extensions (`moreTypes`, no records),
 * and decoders that never throw but return `{ error }`.
 */
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false, moreTypes: true });

export function encode(message: object): Uint8Array {
  return packr.pack(message);
}

/** A decoded message, or why it was rejected. */
export type Decoded<T> = T | { error: string };

export function isError<T>(d: Decoded<T>): d is { error: string } {
  return typeof d === 'object' && d !== null && 'error' in d && Object.keys(d).length === 1;
}

/** The msgpack map in `data`, or why it is not one. */
export function unpackMap(data: Uint8Array): Decoded<Record<string, unknown>> {
  let v: unknown;
  try {
    v = packr.unpack(data);
  } catch (err) {
    return { error: `not msgpack: ${(err as Error).message}` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { error: `not a msgpack map (${Array.isArray(v) ? 'array' : typeof v})` };
  return v as Record<string, unknown>;
}
