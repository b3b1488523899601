/**
 * Fault injection for the recovery tests: a process given
 * XMC_FAULT_<POINT>=<value> kills itself with SIGKILL (as `kill -9` would)
 * when it reaches that point with that value. Unset in production: the
 * check is one environment lookup per call.
 */
export function faultPoint(point: string, value: number): void {
  const want = process.env[`XMC_FAULT_${point}`];
  if (want !== undefined && Number(want) === value) {
    process.stderr.write(`fault injection: SIGKILL at ${point}=${value}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}

/** Whether faultPoint(point, value) would fire (to settle work the test expects on disk first). */
export function faultArmed(point: string, value: number): boolean {
  const want = process.env[`XMC_FAULT_${point}`];
  return want !== undefined && Number(want) === value;
}
