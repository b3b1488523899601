/**
 * The CPU reference backend: the addon's CpuBackend (native/cpu/backend.cc)
 * and its op functions (one file per op family in native/cpu/), typed by the
 * shared AddonBackend.
 */
import { NativeError } from '../errors.js';
import type { BackendOptions } from './backend.js';
import { AddonBackend, type NativeBackendObject, type NativeOps } from './addon-backend.js';
import { native } from './index.js';

interface CpuAddon extends NativeOps {
  CpuBackend: new (options: { threads?: number; int8TopK?: boolean }) => NativeBackendObject;
}

function addon(): CpuAddon {
  const a = native() as unknown as Partial<CpuAddon>;
  if (typeof a.CpuBackend !== 'function' || typeof a.ffiForward !== 'function') {
    throw new NativeError('the native addon has no CPU backend: it is stale, rebuild it with `npm run build:native`');
  }
  return a as CpuAddon;
}

export class CpuBackend extends AddonBackend {
  readonly kind = 'cpu' as const;

  constructor(options: BackendOptions = {}) {
    const ops = addon();
    super(new ops.CpuBackend({
      ...(options.threads === undefined ? {} : { threads: options.threads }),
      ...(options.int8TopK === undefined ? {} : { int8TopK: options.int8TopK }),
    }), ops);
  }
}
