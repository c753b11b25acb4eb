// The bench's lean HTTP/1.1 client (bench/s3/lean-http.ts) against real servers on loopback: node's
// own http server for the framings it sends (Content-Length, chunked, HEAD, Connection: close) and
// raw net servers for what a well-behaved one never does (a body cut short, silence, a keep-alive
// connection closed while idle, bytes split at every position).
import t, { type Test } from 'tap';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { ChunkedDecoder, LeanPool } from '../bench/s3/lean-http.js';

async function listen(t: Test, server: net.Server): Promise<string> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy();
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function pool(t: Test, origin: string, connections = 4, timeoutMs = 5_000): LeanPool {
  const p = new LeanPool(origin, { connections, timeoutMs });
  t.teardown(() => p.destroy());
  return p;
}

/** A server whose handler sees every request, and which counts the connections it accepted. */
async function httpServer(t: Test, handle: http.RequestListener): Promise<{ origin: string; sockets: () => number }> {
  const server = http.createServer(handle);
  let sockets = 0;
  server.on('connection', () => sockets++);
  return { origin: await listen(t, server), sockets: () => sockets };
}

t.test('GET with Content-Length: the body reaches the sink, the connection is kept', async (t) => {
  const body = Buffer.alloc(200_000, 7);
  const { origin, sockets } = await httpServer(t, (req, res) => {
    res.setHeader('x-path', req.url ?? '');
    res.setHeader('x-host', req.headers.host ?? '');
    res.end(body);
  });
  const p = pool(t, origin, 1);
  for (let i = 0; i < 3; i++) {
    let got = 0;
    const res = await p.request({ method: 'GET', path: `/b/k${i}?x=1`, headers: { 'x-amz-date': 'd' }, sink: (status) => (status === 200 ? (c) => (got += c.length) : undefined) });
    t.equal(res.statusCode, 200);
    t.equal(got, body.length, 'every body byte went to the sink');
    t.equal(res.body.length, 0, 'nothing collected when a sink took the body');
    t.equal(res.headers['x-path'], `/b/k${i}?x=1`, 'the path is sent as given');
    t.equal(res.headers['x-host'], origin.slice('http://'.length), 'host header from the origin');
  }
  t.equal(sockets(), 1, 'three requests on one kept-alive connection');
});

t.test('a body is collected when no sink takes it; chunked responses are decoded', async (t) => {
  const { origin } = await httpServer(t, (req, res) => {
    res.statusCode = req.url === '/missing' ? 404 : 200;
    // No Content-Length: node sends it chunked.
    res.write('<Error><Code>');
    res.write(req.url === '/missing' ? 'NoSuchKey' : 'Fine');
    res.end('</Code></Error>');
  });
  const p = pool(t, origin, 1);
  const miss = await p.request({ method: 'GET', path: '/missing', headers: {}, sink: (status) => (status === 200 ? () => t.fail('sink for a 404') : undefined) });
  t.equal(miss.statusCode, 404);
  t.equal(miss.headers['transfer-encoding'], 'chunked');
  t.equal(miss.body.toString(), '<Error><Code>NoSuchKey</Code></Error>');
  const ok = await p.request({ method: 'GET', path: '/fine', headers: {} });
  t.equal(ok.body.toString(), '<Error><Code>Fine</Code></Error>', 'the next response on the same connection parses');
});

t.test('PUT sends its body with Content-Length; HEAD reads no body', async (t) => {
  const received: { method: string; length: string | undefined; bytes: number }[] = [];
  const { origin, sockets } = await httpServer(t, (req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      received.push({ method: req.method!, length: req.headers['content-length'], bytes });
      res.setHeader('content-length', '12345'); // what HEAD announces, without a body
      if (req.method === 'HEAD') res.end();
      else res.end(Buffer.alloc(12345));
    });
  });
  const p = pool(t, origin, 1);
  const body = Buffer.alloc(70_000, 1);
  t.equal((await p.request({ method: 'PUT', path: '/b/k', headers: {}, body })).statusCode, 200);
  t.equal((await p.request({ method: 'PUT', path: '/b/signed', headers: { 'content-length': '3' }, body: Buffer.from('abc') })).statusCode, 200);
  const head = await p.request({ method: 'HEAD', path: '/b/k', headers: {} });
  t.equal(head.headers['content-length'], '12345');
  t.equal(head.body.length, 0);
  t.equal((await p.request({ method: 'PUT', path: '/b/empty', headers: {} })).statusCode, 200);
  t.same(received, [
    { method: 'PUT', length: '70000', bytes: 70_000 },
    { method: 'PUT', length: '3', bytes: 3 },
    { method: 'HEAD', length: undefined, bytes: 0 },
    { method: 'PUT', length: '0', bytes: 0 },
  ], 'one content-length each (the caller\'s own when it signed one)');
  t.equal(sockets(), 1, 'HEAD left the connection in step');
});

t.test('Connection: close is honoured, and the next request opens a new connection', async (t) => {
  const { origin, sockets } = await httpServer(t, (req, res) => {
    if (req.url === '/close') res.setHeader('connection', 'close');
    res.end('x');
  });
  const p = pool(t, origin, 1);
  t.equal((await p.request({ method: 'GET', path: '/close', headers: {} })).body.toString(), 'x');
  t.equal((await p.request({ method: 'GET', path: '/after', headers: {} })).body.toString(), 'x');
  t.equal(sockets(), 2);
});

t.test('at most `connections` at once; the rest wait their turn and all complete', async (t) => {
  let active = 0;
  let most = 0;
  const { origin, sockets } = await httpServer(t, (_req, res) => {
    active++;
    most = Math.max(most, active);
    setTimeout(() => {
      active--;
      res.end('ok');
    }, 20);
  });
  const p = pool(t, origin, 2);
  const answers = await Promise.all(Array.from({ length: 7 }, (_, i) => p.request({ method: 'GET', path: `/${i}`, headers: {} })));
  t.same(answers.map((a) => a.body.toString()), Array(7).fill('ok'));
  t.equal(most, 2, 'two requests in the server at most');
  t.equal(sockets(), 2, 'two connections, reused');
});

t.test('requests waiting for a connection: an abort ends the wait, destroy fails them', async (t) => {
  const answers: (() => void)[] = [];
  const paths: string[] = [];
  const { origin, sockets } = await httpServer(t, (req, res) => {
    paths.push(req.url ?? '');
    answers.push(() => res.end('ok'));
  });
  const nextAnswer = async (): Promise<() => void> => {
    while (answers.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    return answers.shift()!;
  };
  const p = new LeanPool(origin, { connections: 1, timeoutMs: 5_000 });
  const first = p.request({ method: 'GET', path: '/1', headers: {} });
  const abort = new AbortController();
  const second = p.request({ method: 'GET', path: '/2', headers: {}, signal: abort.signal });
  abort.abort(new Error('not waiting any longer'));
  (await nextAnswer())();
  t.equal((await first).body.toString(), 'ok');
  await t.rejects(second, /not waiting any longer/, 'the aborted one never went out');
  const third = p.request({ method: 'GET', path: '/3', headers: {} });
  const fourth = p.request({ method: 'GET', path: '/4', headers: {} });
  await nextAnswer(); // /3 is in the server, unanswered; /4 waits for the connection
  await p.destroy();
  await t.rejects(fourth, /pool destroyed/, 'a waiting request fails when the pool goes');
  await t.rejects(third, /closed before the response was complete/, 'so does a running one');
  t.same(paths, ['/1', '/3']);
  t.equal(sockets(), 1, 'the connection /2 waited for went back unused');
});

t.test('failures end the request instead of hanging it', async (t) => {
  t.test('a body cut short by the server', async (t) => {
    const server = net.createServer((socket) => socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..')));
    const p = pool(t, await listen(t, server), 1);
    await t.rejects(p.request({ method: 'GET', path: '/', headers: {} }), /closed before the response was complete/);
  });
  t.test('a server that never answers: the timeout', async (t) => {
    const server = net.createServer(() => undefined);
    const p = pool(t, await listen(t, server), 1, 300);
    const started = Date.now();
    await t.rejects(p.request({ method: 'GET', path: '/', headers: {} }), /no complete response within 300 ms/);
    t.ok(Date.now() - started < 3_000);
  });
  t.test('an abort signal', async (t) => {
    const server = net.createServer(() => undefined);
    const p = pool(t, await listen(t, server), 1);
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('given up')), 50);
    await t.rejects(p.request({ method: 'GET', path: '/', headers: {}, signal: abort.signal }), /given up/);
    await t.rejects(p.request({ method: 'GET', path: '/', headers: {}, signal: abort.signal }), /given up/, 'an aborted signal fails at once');
  });
  t.test('garbage instead of a status line', async (t) => {
    const server = net.createServer((socket) => socket.once('data', () => socket.write('SSH-2.0-OpenSSH\r\n\r\n')));
    const p = pool(t, await listen(t, server), 1);
    await t.rejects(p.request({ method: 'GET', path: '/', headers: {} }), /not an HTTP\/1.x status line/);
  });
  t.test('connection refused', async (t) => {
    const server = net.createServer();
    const origin = await listen(t, server);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const p = pool(t, origin, 1);
    await t.rejects(p.request({ method: 'GET', path: '/', headers: {} }), /ECONNREFUSED/);
  });
});

t.test('a kept-alive connection the server closed while idle: the request goes again on a new one', async (t) => {
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    socket.once('data', () => {
      // Answers, then closes the idle connection a moment later, as a keep-alive timeout does.
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      setTimeout(() => socket.end(), 20);
    });
  });
  const p = pool(t, await listen(t, server), 1);
  t.equal((await p.request({ method: 'GET', path: '/', headers: {} })).body.toString(), 'ok');
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal((await p.request({ method: 'GET', path: '/', headers: {} })).body.toString(), 'ok');
  t.equal(accepted, 2);
});

t.test('a kept-alive connection that closes as the request arrives: the request goes again once', async (t) => {
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    let requests = 0;
    // The race a keep-alive timeout makes: the server closes just as the client reuses the connection.
    socket.on('data', () => (++requests === 1 ? socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok') : socket.destroy()));
  });
  const p = pool(t, await listen(t, server), 1);
  t.equal((await p.request({ method: 'GET', path: '/', headers: {} })).body.toString(), 'ok');
  t.equal((await p.request({ method: 'GET', path: '/', headers: {} })).body.toString(), 'ok', 'answered on a fresh connection');
  t.equal(accepted, 2);
});

t.test('a response split at every byte parses the same', async (t) => {
  const wire = Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: t\r\n\r\n');
  for (const step of [1, 2, 3, 7, wire.length]) {
    const server = net.createServer((socket) =>
      socket.once('data', async () => {
        for (let at = 0; at < wire.length; at += step) {
          socket.write(wire.subarray(at, at + step));
          await new Promise((resolve) => setImmediate(resolve));
        }
      }),
    );
    const p = pool(t, await listen(t, server), 1);
    const res = await p.request({ method: 'GET', path: '/', headers: {} });
    t.equal(res.statusCode, 200, `status, ${step}-byte pieces`);
    t.equal(res.headers['x-a'], 'b');
    t.equal(res.body.toString(), 'hello world', `body, ${step}-byte pieces`);
  }
});

t.test('ChunkedDecoder refuses a bad size line', async (t) => {
  t.throws(() => new ChunkedDecoder().push(Buffer.from('zz\r\n'), () => undefined), /bad chunk size line/);
  t.throws(() => new ChunkedDecoder().push(Buffer.from('1'.repeat(2000)), () => undefined), /chunk size line too long/);
});
