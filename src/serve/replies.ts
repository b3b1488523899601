/**
 * Request/reply over one wildcard inbox subscription, for the gateway's
 * shard requests: the same wire exchange as nats.js `nc.request` (PUB with a
 * reply subject; a reply, or the server's no-responders status), without an
 * Error object per request.
 *
 * Why not nc.request: nats.js 3 builds a RequestError("cancelled") for every
 * request it settles, successful ones included (RequestOne.cancel), and a
 * stack trace is captured with each; in the gateway's CPU profile that was
 * about 50 us of the ~760 us a request cost. Here an outcome is a value:
 * the reply, 'no_responders' (the server's 503 status: nothing subscribes to
 * the subject), 'timeout', or 'closed' (the mux was closed).
 *
 *   inbox   _INBOX.<nuid>.*  (one subscription; nats.js renews it on reconnect)
 *   reply   _INBOX.<nuid>.<n>, n counting requests
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';

export type ReplyOutcome = Msg | 'no_responders' | 'timeout' | 'closed';

interface Waiting {
  resolve(outcome: ReplyOutcome): void;
  timer: NodeJS.Timeout;
}

export class ReplyMux {
  private readonly prefix: string;
  private readonly waiting = new Map<string, Waiting>();
  private readonly sub: Subscription;
  private next = 0;
  private closed = false;

  constructor(private readonly nc: NatsConnection) {
    this.prefix = `${createInbox()}.`;
    this.sub = nc.subscribe(`${this.prefix}*`, { callback: (err, msg) => { if (!err) this.dispatch(msg); } });
  }

  /** Publishes `data` on `subject` with a reply subject of this mux; resolves to the first reply, or why there is none. */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<ReplyOutcome> {
    if (this.closed) return Promise.resolve('closed');
    const token = String(this.next++);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(token);
        resolve('timeout');
      }, timeoutMs);
      this.waiting.set(token, { resolve, timer });
      this.nc.publish(subject, data, { reply: this.prefix + token });
    });
  }

  /** Settles every waiting request as 'closed' and unsubscribes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.resolve('closed');
    }
    this.waiting.clear();
    if (!this.nc.isClosed()) this.sub.unsubscribe();
  }

  private dispatch(msg: Msg): void {
    const token = msg.subject.slice(this.prefix.length);
    const w = this.waiting.get(token);
    if (!w) return; // late: the request timed out
    this.waiting.delete(token);
    clearTimeout(w.timer);
    // The server's "no responders" status: an empty message with a 503 status header (checked in this order: headers parse lazily).
    w.resolve(msg.data.length === 0 && msg.headers?.code === 503 ? 'no_responders' : msg);
  }
}
