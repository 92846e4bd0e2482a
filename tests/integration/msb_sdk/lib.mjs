// Shared by the microsandbox SDK suite (tests/integration/msb_sdk.sh runs it): loads the pinned
// SDK from the npm cache directory the runner installed it into, starts a real `sandfsd serve`
// on a fresh data directory and a free port, and talks to sandfs's own /v1 API with plain HTTP.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';

export const SANDFSD = process.env.SANDFSD;
export const SDK_DIR = process.env.MSB_SDK_DIR;  // an `npm install --prefix` directory
assert.ok(SANDFSD, 'SANDFSD (the sandfsd binary) is not set; run tests/integration/msb_sdk.sh');
assert.ok(SDK_DIR, 'MSB_SDK_DIR is not set; run tests/integration/msb_sdk.sh');

// The SDK (ESM) by absolute path: ESM imports ignore NODE_PATH.
export const sdk = await import(
  pathToFileURL(join(SDK_DIR, 'node_modules', 'microsandbox', 'dist', 'index.js')).href);

// A `sandfsd serve` of its own: --listen 127.0.0.1:0, the port read from its log line.
export async function startServer(extraArgs = []) {
  const dataDir = mkdtempSync(join(tmpdir(), 'sandfs-msb-sdk-'));
  const proc = spawn(SANDFSD, ['serve', '--data-dir', join(dataDir, 'data'), '--listen',
                               '127.0.0.1:0', '--log-level', 'warn', ...extraArgs],
                     { stdio: ['ignore', 'ignore', 'pipe'] });
  // Should this process end without its after() hooks (an uncaught error, a runner timeout), the
  // server must not outlive it.
  const killOnExit = () => {
    proc.kill('SIGKILL');
    try {
      rmSync(dataDir, { recursive: true, force: true });
    } catch {
      // best effort (e.g. a mount left inside it); the kill is what matters
    }
  };
  process.on('exit', killOnExit);
  let log = '';
  const port = await new Promise((resolve, reject) => {
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /serving the API on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    proc.on('error', (e) => reject(new Error(`cannot start ${SANDFSD}: ${e.message}`)));
    proc.on('exit', (code, sig) =>
      reject(new Error(`sandfsd serve exited (${code ?? sig}) before it was ready:\n${log}`)));
  }).catch((e) => {
    process.off('exit', killOnExit);
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  });
  proc.stderr.on('data', (chunk) => process.stderr.write(`sandfsd: ${chunk}`));
  const token = readFileSync(join(dataDir, 'data', 'token'), 'utf8').trim();
  const base = `http://127.0.0.1:${port}`;
  return {
    port, token, base, proc,
    dataDir: join(dataDir, 'data'),
    msbUrl: `${base}/msb`,
    // sandfs's own API: fetch with the token; returns the Response.
    api(method, path, { body, headers = {} } = {}) {
      return fetch(base + path, {
        method, body,
        headers: { Authorization: `Bearer ${token}`, ...headers },
        ...(body && typeof body !== 'string' && !(body instanceof Uint8Array) ? { duplex: 'half' } : {}),
      });
    },
    // SIGTERM, then the exit status must be 0: a crash, or a sanitizer report at exit in an
    // ASan build, fails the suite that started the server.
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.on('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      process.off('exit', killOnExit);
      rmSync(dataDir, { recursive: true, force: true });
      assert.equal(proc.exitCode, 0,
                   `sandfsd serve exited with ${proc.exitCode ?? proc.signalCode} (log above)`);
    },
  };
}

// `microsandbox/native` (the napi binding; the same module instance the SDK loads).
export const native = (await import(
  pathToFileURL(join(SDK_DIR, 'node_modules', 'microsandbox', 'native', 'index.cjs')).href)).default;

// Points the SDK (process-wide) at `srv`, with the line docs/msb-compat.md gives users.
export function useServer(srv, token = srv.token) {
  native.setDefaultBackend('cloud', srv.msbUrl, token);
}

// Asserts that `promise` rejects with an instance of `cls` (an SDK error class); returns the error.
export async function rejectsWith(promise, cls, what) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: resolved, expected ${cls.name}`);
  assert.ok(err instanceof cls,
            `${what}: expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
  return err;
}

let counter = 0;
export function uniqueName(prefix = 'v') {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}
