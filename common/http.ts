// Minimal HTTP plumbing for the internal services (namespace, storage node, repair):
// a method+pattern router, bounded JSON bodies, typed error replies, and the one place where
// every request is authenticated (signed with the cluster secret, see internal-auth.ts).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { BLOB_LINES_TYPE, JSON_LINES_TYPE, JsonLinesError, decodeBlobLines, decodeJsonLines, encodeBlobLines, encodeJsonLines, type BlobItem } from './json-lines.js';
import { InternalAuthError, RequestVerifier, UNSIGNED_PAYLOAD, checkBodyDigest, type ClusterSecret } from './internal-auth.js';
import type { Logger } from './log.js';
import type { Registry } from './metrics.js';

/** An error an internal service answers with: HTTP status plus a stable machine-readable code. */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: Record<string, unknown>) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface ErrorBody {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export type Params = Record<string, string>;
export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, params: Params, url: URL) => Promise<void> | void;

interface Route {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: Handler;
}

/** Routes like "/objects/:bucket/:key" — each param matches one path segment and arrives URL-decoded. */
export class Router {
  private readonly routes: Route[] = [];

  on(method: string, path: string, handler: Handler): this {
    const names: string[] = [];
    const source = path
      .split('/')
      .map((part) => {
        if (!part.startsWith(':')) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        names.push(part.slice(1));
        return '([^/]+)';
      })
      .join('/');
    this.routes.push({ method, pattern: new RegExp(`^${source}$`), names, handler });
    return this;
  }

  async dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // Routes match the raw path: URL parsing would resolve "." and ".." segments (even
    // percent-encoded ones), and those are legitimate object keys and must not be rewritten.
    const raw = req.url ?? '/';
    const pathname = rawPath(raw);
    const url = new URL(raw.slice(pathname.length), 'http://internal');
    let pathMatched = false;
    for (const route of this.routes) {
      const match = route.pattern.exec(pathname);
      if (!match) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      const params: Params = {};
      route.names.forEach((name, i) => (params[name] = decodeParam(match[i + 1])));
      await route.handler(req, res, params, url);
      return;
    }
    throw pathMatched
      ? new HttpError(405, 'MethodNotAllowed', `${req.method} not allowed on ${pathname}`)
      : new HttpError(404, 'NotFound', `no route for ${req.method} ${pathname.slice(0, 200)}`);
  }
}

/** The request target's path, raw (undecoded, dot segments kept). */
function rawPath(target: string): string {
  const queryAt = target.indexOf('?');
  return queryAt === -1 ? target : target.slice(0, queryAt);
}

function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, 'InvalidArgument', `malformed percent-encoding in path segment "${raw.slice(0, 100)}"`);
  }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A batch's answer as JSON lines, one result per line (see json-lines.ts for why not one document). */
export function sendJsonLines(res: http.ServerResponse, status: number, items: readonly unknown[]): void {
  const bytes = encodeJsonLines(items);
  res.writeHead(status, { 'content-type': JSON_LINES_TYPE, 'content-length': bytes.length });
  res.end(bytes);
}

/** A batch's answer as blob lines (json-lines.ts): results that carry bytes send them raw. */
export function sendBlobLines(res: http.ServerResponse, status: number, items: readonly BlobItem[]): void {
  const bytes = encodeBlobLines(items);
  res.writeHead(status, { 'content-type': BLOB_LINES_TYPE, 'content-length': bytes.length });
  res.end(bytes);
}

/** The JSON body an error is answered with. */
export function errorBody(err: HttpError): ErrorBody {
  return { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) };
}

/** An item's error reply within a batch: what it would have had as a request of its own. */
export type BatchError = ErrorBody & { status: number };

/** One item's answer within a batch (POST /batch/... routes answer one per item, in order). */
export type BatchResult<R> = { ok: R } | { error: BatchError };

export interface BatchResponse<R> {
  results: BatchResult<R>[];
}

/** One batch item's answer: its result, or the error reply it would have had alone (`toHttp` maps a service's own errors). */
export async function settleBatchItem<R>(log: Logger, work: () => Promise<R>, toHttp: (err: unknown) => unknown = (err) => err): Promise<BatchResult<R>> {
  try {
    return { ok: await work() };
  } catch (thrown) {
    const err = toHttp(thrown);
    if (err instanceof HttpError) return { error: { status: err.status, ...errorBody(err) } };
    log.error('an item of a batch failed', { err });
    return { error: { status: 500, code: 'InternalError', message: err instanceof Error ? err.message : String(err) } };
  }
}

export function sendError(res: http.ServerResponse, err: HttpError): void {
  const body = errorBody(err);
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  sendJson(res, err.status, body);
}

/** Bodies whose signed digest was checked before dispatch (they were read whole to check it). */
const verifiedBodies = new WeakMap<http.IncomingMessage, Buffer>();

/** The request's body if authentication already read it whole (its digest was signed), else undefined. */
export function verifiedBody(req: http.IncomingMessage): Buffer | undefined {
  return verifiedBodies.get(req);
}

/** The whole body, refused (413 BodyTooLarge) past `limit` bytes. */
export async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, 'BodyTooLarge', `body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** Reads a JSON request body, refusing more than `limit` bytes so a client cannot make us buffer without bound. */
export async function readJson<T>(req: http.IncomingMessage, limit = 1024 * 1024): Promise<T> {
  const body = verifiedBody(req) ?? (await readBody(req, limit));
  if (body.length > limit) throw new HttpError(413, 'BodyTooLarge', `JSON body exceeds ${limit} bytes`);
  if (body.length === 0) return {} as T;
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch {
    throw new HttpError(400, 'MalformedJSON', 'request body is not valid JSON');
  }
}

/** A JSON lines request body (see json-lines.ts), refused past `limit` bytes like readJson. */
export function readJsonLines(req: http.IncomingMessage, limit: number): Promise<unknown[]> {
  return readLines(req, limit, decodeJsonLines);
}

/** A blob lines request body (see json-lines.ts), refused past `limit` bytes like readJson. */
export function readBlobLines(req: http.IncomingMessage, limit: number): Promise<BlobItem[]> {
  return readLines(req, limit, decodeBlobLines);
}

async function readLines<T>(req: http.IncomingMessage, limit: number, decode: (body: Buffer) => T[]): Promise<T[]> {
  const body = verifiedBody(req) ?? (await readBody(req, limit));
  if (body.length > limit) throw new HttpError(413, 'BodyTooLarge', `body exceeds ${limit} bytes`);
  try {
    return decode(body);
  } catch (err) {
    if (err instanceof JsonLinesError) throw new HttpError(400, 'MalformedJSON', `request body: ${err.message}`);
    throw err;
  }
}

export interface ServiceServerOptions {
  service: string;
  router: Router;
  log: Logger;
  metrics: Registry;
  /** Extra fields reported by GET /health (no secrets: /health answers anyone). */
  health?: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** Every request but GET /health and GET /metrics must be signed with it. */
  secret: ClusterSecret;
  /** Largest body a signed digest may cover (default 1 MiB): such a body is read and checked before dispatch. */
  maxSignedBodyBytes?: number;
  /** The Host this service is addressed by, once known: requests signed for another are refused (see VerifierOptions.host). */
  host?: () => string | undefined;
}

/** Liveness probes and Prometheus scrapers cannot sign: these answer anyone and carry no secrets. */
function isOpenRoute(req: http.IncomingMessage): boolean {
  if (req.method !== 'GET') return false;
  const pathname = rawPath(req.url ?? '/');
  return pathname === '/health' || pathname === '/metrics';
}

/** Refuses (InternalAuthError) an unsigned, mis-signed, stale or replayed request; a signed body is read and checked here. */
async function authenticate(req: http.IncomingMessage, verifier: RequestVerifier, maxBody: number): Promise<void> {
  const contentSha256 = verifier.verify({ method: req.method ?? '', target: req.url ?? '/', headers: req.headers });
  if (contentSha256 === UNSIGNED_PAYLOAD) return;
  // Most requests (GET, DELETE) have no body: nothing to wait for.
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  const body = hasBody ? await readBody(req, maxBody) : Buffer.alloc(0);
  checkBodyDigest(contentSha256, body);
  if (hasBody) verifiedBodies.set(req, body);
}

/** Refused internal requests are logged at most once per interval (a scanner must not flood the log). */
const AUTH_LOG_INTERVAL_MS = 10_000;

/** Answers a refused request (401/403 JSON), counts it by code and logs now and then. */
function refusalReporter(opts: ServiceServerOptions): (req: http.IncomingMessage, res: http.ServerResponse, err: InternalAuthError) => void {
  const refused = opts.metrics.counter('cairn_internal_auth_refused_total', 'Requests refused by internal authentication, by reason');
  let lastLine = 0;
  let sinceLastLine = 0;
  return (req, res, err) => {
    refused.inc({ code: err.code });
    sinceLastLine++;
    if (Date.now() - lastLine >= AUTH_LOG_INTERVAL_MS) {
      const from = req.socket.remoteAddress;
      opts.log.warn('refused an unauthenticated internal request', { code: err.code, method: req.method, path: (req.url ?? '').slice(0, 200), from, refusedSinceLastLine: sinceLastLine });
      lastLine = Date.now();
      sinceLastLine = 0;
    }
    // An unread body of a refused request is not drained: the connection closes after the reply.
    if (!req.complete) res.setHeader('connection', 'close');
    sendError(res, new HttpError(err.status, err.code, err.message));
  };
}

/**
 * An http.Server that serves the router plus GET /health and GET /metrics, counts requests,
 * and turns thrown HttpErrors (and unexpected errors) into JSON error replies.
 */
export function createServiceServer(opts: ServiceServerOptions): http.Server {
  const requests = opts.metrics.counter('cairn_http_requests_total', 'HTTP requests served');
  const latency = opts.metrics.histogram('cairn_http_request_seconds', 'HTTP request latency');
  const verifier = new RequestVerifier(opts.secret, { host: opts.host });
  const maxBody = opts.maxSignedBodyBytes ?? 1024 * 1024;
  const onRefused = refusalReporter(opts);
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    if (!isOpenRoute(req)) await authenticate(req, verifier, maxBody);
    await opts.router.dispatch(req, res);
  };
  opts.router.on('GET', '/health', async (_req, res) => {
    sendJson(res, 200, { status: 'ok', service: opts.service, pid: process.pid, ...(opts.health ? await opts.health() : {}) });
  });
  opts.router.on('GET', '/metrics', (_req, res) => {
    const text = opts.metrics.render();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(text);
  });
  const server = http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      requests.inc({ method: req.method ?? '?', status: String(res.statusCode) });
      latency.observe(seconds, { method: req.method ?? '?' });
    });
    handle(req, res).catch((err: unknown) => {
      if (err instanceof InternalAuthError) {
        onRefused(req, res, err);
        return;
      }
      if (err instanceof HttpError) {
        sendError(res, err);
        return;
      }
      opts.log.error('request failed', { method: req.method, url: req.url, err });
      sendError(res, new HttpError(500, 'InternalError', err instanceof Error ? err.message : String(err)));
    });
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  return server;
}

/** Listens and returns the server's URL (https:// for a TLS server). */
export async function listen(server: http.Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${server instanceof tls.Server ? 'https' : 'http'}://${shownHost}:${address.port}`;
}

export async function close(server: http.Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 2000).unref();
  });
}

/** Raises a typed error from a non-2xx JSON reply of an internal service. */
export async function errorFromResponse(status: number, bodyText: string): Promise<HttpError> {
  try {
    const body = JSON.parse(bodyText) as ErrorBody;
    return new HttpError(status, body.code ?? 'Unknown', body.message ?? bodyText, body.details);
  } catch {
    return new HttpError(status, status >= 500 ? 'InternalError' : 'BadRequest', bodyText.slice(0, 200));
  }
}
