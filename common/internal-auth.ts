// Internal request authentication: every request between Cairn services (gateway, repair, storage
// node heartbeats, the admin command → namespace, storage nodes, repair) carries an HMAC-SHA256
// signature made with the cluster secret, so whoever can reach a service's port but lacks the
// secret can read, write or delete nothing. Pure: no I/O; the server side is applied once, in
// common/http.ts (createServiceServer), and the clients call signRequest.
//
// Headers:
//   x-cairn-date            milliseconds since the epoch when the request was signed
//   x-cairn-nonce           a random UUID (122 random bits): a replay within the window is refused
//   x-cairn-content-sha256  hex SHA-256 of the whole body, or UNSIGNED-PAYLOAD (streamed shards)
//   x-cairn-signature       hex HMAC-SHA256(secret, canonical string)
//
// Canonical string (lines joined by "\n"):
//   CAIRN1-HMAC-SHA256
//   <METHOD>
//   <host header>                    binds the request to the service it was meant for
//   <path and query, exactly as sent>
//   <x-cairn-date>
//   <x-cairn-nonce>
//   <x-cairn-content-sha256>
//   <name>:<value>                   content-type, range and every other x-cairn-* header
//                                    present, sorted by name
// The body's length is not a line of its own: a signed digest covers it, and for an unsigned
// (streamed) body the HTTP client decides the framing itself (chunked, or a content-length when
// the stream has already ended), so the sender cannot know it when it signs.
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';

export const ALGORITHM = 'CAIRN1-HMAC-SHA256';
export const DATE_HEADER = 'x-cairn-date';
export const NONCE_HEADER = 'x-cairn-nonce';
export const CONTENT_SHA256_HEADER = 'x-cairn-content-sha256';
export const SIGNATURE_HEADER = 'x-cairn-signature';
/**
 * The body is not covered by the signature (the method, target, host, time, nonce and headers
 * still are). Meant for shard bodies: they stream (up to hundreds of MiB, never buffered), and
 * hashing every byte on both sides would cost more than the erasure coding (small shards sent whole,
 * alone or in a batch whose manifest is signed through a header, go the same way); each block already
 * travels with its own CRC32C, which the node verifies before storing (corruption: BadFrame,
 * nothing stored). What it does not give is integrity against an active man-in-the-middle, who
 * could re-frame the data: that needs TLS on the internal network.
 */
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/** Requests dated further than this from the receiver's clock are refused (the replay window). */
export const MAX_SKEW_MS = 5 * 60_000;
/** Nonces remembered per receiving process; bounds the cache at about 10 MB. */
export const DEFAULT_NONCE_CAPACITY = 1 << 17;
export const MIN_SECRET_BYTES = 32;

const AUTH_HEADERS: ReadonlySet<string> = new Set([DATE_HEADER, NONCE_HEADER, CONTENT_SHA256_HEADER, SIGNATURE_HEADER]);
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const DATE = /^[0-9]{1,15}$/;

/**
 * The shared secret every service of a cluster holds. Never printed: String(), JSON and
 * util.inspect all show a placeholder, so a secret handed to a logger by mistake stays secret.
 */
export class ClusterSecret {
  readonly #key: Buffer;

  private constructor(key: Buffer) {
    this.#key = key;
  }

  /** `source` names where the text came from, for the error message (never the text itself). */
  static parse(text: string, source = 'the cluster secret'): ClusterSecret {
    const key = Buffer.from(text, 'utf8');
    if (key.length < MIN_SECRET_BYTES) {
      throw new Error(`${source} must be at least ${MIN_SECRET_BYTES} bytes, got ${key.length} (make one with: openssl rand -base64 32)`);
    }
    return new ClusterSecret(key);
  }

  /** 32 random bytes as text (base64url), for a new cluster. */
  static generate(): string {
    return randomBytes(32).toString('base64url');
  }

  mac(text: string): Buffer {
    return createHmac('sha256', this.#key).update(text, 'utf8').digest();
  }

  toString(): string {
    return '[cluster secret]';
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** Why a request was refused; the server answers `status` with `{code, message}`. */
export class InternalAuthError extends Error {
  constructor(readonly status: 401 | 403, readonly code: InternalAuthCode, message: string) {
    super(message);
    this.name = 'InternalAuthError';
  }
}

/** Deliberately not S3 codes: a gateway that meets one reports an internal error, never blames the S3 client's own signature. */
export type InternalAuthCode =
  | 'ClusterAuthMissing'
  | 'ClusterAuthMalformed'
  | 'ClusterAuthStale'
  | 'ClusterSignatureMismatch'
  | 'ClusterAuthReplayed'
  | 'ClusterAuthWrongHost'
  | 'ClusterBodyMismatch';

export type HeaderValue = string | string[] | number | undefined;
export type HeaderBag = Record<string, HeaderValue>;

export interface CanonicalRequest {
  method: string;
  host: string;
  /** Path and query exactly as on the request line. */
  target: string;
  date: string;
  nonce: string;
  contentSha256: string;
  /** Lower-case names; only content-type, range and x-cairn-* matter. */
  headers: HeaderBag;
}

export function canonicalString(r: CanonicalRequest): string {
  const lines = [ALGORITHM, r.method.toUpperCase(), r.host, r.target, r.date, r.nonce, r.contentSha256];
  const names = Object.keys(r.headers)
    .filter((name) => r.headers[name] !== undefined && (name === 'content-type' || name === 'range' || (name.startsWith('x-cairn-') && !AUTH_HEADERS.has(name))))
    .sort();
  for (const name of names) lines.push(`${name}:${headerText(r.headers[name])}`);
  return lines.join('\n');
}

function headerText(value: HeaderValue): string {
  return (Array.isArray(value) ? value.join(', ') : String(value)).trim();
}

export function sha256Hex(body: string | Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

/** Most internal requests (GET, DELETE) have no body. */
const EMPTY_SHA256 = sha256Hex('');

export interface RequestToSign {
  method: string;
  /** The Host header that will be sent (host[:port]); signRequest sets it. */
  host: string;
  /** Path and query exactly as they will be sent. */
  target: string;
  /** The request's own headers, lower-case names. */
  headers?: Record<string, string>;
  /** The whole body (absent: none). */
  body?: string | Uint8Array;
  /** The body streams instead: it is signed as UNSIGNED_PAYLOAD. */
  streamed?: boolean;
}

/**
 * The complete header set to send: the request's headers, host and the four authentication headers.
 * `now` and `nonce` are for tests. (randomUUID draws from a cached CSPRNG pool: ~0.3 µs, where
 * randomBytes costs ~4 µs a call, a fifth of the whole signing cost.)
 */
export function signRequest(secret: ClusterSecret, req: RequestToSign, now = Date.now(), nonce: string = randomUUID()): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers ?? {})) headers[name.toLowerCase()] = value;
  headers.host = req.host;
  const contentSha256 = req.streamed ? UNSIGNED_PAYLOAD : req.body === undefined || req.body.length === 0 ? EMPTY_SHA256 : sha256Hex(req.body);
  const date = String(Math.floor(now));
  const signature = secret.mac(canonicalString({ method: req.method, host: req.host, target: req.target, date, nonce, contentSha256, headers }));
  return {
    ...headers,
    [DATE_HEADER]: date,
    [NONCE_HEADER]: nonce,
    [CONTENT_SHA256_HEADER]: contentSha256,
    [SIGNATURE_HEADER]: signature.toString('hex'),
  };
}

export interface ReceivedRequest {
  method: string;
  /** The raw request target (path and query) as received. */
  target: string;
  /** Node's lower-cased request headers. */
  headers: HeaderBag;
}

export interface VerifierOptions {
  maxSkewMs?: number;
  nonceCapacity?: number;
  /** The receiver's clock (tests). */
  now?: () => number;
  /**
   * The Host this receiver is addressed by, once known (storage nodes: their advertised URL). A
   * request signed for another host is refused: the nonce cache is per process, so without this a
   * request captured on its way to one storage node could be replayed to another within the window.
   */
  host?: () => string | undefined;
}

/** Checks signed requests for one receiving process; holds its replay cache. */
export class RequestVerifier {
  private readonly maxSkewMs: number;
  private readonly now: () => number;
  private readonly nonces: NonceCache;
  private readonly host: () => string | undefined;

  constructor(private readonly secret: ClusterSecret, opts: VerifierOptions = {}) {
    this.maxSkewMs = opts.maxSkewMs ?? MAX_SKEW_MS;
    this.now = opts.now ?? Date.now;
    this.host = opts.host ?? ((): undefined => undefined);
    this.nonces = new NonceCache(opts.nonceCapacity ?? DEFAULT_NONCE_CAPACITY, this.maxSkewMs);
  }

  /**
   * Verifies the request head and records its nonce; returns the signed body digest (hex) or
   * UNSIGNED_PAYLOAD. A digest must still be checked against the body (checkBodyDigest).
   */
  verify(req: ReceivedRequest): string {
    const get = (name: string): string | undefined => {
      const value = req.headers[name];
      return value === undefined ? undefined : headerText(value);
    };
    const signature = get(SIGNATURE_HEADER);
    const date = get(DATE_HEADER);
    const nonce = get(NONCE_HEADER);
    const contentSha256 = get(CONTENT_SHA256_HEADER);
    if (signature === undefined || date === undefined || nonce === undefined || contentSha256 === undefined) {
      throw new InternalAuthError(401, 'ClusterAuthMissing', 'internal requests must be signed with the cluster secret (x-cairn-signature, -date, -nonce, -content-sha256)');
    }
    if (!HEX64.test(signature) || !DATE.test(date) || !NONCE.test(nonce) || (contentSha256 !== UNSIGNED_PAYLOAD && !HEX64.test(contentSha256))) {
      throw new InternalAuthError(401, 'ClusterAuthMalformed', 'malformed internal authentication headers');
    }
    const now = this.now();
    const at = Number(date);
    if (Math.abs(now - at) > this.maxSkewMs) {
      throw new InternalAuthError(403, 'ClusterAuthStale', `request signed at ${new Date(at).toISOString()}, more than ${this.maxSkewMs / 1000} s from this server's clock`);
    }
    const host = get('host') ?? '';
    const expected = this.secret.mac(canonicalString({ method: req.method, host, target: req.target, date, nonce, contentSha256, headers: req.headers }));
    if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
      throw new InternalAuthError(403, 'ClusterSignatureMismatch', 'signature does not match: wrong cluster secret, or the request was altered');
    }
    const ownHost = this.host();
    if (ownHost !== undefined && host !== ownHost) {
      throw new InternalAuthError(403, 'ClusterAuthWrongHost', `request signed for ${host.slice(0, 100)}, not for this service (${ownHost})`);
    }
    // Only after the signature holds, so unsigned junk cannot fill the cache.
    if (!this.nonces.add(nonce, at, now)) {
      throw new InternalAuthError(403, 'ClusterAuthReplayed', 'this signed request was already received (replay), or is older than the replay cache remembers');
    }
    return contentSha256;
  }
}

/** Throws unless `body` is what the signature's digest says. */
export function checkBodyDigest(contentSha256: string, body: Uint8Array): void {
  if (contentSha256 === UNSIGNED_PAYLOAD) return;
  if (!timingSafeEqual(Buffer.from(sha256Hex(body), 'hex'), Buffer.from(contentSha256, 'hex'))) {
    throw new InternalAuthError(403, 'ClusterBodyMismatch', 'the body does not match its signed SHA-256');
  }
}

/**
 * Nonces seen within the replay window, at most `capacity` of them. When full, the oldest are
 * forgotten and `floor` rises to the newest date among them: requests dated at or before it are
 * refused, since their nonce may be one forgotten. Honest requests are signed just before they are
 * sent, so only a request delayed longer than the cache's reach (capacity / request rate) is hit.
 */
export class NonceCache {
  /** nonce → request date; insertion order is arrival order. */
  private readonly seen = new Map<string, number>();
  private floor = Number.NEGATIVE_INFINITY;

  constructor(private readonly capacity: number, private readonly windowMs: number) {}

  get size(): number {
    return this.seen.size;
  }

  /** False when the nonce was seen, or may have been. */
  add(nonce: string, at: number, now: number): boolean {
    this.expire(now);
    if (at <= this.floor || this.seen.has(nonce)) return false;
    this.seen.set(nonce, at);
    while (this.seen.size > this.capacity) {
      const [oldest, date] = this.seen.entries().next().value as [string, number];
      this.seen.delete(oldest);
      this.floor = Math.max(this.floor, date);
    }
    return true;
  }

  /** Entries dated before the window are refused by the clock check anyway. */
  private expire(now: number): void {
    for (const [nonce, at] of this.seen) {
      if (at >= now - this.windowMs) return;
      this.seen.delete(nonce);
    }
  }
}
