// Turns the raw request stream into the object bytes: removes aws-chunked framing,
// verifies chunk and trailer signatures, x-amz-content-sha256, Content-MD5 and the S3
// additional checksum, and always computes the MD5 the ETag needs. Header problems are
// thrown by decodePayload itself; body problems are thrown by the iterator once the body
// has ended (or as soon as they are certain), always as S3Error, so a consumer that
// commits only after the loop completes never stores unverified bytes.
import { withDeadline } from '../../common/deadline.js';
import { S3Error } from '../s3/errors.js';
import {
  CHECKSUM_ALGORITHMS,
  algorithmOfHeader,
  checksumHeaderName,
  isValidChecksumValue,
  parseChecksumAlgorithm,
  type ChecksumAlgorithm,
} from '../s3/checksums.js';
import { createBodyDigester } from '../s3/digest-thread.js';
import { AwsChunkedDecoder, decodeAwsChunked } from './chunked.js';
import { headerValue, type HeaderBag } from './canonical.js';
import type { AuthContext, PayloadMode } from './sigv4.js';

export interface PayloadLimits {
  /** Largest declared object or part size; beyond it EntityTooLarge. */
  readonly maxSize?: number;
  readonly maxChunkSize?: number;
  readonly maxChunkLineLength?: number;
  readonly maxTrailerBytes?: number;
  /**
   * S3's 8 KiB minimum for non-final signed chunks. Not applied to unsigned aws-chunked
   * bodies: the JS SDK frames a stream in whatever pieces the stream yields.
   */
  readonly minChunkSize?: number;
  /**
   * How long the body may send nothing while it is being waited for (400 RequestTimeout); 0: no
   * limit. Only time spent waiting on the client counts, never time the consumer is busy.
   */
  readonly idleTimeoutMs?: number;
}

export interface PayloadOptions extends PayloadLimits {
  /** Checksum to compute when the client sent none (S3 itself defaults to CRC64NVME). */
  readonly defaultChecksum?: ChecksumAlgorithm;
}

export interface ComputedChecksum {
  readonly algorithm: ChecksumAlgorithm;
  /** Base64, as S3 stores and returns it. */
  readonly value: string;
  /** Where the client's value came from; 'computed' when the client sent none. */
  readonly source: 'header' | 'trailer' | 'computed';
}

export interface PayloadResult {
  readonly size: number;
  readonly md5: Buffer;
  readonly md5Hex: string;
  readonly checksum: ComputedChecksum | undefined;
  readonly trailers: ReadonlyMap<string, string>;
}

/** The digests to store with the object: MD5 for the ETag, the checksum by algorithm name. */
export interface PayloadDigests {
  readonly size: number;
  readonly md5Hex: string;
  readonly checksums: Readonly<Partial<Record<ChecksumAlgorithm, string>>>;
}

const DEFAULT_LIMITS = {
  maxSize: Number.MAX_SAFE_INTEGER,
  maxChunkSize: 16 * 1024 * 1024,
  maxChunkLineLength: 4096,
  maxTrailerBytes: 16 * 1024,
  minChunkSize: 8192,
  idleTimeoutMs: 0,
};

const TRAILER_MODES: ReadonlySet<PayloadMode> = new Set(['streaming-unsigned-trailer', 'streaming-signed-trailer']);

export interface ChecksumExpectation {
  readonly algorithm: ChecksumAlgorithm;
  readonly source: ComputedChecksum['source'];
  /** The client's base64 value when it came in a header. */
  readonly expected?: string;
}

/** The decoded body; iterate it once, then read `result`. */
export class DecodedPayload implements AsyncIterable<Buffer> {
  /** The object size the client declared (x-amz-decoded-content-length or Content-Length). */
  readonly declaredLength: number;
  readonly chunked: boolean;
  readonly checksumAlgorithm: ChecksumAlgorithm | undefined;
  private finished: PayloadResult | undefined;
  private started = false;

  constructor(
    private readonly source: AsyncIterable<Uint8Array>,
    private readonly headers: HeaderBag,
    private readonly auth: AuthContext,
    private readonly limits: typeof DEFAULT_LIMITS,
    private readonly checksum: ChecksumExpectation | undefined,
    private readonly contentMd5: Buffer | undefined,
  ) {
    this.chunked = auth.payloadMode.startsWith('streaming');
    this.declaredLength = declaredLength(headers, this.chunked);
    this.checksumAlgorithm = checksum?.algorithm;
    if (this.declaredLength > limits.maxSize) throw new S3Error('EntityTooLarge');
  }

  /** Available once iteration has completed without error. */
  get result(): PayloadResult {
    if (this.finished === undefined) throw new Error('the payload has not been read to its end');
    return this.finished;
  }

  /** The decoded bytes; the payload itself is the iterable, this reads better at call sites. */
  get body(): AsyncIterable<Buffer> {
    return this;
  }

  /** The verified digests; only after the body has been read to its end. */
  digests(): PayloadDigests {
    const { size, md5Hex, checksum } = this.result;
    return { size, md5Hex, checksums: checksum === undefined ? {} : { [checksum.algorithm]: checksum.value } };
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.started) throw new Error('a payload can be read only once');
    this.started = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<Buffer, void, undefined> {
    const digester = createBodyDigester({ sha256: this.auth.payloadMode === 'sha256', checksum: this.checksum?.algorithm }, this.declaredLength);
    let digested = false;
    try {
      const decoder = this.chunked ? this.createDecoder() : undefined;
      const raw = buffers(this.source, this.limits.idleTimeoutMs);
      const source = decoder ? decodeAwsChunked(raw, decoder) : raw;
      let size = 0;
      for await (const piece of source) {
        size += piece.length;
        if (!this.chunked && size > this.declaredLength) throw incompleteBody();
        const backlog = digester.update(piece);
        if (backlog) await backlog;
        yield piece;
      }
      if (size !== this.declaredLength) throw incompleteBody();
      const digests = await digester.finish();
      digested = true;
      if (digests.sha256 !== undefined) this.checkSha256(digests.sha256.toString('hex'));
      this.checkMd5(digests.md5);
      const trailers = decoder?.trailers ?? new Map<string, string>();
      // A trailing header that x-amz-trailer did not announce is refused like S3 does.
      if (this.checksum?.source !== 'trailer' && trailers.size > 0) throw new S3Error('MalformedTrailerError');
      const checksum = digests.checksum === undefined ? undefined : this.checkChecksum(digests.checksum, trailers);
      this.finished = { size, md5: digests.md5, md5Hex: digests.md5.toString('hex'), checksum, trailers };
    } finally {
      if (!digested) digester.abort();
    }
  }

  private createDecoder(): AwsChunkedDecoder {
    const mode = this.auth.payloadMode;
    const signed = mode === 'streaming-signed' || mode === 'streaming-signed-trailer';
    return new AwsChunkedDecoder({
      signer: signed ? this.auth : undefined,
      trailer: TRAILER_MODES.has(mode) ? (signed ? 'signed' : 'unsigned') : 'none',
      decodedLength: this.declaredLength,
      maxChunkSize: this.limits.maxChunkSize,
      maxLineLength: this.limits.maxChunkLineLength,
      maxTrailerBytes: this.limits.maxTrailerBytes,
      minChunkSize: signed ? this.limits.minChunkSize : 0,
    });
  }

  private checkSha256(computed: string): void {
    if (computed === this.auth.payloadHash) return;
    throw new S3Error('XAmzContentSHA256Mismatch', undefined, {
      ClientComputedContentSHA256: this.auth.payloadHash,
      S3ComputedContentSHA256: computed,
    });
  }

  private checkMd5(computed: Buffer): void {
    if (this.contentMd5 === undefined || computed.equals(this.contentMd5)) return;
    throw new S3Error('BadDigest', undefined, {
      ExpectedDigest: headerValue(this.headers, 'content-md5') ?? '',
      CalculatedDigest: computed.toString('base64'),
    });
  }

  private checkChecksum(digest: Buffer, trailers: ReadonlyMap<string, string>): ComputedChecksum {
    const { algorithm, source } = this.checksum!;
    const value = digest.toString('base64');
    const expected = source === 'trailer' ? trailerChecksum(algorithm, trailers) : this.checksum!.expected;
    if (expected !== undefined && expected !== value) {
      throw new S3Error('BadDigest', `The ${algorithm} you specified did not match the calculated checksum.`);
    }
    return { algorithm, value, source };
  }
}

/**
 * Validates the body-related headers (throwing what S3 answers for them) and returns the
 * decoded body. `body` is the raw request stream, e.g. koa's `ctx.req`.
 */
export function decodePayload(
  body: AsyncIterable<Uint8Array>,
  headers: HeaderBag,
  auth: AuthContext,
  options: PayloadOptions = {},
): DecodedPayload {
  const limits = { ...DEFAULT_LIMITS, ...definedOnly(options) };
  const contentMd5 = readContentMd5(headers);
  let checksum = selectChecksum(headers, auth.payloadMode);
  if (checksum === undefined && options.defaultChecksum !== undefined) {
    checksum = { algorithm: options.defaultChecksum, source: 'computed' };
  }
  return new DecodedPayload(body, headers, auth, limits, checksum, contentMd5);
}

/** Reads a small body (an XML document) whole; beyond `maxBytes` MaxMessageLengthExceeded. */
export async function readPayload(payload: AsyncIterable<Buffer>, maxBytes: number): Promise<Buffer> {
  const pieces: Buffer[] = [];
  let total = 0;
  for await (const piece of payload) {
    total += piece.length;
    if (total > maxBytes) throw new S3Error('MaxMessageLengthExceeded');
    pieces.push(piece);
  }
  return Buffer.concat(pieces, total);
}

/** The Content-Encoding to store: aws-chunked only describes the transfer, S3 drops it. */
export function storedContentEncoding(headers: HeaderBag): string | undefined {
  const value = headerValue(headers, 'content-encoding');
  if (value === undefined) return undefined;
  const kept = value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '' && v.toLowerCase() !== 'aws-chunked');
  return kept.length === 0 ? undefined : kept.join(', ');
}

// ---------------------------------------------------------------------------------------------

function definedOnly(options: PayloadLimits): Partial<typeof DEFAULT_LIMITS> {
  return Object.fromEntries(Object.entries(options).filter(([k, v]) => v !== undefined && k in DEFAULT_LIMITS));
}

function incompleteBody(): S3Error {
  return new S3Error('IncompleteBody');
}

/**
 * Normalises chunks to Buffers; a broken client connection is reported as IncompleteBody, and a
 * client that leaves the body idle for `idleTimeoutMs` while it is awaited as RequestTimeout.
 */
async function* buffers(source: AsyncIterable<Uint8Array>, idleTimeoutMs = 0): AsyncGenerator<Buffer, void, undefined> {
  const iterator = source[Symbol.asyncIterator]();
  // As for-await: the source is closed (a request: destroyed) only when the consumer stops early.
  let settled = false;
  try {
    for (;;) {
      let step: IteratorResult<Uint8Array>;
      try {
        step = await withDeadline(iterator.next(), idleTimeoutMs, () => new S3Error('RequestTimeout'));
      } catch (error) {
        settled = true;
        if (error instanceof S3Error) throw error;
        throw new S3Error('IncompleteBody', 'The request body terminated unexpectedly', undefined, { cause: error });
      }
      if (step.done) {
        settled = true;
        return;
      }
      const piece = step.value;
      yield Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    }
  } finally {
    // After a timeout the source's read is still pending (so its return() would wait for it); the
    // stalled request is left alone for the error reply, which closes the connection.
    if (!settled) await iterator.return?.();
  }
}

function declaredLength(headers: HeaderBag, chunked: boolean): number {
  const name = chunked ? 'x-amz-decoded-content-length' : 'content-length';
  const value = headerValue(headers, name);
  if (value !== undefined && /^\d{1,16}$/.test(value.trim())) return Number(value.trim());
  if (value === undefined && !chunked && headerValue(headers, 'transfer-encoding') !== undefined) {
    // Only aws-chunked bodies may come without a length; S3 refuses plain chunked uploads.
    throw new S3Error('NotImplemented', undefined, { Header: 'Transfer-Encoding' });
  }
  throw new S3Error('MissingContentLength');
}

function readContentMd5(headers: HeaderBag): Buffer | undefined {
  const value = headerValue(headers, 'content-md5');
  if (value === undefined) return undefined;
  const digest = /^[A-Za-z0-9+/]{22}==$/.test(value) ? Buffer.from(value, 'base64') : undefined;
  if (digest === undefined || digest.length !== 16) {
    throw new S3Error('InvalidDigest', undefined, { 'Content-MD5': value });
  }
  return digest;
}

function invalidRequest(message: string): S3Error {
  return new S3Error('InvalidRequest', message);
}

/** Which additional checksum the request carries, with S3's refusals for the bad combinations. */
export function selectChecksum(headers: HeaderBag, mode: PayloadMode): ChecksumExpectation | undefined {
  const present = CHECKSUM_ALGORITHMS.filter((a) => headerValue(headers, checksumHeaderName(a)) !== undefined);
  const trailer = headerValue(headers, 'x-amz-trailer')?.trim().toLowerCase();
  if (present.length > 1) {
    throw invalidRequest('Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.');
  }
  if (trailer !== undefined) return trailerExpectation(headers, trailer, present.length > 0, mode);
  const algorithm = present[0];
  if (algorithm !== undefined) {
    const value = headerValue(headers, checksumHeaderName(algorithm))!.trim();
    if (!isValidChecksumValue(algorithm, value)) {
      throw invalidRequest(`Value for ${checksumHeaderName(algorithm)} header is invalid.`);
    }
    checkSdkAlgorithm(headers, algorithm);
    return { algorithm, source: 'header', expected: value };
  }
  if (headerValue(headers, 'x-amz-sdk-checksum-algorithm') !== undefined) {
    sdkAlgorithm(headers);
    throw invalidRequest(
      'x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.',
    );
  }
  return undefined;
}

function trailerExpectation(
  headers: HeaderBag,
  trailer: string,
  alsoInHeader: boolean,
  mode: PayloadMode,
): ChecksumExpectation {
  if (alsoInHeader) throw invalidRequest('Expecting a single x-amz-checksum- header');
  const algorithm = algorithmOfHeader(trailer);
  if (algorithm === undefined) throw invalidRequest('The value specified in the x-amz-trailer header is not supported');
  if (!TRAILER_MODES.has(mode)) throw new S3Error('MalformedTrailerError');
  checkSdkAlgorithm(headers, algorithm);
  return { algorithm, source: 'trailer' };
}

function sdkAlgorithm(headers: HeaderBag): ChecksumAlgorithm | undefined {
  const value = headerValue(headers, 'x-amz-sdk-checksum-algorithm');
  if (value === undefined) return undefined;
  const algorithm = parseChecksumAlgorithm(value);
  if (algorithm === undefined) {
    throw invalidRequest(
      'Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]',
    );
  }
  return algorithm;
}

/** x-amz-sdk-checksum-algorithm must name the algorithm whose value is sent. */
function checkSdkAlgorithm(headers: HeaderBag, algorithm: ChecksumAlgorithm): void {
  const declared = sdkAlgorithm(headers);
  if (declared !== undefined && declared !== algorithm) {
    throw invalidRequest('Value for x-amz-sdk-checksum-algorithm header is invalid.');
  }
}

function trailerChecksum(algorithm: ChecksumAlgorithm, trailers: ReadonlyMap<string, string>): string {
  const name = checksumHeaderName(algorithm);
  for (const key of trailers.keys()) {
    if (key !== name) throw new S3Error('MalformedTrailerError');
  }
  const value = trailers.get(name);
  if (value === undefined) throw new S3Error('MalformedTrailerError');
  if (!isValidChecksumValue(algorithm, value)) throw invalidRequest(`Value for ${name} trailing header is invalid.`);
  return value;
}
