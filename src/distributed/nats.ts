/**
 * NATS plumbing of a distributed run: starting the project's nats-server
 * (config/nats.conf, JetStream file store under the run directory, loopback
 * by default), connecting with endless reconnects (a restarted server is
 * picked up again), the run's stream, and small helpers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { RunSubjects } from './protocol.js';

/** The repository root (dist/src/distributed -> root, or src/distributed -> root). */
export function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const up = here.includes(`${'/'}dist${'/'}`) ? '../../..' : '../..';
  return resolve(here, up);
}

export const NATS_CONFIG = (): string => join(repoRoot(), 'config', 'nats.conf');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on the loopback interface (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => ok(port));
    });
  });
}

export interface NatsServerOptions {
  /** the run directory: the store goes to <runDir>/nats/jetstream, the log to <runDir>/nats/nats.log */
  runDir: string;
  /** default: a free port */
  port?: number;
  /** default 127.0.0.1 */
  host?: string;
  /** default `nats-server` on PATH */
  binary?: string;
}

export interface NatsServerHandle {
  url: string;
  port: number;
  process: ChildProcess;
  /** SIGTERM, then waits for the exit */
  stop(): Promise<void>;
}

/** The environment config/nats.conf reads. */
export function natsEnv(runDir: string, port: number, host = '127.0.0.1'): Record<string, string> {
  return { XMC_NATS_HOST: host, XMC_NATS_PORT: String(port), XMC_NATS_STORE: join(resolve(runDir), 'nats', 'jetstream') };
}

/** Spawns nats-server with the project's config and waits until it accepts connections. */
export async function startNatsServer(options: NatsServerOptions): Promise<NatsServerHandle> {
  const port = options.port ?? await freePort();
  const host = options.host ?? '127.0.0.1';
  const dir = join(resolve(options.runDir), 'nats');
  mkdirSync(dir, { recursive: true });
  const log = openSync(join(dir, 'nats.log'), 'a');
  const child = spawn(options.binary ?? 'nats-server', ['-c', NATS_CONFIG()], {
    env: { ...process.env, ...natsEnv(options.runDir, port, host) },
    stdio: ['ignore', log, log],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const spawnError = new Promise<never>((_, fail) => child.once('error', fail));
  const url = `nats://${host}:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with code ${child.exitCode} (log: ${join(dir, 'nats.log')})`);
    try {
      const nc = await Promise.race([connect({ servers: url, reconnect: false, timeout: 1000 }), spawnError]);
      await nc.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('nats-server is not installed (apt-get install nats-server, or scripts/setup.sh)');
      if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`nats-server did not accept connections on ${url} within 15 s`); }
      await sleep(50);
    }
  }
  return {
    url, port, process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface RunConnection {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/** Connects for good: waits for the server at start, reconnects forever after (a restarted nats-server is rejoined). */
export async function connectRun(url: string, name: string): Promise<RunConnection> {
  const nc = await connect({
    servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 200, waitOnFirstConnect: true, timeout: 5000,
  });
  const jsm = await jetstreamManager(nc, { timeout: 10_000 });
  return { nc, js: jetstream(nc, { timeout: 10_000 }), jsm };
}

/** Creates the run's stream when it does not exist (idempotent). */
export async function ensureStream(jsm: JetStreamManager, s: RunSubjects): Promise<void> {
  try {
    await jsm.streams.info(s.stream);
    return;
  } catch {
    // not there yet
  }
  try {
    await jsm.streams.add({
      name: s.stream,
      subjects: [s.config, s.control, s.batch],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.New,
      max_msgs: -1,
      max_bytes: -1,
      num_replicas: 1,
      duplicate_window: 120_000_000_000, // 2 min in ns: a republished batch (same msgID) is dropped
    });
  } catch (err) {
    // Another process may have created it meanwhile.
    await jsm.streams.info(s.stream).catch(() => { throw err; });
  }
}

/** The data of the last message on `subject` in the run's stream, or null. */
export async function lastMessage(jsm: JetStreamManager, stream: string, subject: string): Promise<{ seq: number; data: Uint8Array } | null> {
  try {
    const m = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    return m ? { seq: m.seq, data: m.data } : null;
  } catch (err) {
    if (/no message found|not found/i.test((err as Error).message)) return null;
    throw err;
  }
}

/** Retries `fn` while it throws (the server restarting, a timeout), up to `ms`. */
export async function retrying<T>(what: string, fn: () => Promise<T>, ms = 120_000, log?: (m: string) => void): Promise<T> {
  const deadline = Date.now() + ms;
  let wait = 50;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
      log?.(`${what}: ${(err as Error).message}; retrying`);
      await sleep(wait);
      wait = Math.min(wait * 2, 1000);
    }
  }
}

/** One log line per event, prefixed with the time and the process's role. */
export function logger(role: string): (message: string) => void {
  return (message) => process.stderr.write(`${new Date().toISOString()} ${role}: ${message}\n`);
}
