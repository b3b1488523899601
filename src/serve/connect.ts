/**
 * Connections and binding rules of the inference service: loopback only
 * unless credentials are given.
 *
 *   HTTP   --host beyond loopback needs an API token (Authorization: Bearer)
 *   NATS   a server beyond loopback needs a token or a user and password;
 *          the service's own nats-server (all-in-one) listens on loopback only
 */
import { isIP } from 'node:net';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { OptionError } from '../errors.js';

/** NATS credentials: a token, or a user and password. */
export interface NatsAuth {
  token?: string;
  user?: string;
  pass?: string;
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

export function hasNatsAuth(auth: NatsAuth): boolean {
  return Boolean(auth.token) || (Boolean(auth.user) && auth.pass !== undefined);
}

/** Checks the credentials' form, and that a server beyond loopback gets some. */
export function checkNatsAuth(url: string, auth: NatsAuth): void {
  if (auth.token && (auth.user || auth.pass)) throw new OptionError('--nats-token', 'give a token or a user and password, not both');
  if ((auth.user === undefined) !== (auth.pass === undefined)) throw new OptionError(auth.user ? '--nats-pass' : '--nats-user', 'a NATS user needs a password and the other way round');
  for (const server of url.split(',')) {
    let host: string;
    try {
      host = new URL(server.includes('://') ? server : `nats://${server}`).hostname;
    } catch {
      throw new OptionError('--nats', `'${server}' is not a NATS URL`);
    }
    if (!isLoopback(host) && !hasNatsAuth(auth)) {
      throw new OptionError('--nats', `${server} is beyond loopback: give --nats-token (or XMC_NATS_TOKEN) or --nats-user/--nats-pass (XMC_NATS_USER/XMC_NATS_PASS)`);
    }
  }
}

/**
 * Connects for good: waits for the server at start, reconnects forever after
 * (a restarted nats-server is rejoined). No async stack traces: with them
 * nats.js captures two stacks (a RequestError and a TimeoutError) for every
 * request, which is a good part of the gateway's cost per shard request;
 * the errors keep their types (the gateway classifies them by type).
 */
export async function connectServe(url: string, name: string, auth: NatsAuth = {}): Promise<NatsConnection> {
  return connect({
    servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 200, waitOnFirstConnect: true, timeout: 5000, noAsyncTraces: true,
    ...(auth.token ? { token: auth.token } : {}),
    ...(auth.user ? { user: auth.user, pass: auth.pass } : {}),
  });
}

/** NATS credentials from the options, falling back to XMC_NATS_TOKEN / XMC_NATS_USER / XMC_NATS_PASS (secrets stay out of `ps`). */
export function natsAuthFrom(values: { 'nats-token'?: string; 'nats-user'?: string; 'nats-pass'?: string }, env = process.env): NatsAuth {
  const auth: NatsAuth = {};
  const token = values['nats-token'] ?? env.XMC_NATS_TOKEN;
  const user = values['nats-user'] ?? env.XMC_NATS_USER;
  const pass = values['nats-pass'] ?? env.XMC_NATS_PASS;
  if (token) auth.token = token;
  if (user !== undefined) auth.user = user;
  if (pass !== undefined) auth.pass = pass;
  return auth;
}
