// The S3 REST API over koa. One middleware chain for every request: request id and common headers,
// metrics, S3 XML errors, CORS, SigV4 authentication, then the operation's own handler (one file each in
// operations/).
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import Koa from 'koa';
import { S3Error, s3Error, S3_ERROR_CODES, type S3ErrorCode } from './s3/errors.js';
import { HttpError } from '../common/http.js';
import { errorXml } from './s3/xml.js';
import { verifyRequest, type AuthContext } from './auth/sigv4.js';
import type { RequestTarget } from './request-target.js';
import { requestTarget } from './virtual-host.js';
import { cors } from './cors.js';
import { resolveOperation } from './operations/index.js';
import type { GatewayServices } from './services.js';

export interface S3State {
  requestId: string;
  target: RequestTarget;
  operation: string;
  auth: AuthContext;
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
  app.use(authenticate(services));
  app.use(async (ctx) => {
    const operation = resolveOperation(ctx.method, ctx.state.target, ctx.query);
    ctx.state.operation = operation.name;
    await operation.handler(ctx, services);
  });
  return app;
}

export function createGatewayServer(services: GatewayServices): http.Server {
  const server = http.createServer(createGatewayApp(services).callback());
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0; // large uploads take as long as they take; idle sockets time out instead
  return server;
}

function commonHeaders(services: GatewayServices): Koa.Middleware<S3State> {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    ctx.state.requestId = randomBytes(8).toString('hex').toUpperCase();
    ctx.state.operation = 'Unknown';
    ctx.set('x-amz-request-id', ctx.state.requestId);
    ctx.set('x-amz-id-2', randomBytes(24).toString('base64'));
    ctx.set('Server', 'Cairn');
    try {
      await next();
    } finally {
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

function authenticate(services: GatewayServices): Koa.Middleware<S3State> {
  return async (ctx, next) => {
    const raw = ctx.req.url ?? '/';
    const q = raw.indexOf('?');
    const rawPath = q === -1 ? raw : raw.slice(0, q);
    const rawQuery = q === -1 ? '' : raw.slice(q + 1);
    ctx.state.target = requestTarget(rawPath, ctx.get('Host'), services.config.domains);
    ctx.state.auth = verifyRequest(
      { method: ctx.method, rawPath, rawQuery, headers: ctx.req.headersDistinct },
      (accessKeyId) => services.config.credentials.get(accessKeyId),
      new Date(),
      { region: services.config.region },
    );
    await next();
  };
}
