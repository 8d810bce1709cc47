// Starts the real `lifeline` binary (built by `cargo leptos build`) on a free port against a
// fresh SQLite database in a temporary folder, and stops it when the run ends.
//
// The tests find it through process.env.LIFELINE_BASE_URL, and its database through
// LIFELINE_E2E_DATABASE_URL (for driving the `lifeline` command line, as a person would).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

const root = path.resolve(__dirname, '..');
export const binary = process.env.LIFELINE_BIN ?? path.join(root, 'target/debug/lifeline');

export default async function globalSetup(): Promise<() => Promise<void>> {
  if (!existsSync(binary)) {
    throw new Error(`${binary} is missing: run 'cargo leptos build' first (make test does).`);
  }
  const workdir = mkdtempSync(path.join(tmpdir(), 'lifeline-e2e-'));
  const databaseUrl = `sqlite://${workdir}/lifeline.db`;
  const server = spawn(binary, [], {
    cwd: workdir,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      LIFELINE_LISTEN_ADDR: '127.0.0.1:0',
      // Every journey signs in from 127.0.0.1, many times in a few minutes.
      LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE: '100000',
      LIFELINE_LOG: process.env.LIFELINE_LOG ?? 'info',
      LEPTOS_SITE_ROOT: path.join(root, 'target/site'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  server.stderr.on('data', (chunk) => log.push(String(chunk)));

  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lifeline did not listen:\n${log.join('')}`)), 60_000);
    server.on('exit', (code) => reject(new Error(`lifeline exited (${code}):\n${log.join('')}`)));
    createInterface({ input: server.stdout }).on('line', (line) => {
      log.push(line + '\n');
      const match = line.match(/listening on (http:\/\/[^\s"]+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });

  process.env.LIFELINE_BASE_URL = baseUrl;
  process.env.LIFELINE_E2E_DATABASE_URL = databaseUrl;

  return async () => {
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
    rmSync(workdir, { recursive: true, force: true });
  };
}
