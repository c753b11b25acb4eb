// A GET's client that stops reading is cut off after the body timeout; one that reads slowly is not,
// even while the kernel is still taking one big corked write (a GET writes a whole window, up to
// 8 MiB, as one writev). Real sockets on loopback.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { drainedOrStalled } from '../gateway/response-stall.js';
import { readSome } from './helpers/sockets.js';

const MiB = 1024 * 1024;
/** Far more than the kernel buffers of both ends of a loopback connection hold (about 6 MiB here). */
const BODY = 32 * MiB;
const IDLE_MS = 2000;

t.setTimeout(60_000);

interface Served {
  port: number;
  /** How the server's wait ended: 'drained' or 'closed'. */
  outcome: Promise<string>;
  close: () => Promise<void>;
}

/** A server that writes BODY bytes as one corked write and then waits as a GET does. */
async function serve(): Promise<Served> {
  let settle!: (how: string) => void;
  const outcome = new Promise<string>((resolve) => (settle = resolve));
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-length': String(BODY) });
    const piece = Buffer.alloc(MiB, 7);
    res.cork();
    for (let i = 0; i < BODY / MiB; i++) res.write(piece);
    res.uncork();
    const closed = once(res, 'close');
    void drainedOrStalled(res, closed, IDLE_MS).then(() => settle(res.destroyed ? 'closed' : 'drained'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    outcome,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A paused client: its bytes, and when its connection closed. */
async function client(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.pause();
  let received = 0;
  let closedAt = 0;
  socket.on('close', () => (closedAt = Date.now()));
  socket.write('GET / HTTP/1.1\r\nHost: test\r\n\r\n');
  const take = (bytes: number) => readSome(socket, bytes, (piece) => (received += piece.length));
  return { socket, take, received: () => received, closedAt: () => closedAt };
}

t.test('a client that reads slowly keeps its connection while one big write is still in the kernel', async (t) => {
  const served = await serve();
  t.teardown(served.close);
  const c = await client(served.port);
  t.teardown(() => c.socket.destroy());
  // 512 KiB every 150 ms (about 3 MiB/s) for twice the idle limit: the corked 32 MiB write is far
  // from done, so its writableLength never moves in that time.
  const until = Date.now() + 2 * IDLE_MS;
  while (Date.now() < until && !c.closedAt()) {
    await c.take(512 * 1024);
    await sleep(150);
  }
  t.equal(c.closedAt(), 0, `still connected after ${(c.received() / MiB).toFixed(1)} MiB read slowly`);
  t.ok(c.received() < BODY - 8 * MiB, 'the big write was still going on');
  while (c.received() < BODY && !c.closedAt()) await c.take(Math.min(MiB, BODY - c.received()));
  t.equal(await served.outcome, 'drained', 'the server saw the write drain');
  t.ok(c.received() >= BODY, 'and the client got every byte');
});

t.test('a client that stops reading is cut off after the idle limit', async (t) => {
  const served = await serve();
  t.teardown(served.close);
  const c = await client(served.port);
  t.teardown(() => c.socket.destroy());
  await c.take(64 * 1024);
  const stoppedAt = Date.now();
  t.equal(await served.outcome, 'closed', 'the server cut the connection');
  const waited = Date.now() - stoppedAt;
  t.ok(waited >= IDLE_MS - 100 && waited < IDLE_MS + 2000, `after ${waited} ms without progress (limit ${IDLE_MS} ms)`);
});
