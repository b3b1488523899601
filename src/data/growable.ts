/**
 * Growable typed arrays for readers that do not know their final size: the
 * text readers append every entry of a file to these and hand the trimmed
 * arrays to a CsrMatrix. Capacity grows by 1.5x, so appending n entries costs
 * O(n) copies in total and the peak is about 2.5x the final size (old and new
 * buffer during one copy).
 *
 * Hot loops may write `data[length++]` directly after `reserve(extra)`.
 */

/** Largest number of entries a Uint32 indptr can address. */
export const MAX_CSR_ENTRIES = 0xffff_ffff;

type TypedArray = Uint32Array | Float32Array;
type TypedArrayCtor<T extends TypedArray> = { new (length: number): T };

class Growable<T extends TypedArray> {
  data: T;
  length = 0;
  private readonly ctor: TypedArrayCtor<T>;

  constructor(ctor: TypedArrayCtor<T>, initialCapacity = 1024) {
    this.ctor = ctor;
    this.data = new ctor(Math.max(16, initialCapacity));
  }

  /** Makes room for `extra` more entries. */
  reserve(extra: number): void {
    const need = this.length + extra;
    if (need <= this.data.length) return;
    let capacity = this.data.length;
    while (capacity < need) capacity = Math.ceil(capacity * 1.5) + 16;
    const next = new this.ctor(capacity);
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }

  push(value: number): void {
    if (this.length === this.data.length) this.reserve(1);
    this.data[this.length++] = value;
  }

  /** Appends `count` entries of `source` from `start`. */
  append(source: ArrayLike<number>, start: number, count: number): void {
    this.reserve(count);
    const d = this.data;
    let j = this.length;
    for (let i = start, end = start + count; i < end; i++) d[j++] = source[i];
    this.length = j;
  }

  /**
   * The entries as an array of exactly `length`. Copies only when more than
   * 1/8 of the buffer is unused, so a nearly full buffer is handed over as is.
   * The builder must not be used afterwards.
   */
  finish(): T {
    const waste = this.data.length - this.length;
    if (waste === 0) return this.data;
    if (waste * 8 <= this.data.length) return this.data.subarray(0, this.length) as T;
    return this.data.slice(0, this.length) as T;
  }
}

export class GrowableUint32 extends Growable<Uint32Array> {
  constructor(initialCapacity?: number) { super(Uint32Array, initialCapacity); }
}

export class GrowableFloat32 extends Growable<Float32Array> {
  constructor(initialCapacity?: number) { super(Float32Array, initialCapacity); }
}
