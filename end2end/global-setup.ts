// Starts the real `lifeline` binary (built by `scripts/build-site.sh`) on a free port against a
// fresh SQLite database in a temporary folder, and stops it when the run ends.
//
// The tests find it through process.env.LIFELINE_BASE_URL, and its database through
// LIFELINE_E2E_DATABASE_URL (for driving the `lifeline` command line, as a person would), and
// the security mail it writes (no SMTP server: `.eml` files) through LIFELINE_E2E_MAIL_DIR.
//
// LIFELINE_BIN runs another binary, and LIFELINE_E2E_SITE_ROOT serves another site (relative to
// the repository's root, default target/site): `scripts/bench-tti.sh` points both at the build
// it measures.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

const root = path.resolve(__dirname, '..');
export const binary = process.env.LIFELINE_BIN ?? path.join(root, 'target/debug/lifeline');
export const siteRoot = path.resolve(root, process.env.LIFELINE_E2E_SITE_ROOT ?? 'target/site');

/** The secret key file of the server on `databaseUrl` (a `sqlite://` URL `startLifeline`
 * made): `secret.key` beside the database file. */
export function secretKeyFileOf(databaseUrl: string): string {
  return path.join(path.dirname(databaseUrl.replace(/^sqlite:\/\//, '')), 'secret.key');
}

/** A running `lifeline` on a fresh database, the folder its mail is written to, and how to
 * stop it. */
export type Lifeline = {
  baseUrl: string;
  databaseUrl: string;
  mailDir: string;
  /** Everything the server has logged so far. */
  log: () => string;
  stop: () => Promise<void>;
};

/** Starts `lifeline` on a free port against a fresh SQLite database, with `env` on top. */
export async function startLifeline(env: Record<string, string> = {}): Promise<Lifeline> {
  if (!existsSync(binary)) {
    throw new Error(`${binary} is missing: run 'make build' first (make test does).`);
  }
  const workdir = mkdtempSync(path.join(tmpdir(), 'lifeline-e2e-'));
  const databaseUrl = `sqlite://${workdir}/lifeline.db`;
  const server = spawn(binary, [], {
    cwd: workdir,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      // Beside the database, where `lifelineCli` finds it: the command line must link and
      // verify the audit log with the server's key.
      LIFELINE_SECRET_KEY_FILE: secretKeyFileOf(databaseUrl),
      LIFELINE_LISTEN_ADDR: '127.0.0.1:0',
      // Every journey signs in from 127.0.0.1, many times in a few minutes.
      LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE: '100000',
      LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE: '100000',
      LIFELINE_SIGN_IN_STARTS_PER_MINUTE: '100000',
      LIFELINE_LOG: process.env.LIFELINE_LOG ?? 'info',
      LEPTOS_SITE_ROOT: siteRoot,
      ...env,
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

  return {
    baseUrl,
    databaseUrl,
    // With no LIFELINE_SMTP_URL, the server writes each message here, under its working folder.
    mailDir: path.join(workdir, 'data/mail'),
    log: () => log.join(''),
    stop: async () => {
      server.kill('SIGTERM');
      await new Promise((resolve) => server.once('exit', resolve));
      rmSync(workdir, { recursive: true, force: true });
    },
  };
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  // Webhook journeys send to a receiver on this machine, over plain http.
  const lifeline = await startLifeline({ LIFELINE_WEBHOOKS_ALLOW_LOOPBACK_HTTP: 'true' });
  process.env.LIFELINE_BASE_URL = lifeline.baseUrl;
  process.env.LIFELINE_E2E_DATABASE_URL = lifeline.databaseUrl;
  process.env.LIFELINE_E2E_MAIL_DIR = lifeline.mailDir;
  return lifeline.stop;
}
