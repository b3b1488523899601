/**
 * Loads the native addon (build/Release/xmc_native.node, built by cmake-js on
 * `npm install`) and gives it a typed surface. Everything native goes through
 * here, so a missing or stale build is reported once, clearly.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CudaUnavailableError, NativeError } from '../errors.js';

export interface CudaInfo {
  compiled: boolean;
  deviceCount: number;
  deviceName: string;
  runtimeVersion: number;
  driverVersion: number;
  error?: string;
}

export interface BackendInfo {
  cpu: boolean;
  cuda: CudaInfo;
  hardwareThreads: number;
}

/** The raw addon; op families add their functions here as they are built. */
export interface NativeAddon {
  abiVersion: number;
  backendInfo(): BackendInfo;
  [name: string]: unknown;
}

/** Walks up from this file to the package root (the folder with package.json). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'CMakeLists.txt'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new NativeError('cannot find the package root (no package.json above ' + fileURLToPath(import.meta.url) + ')');
    dir = parent;
  }
}

let cached: NativeAddon | undefined;

/** The loaded addon. Throws NativeError naming the path and the fix when it is missing. */
export function native(): NativeAddon {
  if (cached) return cached;
  const path = process.env.XMC_NATIVE_ADDON ?? resolve(packageRoot(), 'build', 'Release', 'xmc_native.node');
  if (!existsSync(path)) {
    throw new NativeError(`native addon not found at ${path}: run \`npm install\` (or \`npm run build:native\`) in ${packageRoot()}`);
  }
  const require = createRequire(import.meta.url);
  try {
    cached = require(path) as NativeAddon;
  } catch (err) {
    throw new NativeError(`native addon at ${path} failed to load: ${(err as Error).message}; rebuild it with \`npm run build:native\``, { cause: err });
  }
  return cached;
}

export function backendInfo(): BackendInfo {
  return native().backendInfo();
}

/** Throws CudaUnavailableError saying why, unless a CUDA device can be used. */
export function requireCuda(): CudaInfo {
  const { cuda } = backendInfo();
  if (!cuda.compiled || cuda.deviceCount === 0 || cuda.error) {
    throw new CudaUnavailableError(`CUDA backend unavailable: ${cuda.error ?? 'no GPU'}`);
  }
  return cuda;
}

// The compute backend (tensors and ops): see backend.ts and docs/BACKEND.md.
export { createBackend } from './backend.js';
export type {
  AdamOptions,
  Backend,
  BackendKind,
  BackendOptions,
  DType,
  FloatTensor,
  IndexTensor,
  LossKind,
  LossOptions,
  FfiLossOptions,
  MemoryStats,
  RewireOptions,
  Tensor,
  TopKOptions,
  TopKResult,
  TypedArrayOf,
} from './backend.js';
