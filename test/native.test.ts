import { describe, expect, it } from 'vitest';
import { backendInfo, requireCuda } from '../src/native/index.js';
import { CudaUnavailableError } from '../src/errors.js';

describe('native - addon', () => {
  it('loads and reports a CPU backend', () => {
    const info = backendInfo();
    expect(info.cpu).toBe(true);
    expect(info.hardwareThreads).toBeGreaterThan(0);
  });

  it('reports a missing GPU as a clean CudaUnavailableError', () => {
    const { cuda } = backendInfo();
    if (cuda.compiled && cuda.deviceCount > 0 && !cuda.error) {
      expect(requireCuda().deviceCount).toBeGreaterThan(0);
    } else {
      expect(() => requireCuda()).toThrow(CudaUnavailableError);
      expect(() => requireCuda()).toThrow(/CUDA backend unavailable: .+/);
    }
  });
});
