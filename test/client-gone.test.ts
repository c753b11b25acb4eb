// The signal a request's waits take: aborted when its client leaves before the answer (mid-body, or
// with the body sent and the answer pending), and never for a request answered in full, where
// aborting would only build an error nobody reads on every request.
import t, { type Test } from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { clientGoneSignal } from '../gateway/client-gone.js';
import { S3Error } from '../gateway/s3/errors.js';

interface Seen {
  signal: AbortSignal;
  answer: () => void;
}

/** A server whose every request hands its signal to the test, with the way to answer it. */
async function server(t: Test): Promise<{ port: number; next: () => Promise<Seen> }> {
  const waiting: ((seen: Seen) => void)[] = [];
  const arrived: Seen[] = [];
  const srv = http.createServer((req, res) => {
    const seen = { signal: clientGoneSignal({ req, res }), answer: () => res.end('done') };
    const taker = waiting.shift();
    if (taker) taker(seen);
    else arrived.push(seen);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => {
    srv.closeAllConnections();
    srv.close();
  });
  const next = (): Promise<Seen> => {
    const seen = arrived.shift();
    return seen ? Promise.resolve(seen) : new Promise((resolve) => waiting.push(resolve));
  };
  return { port: (srv.address() as AddressInfo).port, next };
}

/** Resolves with the abort's reason, or with 'not aborted' after `ms`. */
async function abortedWithin(signal: AbortSignal, ms: number): Promise<unknown> {
  if (signal.aborted) return signal.reason;
  const reason = once(signal, 'abort').then(() => signal.reason);
  return Promise.race([reason, sleep(ms).then(() => 'not aborted')]);
}

t.test('a request answered in full is never aborted, also once its connection closes', async (t) => {
  const { port, next } = await server(t);
  const agent = new http.Agent({ keepAlive: false });
  t.teardown(() => agent.destroy());
  const response = new Promise<string>((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', method: 'PUT', agent }, (res) => {
      res.setEncoding('utf8');
      let body = '';
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end('payload');
  });
  const seen = await next();
  seen.answer();
  t.equal(await response, 'done');
  t.equal(await abortedWithin(seen.signal, 300), 'not aborted');
});

t.test('a client that leaves mid-body aborts the signal with RequestTimeout', async (t) => {
  const { port, next } = await server(t);
  const req = http.request({ port, host: '127.0.0.1', method: 'PUT', headers: { 'content-length': '1000' } });
  req.on('error', () => {});
  req.write('only part of it');
  const seen = await next();
  t.equal(seen.signal.aborted, false, 'not aborted while the body still comes');
  req.destroy();
  const reason = await abortedWithin(seen.signal, 2000);
  t.ok(reason instanceof S3Error, 'the reason is an S3 error');
  t.equal((reason as S3Error).code, 'RequestTimeout');
});

t.test('a client that leaves after its body, before the answer, aborts the signal', async (t) => {
  const { port, next } = await server(t);
  const req = http.request({ port, host: '127.0.0.1', method: 'PUT' });
  req.on('error', () => {});
  req.end('the whole body');
  const seen = await next();
  await sleep(50);
  t.equal(seen.signal.aborted, false, 'not aborted while the client waits for its answer');
  req.destroy();
  const reason = await abortedWithin(seen.signal, 2000);
  t.equal((reason as S3Error).code, 'RequestTimeout');
  seen.answer();
});
