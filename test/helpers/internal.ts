// Test helper: the cluster secret of services started in-process, and raw requests to an internal
// service (namespace, storage node, repair) signed the way the clients sign them.
import { request, type Dispatcher } from 'undici';
import { CLUSTER_SECRET_ENV } from '../../common/cluster-secret.js';
import { ClusterSecret, signRequest } from '../../common/internal-auth.js';

export const TEST_SECRET_TEXT = 'cairn-test-cluster-secret-0123456789abcdef';
export const TEST_SECRET = ClusterSecret.parse(TEST_SECRET_TEXT);
/** Environment for a service process spawned by a test. */
export const SECRET_ENV: NodeJS.ProcessEnv = { ...process.env, [CLUSTER_SECRET_ENV]: TEST_SECRET_TEXT };

export interface RawRequest {
  method?: Dispatcher.HttpMethod;
  headers?: Record<string, string>;
  /** The whole body; signed by its SHA-256. */
  body?: string | Buffer;
  /** Sign as a streamed body (UNSIGNED-PAYLOAD). */
  streamed?: boolean;
  /** Default TEST_SECRET; null sends the request unsigned. */
  secret?: ClusterSecret | null;
  /** Signing time and nonce (replay and clock tests). */
  now?: number;
  nonce?: string;
}

/** The headers a signed request to `url` carries. */
export function signedHeaders(url: string, opts: RawRequest = {}): Record<string, string> {
  const u = new URL(url);
  const secret = opts.secret === undefined ? TEST_SECRET : opts.secret;
  if (secret === null) return opts.headers ?? {};
  const req = { method: opts.method ?? 'GET', host: u.host, target: u.pathname + u.search, headers: opts.headers, body: opts.body, streamed: opts.streamed };
  return signRequest(secret, req, opts.now, opts.nonce);
}

/** Sends exactly what signedHeaders signed (undici sends the parsed URL's path and query as they are). */
export function rawRequest(url: string, opts: RawRequest = {}): Promise<Dispatcher.ResponseData> {
  return sendWith(url, opts, signedHeaders(url, opts));
}

/** Sends a request with the given headers (a replay sends a recorded set again). */
export function sendWith(url: string, opts: RawRequest, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
  return request(url, { method: opts.method ?? 'GET', headers, body: opts.body });
}
