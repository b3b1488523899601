#!/usr/bin/env node
// Runs the vitest suite and prints one closing line `N passed, N failed, N skipped`
// that CI reads. Extra arguments go to vitest (e.g. a test file filter).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'xmc-vitest-'));
const report = join(dir, 'report.json');
const result = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json',
  `--outputFile.json=${report}`, ...process.argv.slice(2)], { stdio: 'inherit' });
let passed = 0, failed = 0, skipped = 0, ok = false;
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed = r.numPassedTests; failed = r.numFailedTests;
  skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  ok = true;
} catch (err) {
  process.stderr.write(`run-tests: no vitest JSON report (${err.message})\n`);
}
rmSync(dir, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(ok && result.status === 0 && failed === 0 ? 0 : 1);
