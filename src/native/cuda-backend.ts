/**
 * The CUDA backend: a thin typed layer over the native addon's CudaBackend
 * (native/cuda/backend.cc) and its op functions (`addon.cuda.*`, one file per
 * op family in native/cuda/). Same contract as the CPU backend (backend.ts,
 * docs/BACKEND.md): ops are launched on a CUDA stream and return at once;
 * sync/read/top-k resolve as promises settled by a completion thread.
 *
 * Differences from the CPU backend, by design:
 * - `memoryStats()` counts GPU memory (tensors, op scratch, the cuBLAS
 *   workspace); `deviceMemory()` adds the driver's view (cudaMemGetInfo).
 * - The FFI/CSR `dX` scatter uses atomics: dX is not bitwise reproducible
 *   between runs (dW, dB, the forward and the loss are).
 * - Rewiring runs on the host over pinned copies (same results as the CPU's
 *   for the same seed); dense products through cuBLAS still run after a
 *   failed op (their outputs are overwritten), every other op is skipped.
 */
import { CudaUnavailableError } from '../errors.js';
import type { BackendOptions } from './backend.js';
import { AddonBackend, type NativeBackendObject, type NativeOps } from './addon-backend.js';
import { backendInfo, native } from './index.js';

export interface DeviceMemory {
  /** cudaMemGetInfo: free and total bytes of the GPU (all processes and pools included). */
  freeBytes: number;
  totalBytes: number;
}

export interface CudaDeviceInfo {
  device: number;
  name: string;
  multiprocessors: number;
  /** e.g. "9.0" */
  computeCapability: string;
  /** Dense products through cuBLAS (else the addon's own SGEMM kernel). */
  cublas: boolean;
  /** cuBLAS allowed to use TF32 tensor cores for float32 products. */
  tf32: boolean;
  /** Bytes the backend's allocator may hold at once (0: no limit). */
  memoryLimit: number;
  /** The fused FFI kernels gather their input as bfloat16. */
  bf16Gathers: boolean;
  /** The fused top-k gathers its input as int8 with a scale per row. */
  int8TopK: boolean;
}

/** The addon's backend object (class CudaBackend in native/cuda/backend.cc). */
interface NativeCudaBackend extends NativeBackendObject {
  deviceMemory(): DeviceMemory;
  info(): CudaDeviceInfo;
}

interface CudaAddon {
  CudaBackend: new (options: { device?: number; tf32?: boolean; memoryLimit?: number; bf16Gathers?: boolean; int8TopK?: boolean }) => NativeCudaBackend;
  cuda: NativeOps;
}

export interface CudaBackendOptions extends BackendOptions {
  /** CUDA device ordinal. Default 0. */
  device?: number;
  /** Let cuBLAS use TF32 tensor cores for the dense products (faster, ~1e-3 relative error). Default false. */
  tf32?: boolean;
}

/** Why CUDA cannot be used here, or null when a GPU is there. Never throws. */
export function cudaUnavailableReason(): string | null {
  try {
    const { cuda } = backendInfo();
    if (!cuda.compiled) return cuda.error ?? 'the addon was built without CUDA';
    if (cuda.error) return cuda.error;
    if (cuda.deviceCount === 0) return 'no GPU visible';
    const a = native() as unknown as Partial<CudaAddon>;
    if (typeof a.CudaBackend !== 'function' || typeof a.cuda?.ffiForward !== 'function') {
      return 'the native addon has no CUDA backend: it is stale, rebuild it with `npm run build:native`';
    }
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Opens the device; CudaUnavailableError (no driver, no GPU, a CPU-only build) before touching CUDA otherwise. */
function openDevice(options: CudaBackendOptions): { n: NativeCudaBackend; ops: NativeOps } {
  const reason = cudaUnavailableReason();
  if (reason !== null) throw new CudaUnavailableError(`CUDA backend unavailable: ${reason}`);
  const addon = native() as unknown as CudaAddon;
  const opts: { device?: number; tf32?: boolean; memoryLimit?: number; bf16Gathers?: boolean; int8TopK?: boolean } = {};
  if (options.device !== undefined) opts.device = options.device;
  if (options.tf32 !== undefined) opts.tf32 = options.tf32;
  if (options.memoryLimit !== undefined) opts.memoryLimit = options.memoryLimit;
  if (options.bf16Gathers !== undefined) opts.bf16Gathers = options.bf16Gathers;
  if (options.int8TopK !== undefined) opts.int8TopK = options.int8TopK;
  try {
    return { n: new addon.CudaBackend(opts), ops: addon.cuda };
  } catch (err) {
    if (err instanceof RangeError || err instanceof TypeError) throw err;
    throw new CudaUnavailableError(`CUDA backend unavailable: ${(err as Error).message}`, { cause: err });
  }
}

export class CudaBackend extends AddonBackend {
  readonly kind = 'cuda' as const;
  private readonly device: NativeCudaBackend;

  constructor(options: CudaBackendOptions = {}) {
    const { n, ops } = openDevice(options);
    super(n, ops);
    this.device = n;
  }

  info(): CudaDeviceInfo {
    return this.device.info();
  }

  /** The driver's free / total GPU memory (cudaMemGetInfo). */
  deviceMemory(): DeviceMemory {
    return this.device.deviceMemory();
  }
}
