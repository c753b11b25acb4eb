// A minimal HTTP/1.1 keep-alive client for the load generator. On a 2-core box the client shares
// the CPU with the servers it measures: undici cost ~75 µs per 4 KiB GET (its pool, request and
// body-stream objects, a wasm parser), which put the load generator at 20-30% of the machine when
// it drove Cairn. This one writes each request in one syscall, parses the response head with
// indexOf, and hands body bytes straight to the caller (~45 µs per GET, SigV4 signing included).
// It speaks just what the bench needs: one request at a time per connection (no pipelining),
// Content-Length, chunked and read-to-close bodies, HEAD, Connection: close, timeouts and abort.
import net from 'node:net';

export interface LeanRequest {
  method: string;
  /** As sent: encoded path and query. */
  path: string;
  /** Lower-case names; host is added, and content-length when a body (or a PUT/POST) has none. */
  headers: Record<string, string>;
  body?: Buffer;
  signal?: AbortSignal;
  /**
   * Called once the head has arrived: a function to take the body's bytes as they come, or
   * undefined to have them collected into `LeanResponse.body`.
   */
  sink?: (status: number) => ((chunk: Buffer) => void) | undefined;
}

export interface LeanResponse {
  statusCode: number;
  /** Lower-case names; a repeated header keeps its last value. */
  headers: Record<string, string>;
  /** The collected body (empty when a sink took it, or there was none). */
  body: Buffer;
}

export interface LeanPoolOptions {
  /** Most connections open at once; requests beyond wait for one (first come, first served). */
  connections: number;
  /** A request with no complete response after this long fails and closes its connection. */
  timeoutMs: number;
}

export class LeanHttpError extends Error {}

/** Most bytes of a response head; a larger one is refused rather than buffered without end. */
const MAX_HEAD_BYTES = 64 * 1024;

export class LeanPool {
  private readonly host: string;
  private readonly port: number;
  private readonly hostHeader: string;
  private readonly idle: Connection[] = [];
  /** Every open connection, idle or busy, for destroy(). */
  private readonly all = new Set<Connection>();
  private readonly waiting: { resolve: (conn: Connection) => void; reject: (err: Error) => void }[] = [];
  private closed = false;

  constructor(origin: string, private readonly opts: LeanPoolOptions) {
    const url = new URL(origin);
    if (url.protocol !== 'http:') throw new Error(`lean-http speaks plain http only, not ${url.protocol}`);
    if (!(opts.connections >= 1)) throw new RangeError('connections must be at least 1');
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port || 80);
    this.hostHeader = url.host;
  }

  async request(req: LeanRequest): Promise<LeanResponse> {
    for (let attempt = 0; ; attempt++) {
      if (req.signal?.aborted) throw abortError(req.signal);
      const conn = await this.acquire();
      const reused = conn.exchanges > 0;
      try {
        // Given up while it waited for a connection: the connection goes back unused.
        if (req.signal?.aborted) throw abortError(req.signal);
        return await conn.exchange(req, this.hostHeader, this.opts.timeoutMs);
      } catch (err) {
        // A kept-alive connection the server closed while idle fails before any byte comes back;
        // the request never reached it, so it goes once more on a fresh connection (as undici does).
        if (attempt === 0 && reused && !conn.answered && !req.signal?.aborted && !this.closed) continue;
        throw err;
      } finally {
        this.release(conn);
      }
    }
  }

  /** Closes every connection; requests still running or waiting for a connection fail. */
  async destroy(): Promise<void> {
    this.closed = true;
    this.idle.length = 0;
    for (const conn of this.all) conn.destroy();
    this.all.clear();
    for (const waiter of this.waiting.splice(0)) waiter.reject(new LeanHttpError('pool destroyed'));
  }

  private acquire(): Promise<Connection> {
    if (this.closed) return Promise.reject(new LeanHttpError('pool destroyed'));
    for (let conn = this.idle.pop(); conn; conn = this.idle.pop()) {
      if (conn.reusable) return Promise.resolve(conn);
      this.drop(conn); // closed by the server while idle
    }
    if (this.all.size < this.opts.connections) return Promise.resolve(this.connect());
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private release(conn: Connection): void {
    if (!conn.reusable || this.closed) {
      this.drop(conn);
      // A request waiting for a connection gets a fresh one in place of the one that went.
      const next = this.waiting.shift();
      if (next && !this.closed) next.resolve(this.connect());
      return;
    }
    const next = this.waiting.shift();
    if (next) next.resolve(conn);
    else this.idle.push(conn);
  }

  private connect(): Connection {
    const conn = new Connection(this.host, this.port);
    this.all.add(conn);
    return conn;
  }

  private drop(conn: Connection): void {
    conn.destroy();
    this.all.delete(conn);
  }
}

interface Exchange {
  method: string;
  resolve: (res: LeanResponse) => void;
  reject: (err: Error) => void;
  sinkFor: LeanRequest['sink'];
  /** Head bytes not yet complete. */
  head: Buffer | undefined;
  status: number;
  headers: Record<string, string>;
  sink: ((chunk: Buffer) => void) | undefined;
  collected: Buffer[];
  body: BodyFraming | undefined;
}

type BodyFraming =
  | { kind: 'length'; left: number }
  | { kind: 'chunked'; decoder: ChunkedDecoder }
  | { kind: 'close' };

class Connection {
  private readonly socket: net.Socket;
  private current: Exchange | undefined;
  private failure: Error | undefined;
  /** False once the server asked to close, the connection failed, or a response was cut short. */
  reusable = true;
  /** Exchanges completed on this connection. */
  exchanges = 0;
  /** Whether any byte of the current exchange's response has arrived. */
  answered = false;

  constructor(host: string, port: number) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on('data', (data: Buffer) => this.onData(data));
    this.socket.on('end', () => this.onEnd());
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(new LeanHttpError('connection closed before the response was complete')));
  }

  exchange(req: LeanRequest, hostHeader: string, timeoutMs: number): Promise<LeanResponse> {
    if (this.failure) return Promise.reject(this.failure);
    this.answered = false;
    return new Promise<LeanResponse>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new LeanHttpError(`no complete response within ${timeoutMs} ms`)), timeoutMs);
      const onAbort = (): void => this.fail(abortError(req.signal!));
      req.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (): void => {
        this.exchanges++;
        clearTimeout(timer);
        req.signal?.removeEventListener('abort', onAbort);
        this.current = undefined;
      };
      this.current = {
        method: req.method,
        resolve: (res) => (settle(), resolve(res)),
        reject: (err) => (settle(), reject(err)),
        sinkFor: req.sink,
        head: undefined,
        status: 0,
        headers: {},
        sink: undefined,
        collected: [],
        body: undefined,
      };
      let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${hostHeader}\r\n`;
      for (const [name, value] of Object.entries(req.headers)) head += `${name}: ${value}\r\n`;
      const needsLength = req.body !== undefined || req.method === 'PUT' || req.method === 'POST';
      if (needsLength && req.headers['content-length'] === undefined) head += `content-length: ${req.body?.length ?? 0}\r\n`;
      head += '\r\n';
      // One writev for head and body: with Nagle off, two writes would be two packets.
      this.socket.cork();
      this.socket.write(head, 'latin1');
      if (req.body !== undefined && req.body.length > 0) this.socket.write(req.body);
      this.socket.uncork();
    });
  }

  destroy(): void {
    this.reusable = false;
    this.socket.destroy();
  }

  private onData(data: Buffer): void {
    this.answered = true;
    const ex = this.current;
    if (!ex) {
      // Bytes nobody asked for: the connection is out of step and cannot be trusted again.
      this.fail(new LeanHttpError('unexpected bytes between responses'));
      return;
    }
    try {
      if (ex.body === undefined) {
        const rest = this.readHead(ex, data);
        if (rest === undefined) return;
        data = rest;
      }
      this.readBody(ex, data);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Completes the head; returns the bytes after it, or undefined while it is incomplete. */
  private readHead(ex: Exchange, data: Buffer): Buffer | undefined {
    const all = ex.head ? Buffer.concat([ex.head, data]) : data;
    const end = all.indexOf('\r\n\r\n', Math.max(0, (ex.head?.length ?? 0) - 3), 'latin1');
    if (end < 0) {
      if (all.length > MAX_HEAD_BYTES) throw new LeanHttpError(`response head over ${MAX_HEAD_BYTES} bytes`);
      ex.head = all;
      return undefined;
    }
    ex.head = undefined;
    const lines = all.toString('latin1', 0, end).split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
    if (!status) throw new LeanHttpError(`not an HTTP/1.x status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    ex.status = Number(status[1]);
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i]!.indexOf(':');
      if (colon > 0) ex.headers[lines[i]!.slice(0, colon).trim().toLowerCase()] = lines[i]!.slice(colon + 1).trim();
    }
    const rest = all.subarray(end + 4);
    if (ex.status >= 100 && ex.status < 200) {
      // An interim response (100 Continue): the real one follows.
      ex.headers = {};
      return rest.length > 0 ? this.readHead(ex, rest) : undefined;
    }
    if (/\bclose\b/i.test(ex.headers.connection ?? '')) this.reusable = false;
    ex.body = framing(ex);
    ex.sink = ex.sinkFor?.(ex.status);
    return rest;
  }

  private readBody(ex: Exchange, data: Buffer): void {
    const framingOf = ex.body!;
    if (framingOf.kind === 'length') {
      const take = data.length > framingOf.left ? data.subarray(0, framingOf.left) : data;
      if (data.length > take.length) throw new LeanHttpError('bytes after the response body');
      framingOf.left -= take.length;
      this.deliver(ex, take);
      if (framingOf.left === 0) this.finish(ex);
    } else if (framingOf.kind === 'chunked') {
      const done = framingOf.decoder.push(data, (piece) => this.deliver(ex, piece));
      if (done) this.finish(ex);
    } else {
      this.deliver(ex, data);
    }
  }

  private deliver(ex: Exchange, chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (ex.sink) ex.sink(chunk);
    else ex.collected.push(chunk);
  }

  private finish(ex: Exchange): void {
    ex.resolve({ statusCode: ex.status, headers: ex.headers, body: ex.collected.length === 1 ? ex.collected[0]! : Buffer.concat(ex.collected) });
  }

  private onEnd(): void {
    const ex = this.current;
    // A body without length or chunking runs until the server closes.
    if (ex?.body?.kind === 'close') {
      this.reusable = false;
      this.finish(ex);
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.reusable = false;
    this.socket.destroy();
    this.current?.reject(err);
  }
}

function framing(ex: Exchange): BodyFraming {
  if (ex.method === 'HEAD' || ex.status === 204 || ex.status === 304) return { kind: 'length', left: 0 };
  if (/\bchunked\b/i.test(ex.headers['transfer-encoding'] ?? '')) return { kind: 'chunked', decoder: new ChunkedDecoder() };
  const length = ex.headers['content-length'];
  if (length !== undefined) {
    if (!/^\d+$/.test(length)) throw new LeanHttpError(`bad content-length ${JSON.stringify(length)}`);
    return { kind: 'length', left: Number(length) };
  }
  return { kind: 'close' };
}

/** Decodes a chunked body as it arrives (chunk extensions ignored, trailers skipped). */
export class ChunkedDecoder {
  /** Bytes left of the current chunk's data; -1 while reading a size line. */
  private left = -1;
  /** CRLF bytes to skip after a chunk's data. */
  private crlf = 0;
  private line = '';
  private trailers = false;

  /** Feeds bytes; `out` gets the data; true once the last chunk and its trailers have ended. */
  push(data: Buffer, out: (piece: Buffer) => void): boolean {
    let at = 0;
    while (at < data.length) {
      if (this.crlf > 0) {
        const skip = Math.min(this.crlf, data.length - at);
        this.crlf -= skip;
        at += skip;
        continue;
      }
      if (this.left > 0) {
        const take = Math.min(this.left, data.length - at);
        out(data.subarray(at, at + take));
        this.left -= take;
        at += take;
        if (this.left === 0) {
          this.left = -1;
          this.crlf = 2;
        }
        continue;
      }
      const newline = data.indexOf(10, at);
      const end = newline < 0 ? data.length : newline;
      this.line += data.toString('latin1', at, end);
      if (this.line.length > 1024) throw new LeanHttpError('chunk size line too long');
      at = end;
      if (newline < 0) break;
      at = newline + 1;
      const line = this.line.replace(/\r$/, '');
      this.line = '';
      if (this.trailers) {
        if (line === '') return true;
        continue;
      }
      const size = /^([0-9a-fA-F]+)/.exec(line);
      if (!size) throw new LeanHttpError(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
      const n = parseInt(size[1]!, 16);
      if (n === 0) this.trailers = true;
      else this.left = n;
    }
    return false;
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new LeanHttpError('aborted');
}
