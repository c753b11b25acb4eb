// The S3 REST API over koa. One middleware chain for every request: request id and common headers,
// metrics, S3 XML errors, CORS, SigV4 authentication (who is asking), routing, authorization (may
// they: authorize.ts), then the operation's own handler (one file each in operations/).
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { pooledRandomBytes } from '../common/random.js';
import Koa from 'koa';
import { S3Error, s3Error, S3_ERROR_CODES, type S3ErrorCode } from './s3/errors.js';
import { HttpError } from '../common/http.js';
import { errorXml } from './s3/xml.js';
import { anonymousAuth, claimedAccessKeyId, isAnonymousRequest, verifyRequest, type AuthContext } from './auth/sigv4.js';
import { ANONYMOUS, IdentityCache, type Principal } from './auth/identities.js';
import { authorize, type Access } from './authorize.js';
import { validateKey, type RequestTarget } from './request-target.js';
import { requestTarget } from './virtual-host.js';
import { cors } from './cors.js';
import { leanHeaderSet } from './lean-header-set.js';
import { resolveOperation } from './operations/index.js';
import { exposeCaches, type GatewayServices } from './services.js';

export interface S3State {
  requestId: string;
  target: RequestTarget;
  operation: string;
  auth: AuthContext;
  /** Who is asking: root, a user, or anonymous (set by authenticate). */
  principal: Principal;
  /** What they may do on the request's bucket (set by authorize). */
  access: Access;
  /** The resolved operation's handler, run once authorize has let the request through. */
  handler: OperationHandler;
}

export type S3Context = Koa.ParameterizedContext<S3State>;
export type OperationHandler = (ctx: S3Context, services: GatewayServices) => Promise<void>;

/** A reply with no body but an explicit status (koa would turn a null body into 204). */
export function sendEmpty(ctx: S3Context, status: number): void {
  ctx.status = status;
  if (status === 204 || status === 304) {
    ctx.body = null;
    return;
  }
  ctx.body = Buffer.alloc(0);
  ctx.remove('Content-Type');
}

export function createGatewayApp(services: GatewayServices): Koa<S3State> {
  const app = new Koa<S3State>();
  leanHeaderSet(app.response);
  app.on('error', (err: Error & { code?: string }) => {
    // Clients that hang up mid-response are normal; everything else is worth a line.
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'ERR_STREAM_PREMATURE_CLOSE') return;
    services.log.warn('response failed', { err });
  });
  app.use(commonHeaders(services));
  app.use(s3Errors(services));
  app.use(internalRoutes(services));
  // Before authentication: preflights are never signed, and error replies need the CORS headers too.
  app.use(cors(services.config.corsOrigins, (ctx) => requestTarget(ctx.path, ctx.get('Host'), services.config.domains)));
  const identities = new IdentityCache(services.config.credentials, services.namespace);
  exposeCaches(services.metrics.registry, { access_keys: identities.stats, buckets: services.buckets.stats });
  app.use(authenticate(services, identities));
  app.use(async (ctx, next) => {
    const operation = resolveOperation(ctx.method, ctx.state.target, ctx.query);
    ctx.state.operation = operation.name;
    ctx.state.handler = operation.handler;
    // Every operation on an object, whatever it is: S3 refuses a key it could never have stored.
    if (ctx.state.target.key !== undefined) validateKey(ctx.state.target.key);
    await next();
  });
  app.use(authorize(services));
  app.use((ctx) => ctx.state.handler(ctx, services));
  return app;
}

/**
 * Slow clients: the request line and headers must arrive within `headersTimeoutMs` (Node checks
 * every `connectionsCheckingInterval`); a body idle for `bodyTimeoutMs` while an operation waits
 * for it is cut off by the payload reader (operations/body.ts); a body an operation never reads
 * closes the connection after the reply (commonHeaders). There is no total request timeout: a
 * large upload takes as long as it takes, as long as it keeps moving.
 */
export function createGatewayServer(services: GatewayServices): http.Server {
  const { headersTimeoutMs, maxHeaderBytes } = services.config;
  const handle = createGatewayApp(services).callback();
  // HTTPS when the config has a certificate and key (--tls-cert / --tls-key); same options otherwise.
  const server: http.Server = (services.config.tls ? https.createServer : (http.createServer as typeof https.createServer))(
    {
      ...services.config.tls,
      maxHeaderSize: maxHeaderBytes,
      headersTimeout: headersTimeoutMs,
      requestTimeout: 0,
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(headersTimeoutMs / 4))),
    },
    handle,
  );
  server.keepAliveTimeout = 65_000;
  // "Expect: 100-continue" (the AWS SDKs send it with large bodies): Node would say "continue" at
  // once; instead the operation says it when it starts reading the body (operations/body.ts), so a
  // request refused from its headers (auth, EntityTooLarge, NoSuchBucket) never makes the client
  // send its body, and gets the S3 error instead of a reset.
  server.on('checkContinue', handle);
  // Any other Expect value: served as if it were absent (Node would answer a bare 417).
  server.on('checkExpectation', handle);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerUnparsed(err, socket, services));
  // CONNECT never reaches the request handler; without a listener Node just drops the connection.
  server.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
    writeRawError(socket, s3Error('MethodNotAllowed', undefined, { Method: req.method ?? 'CONNECT', ResourceType: 'SERVICE' }), services);
  });
  return server;
}

/**
 * A request Node's parser refused (headers too large, headers too slow, not HTTP) never reaches
 * koa: it still gets an S3 XML error, written straight to the socket, which is then closed.
 */
function answerUnparsed(err: NodeJS.ErrnoException, socket: Duplex, services: GatewayServices): void {
  const inFlight = (socket as Duplex & { _httpMessage?: http.ServerResponse })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const error =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? s3Error('RequestHeaderSectionTooLarge', undefined, { MaxSizeAllowed: services.config.maxHeaderBytes })
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? s3Error('RequestTimeout')
        : s3Error('BadRequest', 'An error occurred when parsing the HTTP request.');
  writeRawError(socket, error, services);
}

/** An S3 error document written straight to a socket that has no koa response, then closed. */
function writeRawError(socket: Duplex, error: S3Error, services: GatewayServices): void {
  const requestId = pooledRandomBytes(8).toString('hex').toUpperCase();
  const body = Buffer.from(errorXml(error, requestId), 'utf8');
  const head = [
    `HTTP/1.1 ${error.status} ${http.STATUS_CODES[error.status] ?? ''}`,
    'Content-Type: application/xml',
    `Content-Length: ${body.length}`,
    `x-amz-request-id: ${requestId}`,
    'Server: Cairn',
    'Connection: close',
  ].join('\r\n');
  services.metrics.requests.inc({ operation: 'Unparsed', status: String(error.status) });
  // The client may never close its side: once the reply is flushed the socket goes.
  socket.end(Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), body]), () => socket.destroy());
}

function commonHeaders(services: GatewayServices): Koa.Middleware<S3State> {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    ctx.state.requestId = pooledRandomBytes(8).toString('hex').toUpperCase();
    ctx.state.operation = 'Unknown';
    ctx.set('x-amz-request-id', ctx.state.requestId);
    ctx.set('x-amz-id-2', pooledRandomBytes(24).toString('base64'));
    ctx.set('Server', 'Cairn');
    try {
      await next();
    } finally {
      // A body the operation left unread (CopyObject, GET with a body, a stalled upload) must not
      // hold the connection open: close it once the reply is out.
      if (!ctx.req.complete) ctx.set('Connection', 'close');
      const labels = { operation: ctx.state.operation, status: String(ctx.status) };
      services.metrics.requests.inc(labels);
      services.metrics.latency.observe(Number(process.hrtime.bigint() - started) / 1e9, { operation: ctx.state.operation });
    }
  };
}

/** Every failure leaves as S3 XML with the code and status AWS would use. */
function s3Errors(services: GatewayServices): Koa.Middleware<S3State> {
  return async (ctx, next) => {
    try {
      await next();
    } catch (caught) {
      const err = asS3Error(caught, ctx, services);
      // A body the client is still sending must be drained or the connection closed, or the next
      // request on this keep-alive connection would read it as headers.
      if (!ctx.req.readableEnded) ctx.set('Connection', 'close');
      ctx.status = err.status;
      // Headers describing the object (set before the failure) must not describe the error body:
      // a client would validate the error XML against the object's checksum.
      for (const name of Object.keys(ctx.response.headers)) if (!KEPT_ON_ERROR.test(name)) ctx.remove(name);
      // HEAD: the status says it all; a null body would make koa turn it into 204.
      if (ctx.method === 'HEAD') return;
      ctx.type = 'application/xml';
      ctx.body = errorXml(err, ctx.state.requestId);
    }
  };
}

const KNOWN_CODES = new Set<string>(S3_ERROR_CODES);

/** Response headers an error reply keeps: request ids, server, connection handling and CORS. */
const KEPT_ON_ERROR = /^(x-amz-request-id|x-amz-id-2|server|connection|vary|access-control-.*)$/i;

/**
 * The one place where failures become S3 errors: the namespace already speaks S3 codes
 * (NoSuchKey, BucketNotEmpty, PreconditionFailed, ...); storage-node failures have been handled
 * by the data path; anything else is an internal error, logged with its cause.
 */
function asS3Error(caught: unknown, ctx: S3Context, services: GatewayServices): S3Error {
  if (caught instanceof S3Error) return caught;
  if (caught instanceof HttpError && KNOWN_CODES.has(caught.code)) {
    const code = caught.code as S3ErrorCode;
    if (code === 'InternalError' || code === 'ServiceUnavailable') services.log.warn('namespace failed', { code, message: caught.message });
    // Internal detail stays in our log; the client gets AWS's text for the code.
    return s3Error(code);
  }
  return internalError(caught, ctx, services);
}

function internalError(caught: unknown, ctx: S3Context, services: GatewayServices): S3Error {
  services.log.error('request failed', { method: ctx.method, path: ctx.path, operation: ctx.state.operation, err: caught });
  return s3Error('InternalError');
}

/** Unauthenticated operational endpoints under a prefix no bucket name can have. */
function internalRoutes(services: GatewayServices): Koa.Middleware<S3State> {
  return async (ctx, next) => {
    if (ctx.path === '/-/health' && ctx.method === 'GET') {
      ctx.body = { status: 'ok', service: 'gateway', pid: process.pid };
      return;
    }
    if (ctx.path === '/-/metrics' && ctx.method === 'GET') {
      ctx.type = 'text/plain; version=0.0.4';
      ctx.body = services.metrics.registry.render();
      return;
    }
    await next();
  };
}

/**
 * Who is asking. An unsigned request is anonymous (authorize decides what, if anything, it may
 * do); a signed one names an access key, whose secret and principal are found first (the root
 * credentials from the config, any other key in the namespace through a 2-second cache, see
 * auth/identities.ts), and is then verified by the pure SigV4 code with that one secret.
 */
function authenticate(services: GatewayServices, identities: IdentityCache): Koa.Middleware<S3State> {
  return async (ctx, next) => {
    const raw = ctx.req.url ?? '/';
    const q = raw.indexOf('?');
    const rawPath = q === -1 ? raw : raw.slice(0, q);
    const rawQuery = q === -1 ? '' : raw.slice(q + 1);
    ctx.state.target = requestTarget(rawPath, ctx.get('Host'), services.config.domains);
    const request = { method: ctx.method, rawPath, rawQuery, headers: ctx.req.headersDistinct };
    const opts = { region: services.config.region };
    if (isAnonymousRequest(request)) {
      ctx.state.principal = ANONYMOUS;
      ctx.state.auth = anonymousAuth(request.headers, opts);
      return next();
    }
    const accessKeyId = claimedAccessKeyId(request, opts);
    const identity = await identities.resolve(accessKeyId);
    ctx.state.auth = verifyRequest(request, (id) => (id === accessKeyId ? identity?.secret : undefined), new Date(), opts);
    // verifyRequest refuses a key without an identity (InvalidAccessKeyId), so there is one here.
    ctx.state.principal = identity!.principal;
    await next();
  };
}
