// Runs every dist/test/**/*.test.js file in its own Node process (a crashed worker or a stuck
// peer in one file cannot take the others down), with a time limit per file, and prints uvu's
// per-file summaries followed by one closing line "N passed, N failed".
//
//   npm test                      all files
//   npm test -- meeting gateway   only files whose path contains one of the words
// Env: C4V_TEST_JOBS (files at once, default 1), C4V_TEST_FILE_TIMEOUT_S (default 300).
// One file at a time by default: on 2 cores, two files of real workers, node processes and
// browsers at once made the cluster bench's home takeover time out (it passes on its own).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const filters = process.argv.slice(2);
const jobs = Math.max(1, Number(process.env.C4V_TEST_JOBS ?? 1));
const timeoutMs = Number(process.env.C4V_TEST_FILE_TIMEOUT_S ?? 300) * 1000;

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...findTests(full));
    else if (e.name.endsWith('.test.js')) out.push(full);
  }
  return out.sort();
}

interface FileResult {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  ok: boolean;
  seconds: number;
  output: string;
  note?: string;
}

function runFile(file: string): Promise<FileResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], {
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let lingerTimer: NodeJS.Timeout | undefined;
    const onData = (d: Buffer): void => {
      output += d.toString();
      // werift keeps timers and sockets alive after its peers are closed, so a finished test file
      // may never exit by itself. Once uvu printed its summary the file is done: give it a moment
      // to exit, then end it.
      if (!lingerTimer && /Duration:\s+\S+/.test(output)) {
        lingerTimer = setTimeout(() => child.kill('SIGKILL'), 1500);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      clearTimeout(lingerTimer);
      // Killed by us after the summary: judge by the summary (uvu sets exit code 1 on failures).
      const code = lingerTimer && signal === 'SIGKILL' && !timedOut ? 0 : exitCode;
      const num = (label: string): number => Number(output.match(new RegExp(`${label}:\\s+(\\d+)`))?.[1] ?? 0);
      const total = num('Total');
      const passed = num('Passed');
      const skipped = num('Skipped');
      const failed = Math.max(0, total - passed - skipped);
      const summarised = /Total:\s+\d+/.test(output);
      const ok = code === 0 && !timedOut && summarised && failed === 0;
      const note = timedOut
        ? `timed out after ${timeoutMs / 1000} s`
        : !summarised
          ? `exited (code ${code}, signal ${signal}) before uvu's summary`
          : code !== 0
            ? `exited with code ${code}`
            : undefined;
      resolve({
        file,
        passed,
        // A file that crashed or hung counts as one failure even if uvu counted none.
        failed: ok ? failed : Math.max(1, failed),
        skipped,
        ok,
        seconds: (Date.now() - started) / 1000,
        output,
        ...(note ? { note } : {}),
      });
    });
  });
}

async function main(): Promise<void> {
  const files = findTests(here).filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)));
  if (files.length === 0) {
    console.error(`no test files match ${filters.join(' ')}`);
    process.exit(1);
  }
  const queue = [...files];
  const results: FileResult[] = [];
  const worker = async (): Promise<void> => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      const r = await runFile(f);
      results.push(r);
      const name = relative(here, r.file);
      process.stdout.write(`\n=== ${name} (${r.seconds.toFixed(1)} s) ${r.ok ? 'ok' : 'FAILED'}${r.note ? `: ${r.note}` : ''}\n`);
      process.stdout.write(r.output.trimEnd() + '\n');
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, worker));
  const passed = results.reduce((s, r) => s + r.passed, 0);
  const failed = results.reduce((s, r) => s + r.failed, 0);
  const skipped = results.reduce((s, r) => s + r.skipped, 0);
  const bad = results.filter((r) => !r.ok);
  console.log(`\nTest files: ${results.length}, failed files: ${bad.length}${bad.length ? ` (${bad.map((r) => relative(here, r.file)).join(', ')})` : ''}`);
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(bad.length === 0 ? 0 : 1);
}

void main();
