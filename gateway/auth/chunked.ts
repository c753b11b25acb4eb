// Decoder of the aws-chunked body framing:
//   hex-size[;chunk-signature=sig]\r\n <data> \r\n ... 0[;chunk-signature=sig]\r\n
//   [name:value\r\n]* [x-amz-trailer-signature:sig\r\n] \r\n
// It is a push parser over arbitrary splits of the input: data bytes are passed on as
// zero-copy slices as they arrive, and only a header or trailer line (bounded) is ever
// buffered, so memory does not grow with the chunk or body size. Chunk data is released
// before its signature is checked (the signature follows the data); a bad signature
// fails the stream, and the consumer must not commit before the stream has ended.
import { createHash, type Hash } from 'node:crypto';
import { S3Error } from '../s3/errors.js';
import { EMPTY_SHA256, hmacHex, sha256Hex, signaturesEqual, spacedHex } from './signing.js';

export interface ChunkSigner {
  readonly signingKey: Buffer;
  readonly amzDate: string;
  readonly scope: string;
  readonly seedSignature: string;
  readonly accessKeyId: string;
  readonly canonicalRequest: string;
}

export interface ChunkedOptions {
  /** Present for STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER): every chunk is verified. */
  readonly signer?: ChunkSigner;
  /** Whether a trailer section may follow the last chunk, and whether it is signed. */
  readonly trailer: 'none' | 'unsigned' | 'signed';
  /** x-amz-decoded-content-length: more data than this fails at once. */
  readonly decodedLength: number;
  readonly maxChunkSize: number;
  readonly maxLineLength: number;
  readonly maxTrailerBytes: number;
  /** S3 refuses a non-final chunk below this size (0 disables the check). */
  readonly minChunkSize: number;
}

type State = 'size-line' | 'data' | 'data-cr' | 'data-lf' | 'trailer' | 'done';

const CR = 0x0d;
const LF = 0x0a;
const SIZE_LINE = /^([0-9a-fA-F]{1,16})((?:;[^;]*)*)$/;
const SIGNATURE = /^[0-9a-fA-F]{64}$/;

function terminated(): S3Error {
  return new S3Error('IncompleteBody', 'The request body terminated unexpectedly');
}

function malformedTrailer(): S3Error {
  return new S3Error('MalformedTrailerError');
}

export class AwsChunkedDecoder {
  private state: State = 'size-line';
  private line: Buffer[] = [];
  private lineLength = 0;
  private remaining = 0;
  private chunkHash: Hash | undefined;
  private chunkSignature = '';
  private previousSignature: string;
  private chunkCount = 0;
  private lastChunkSize = -1;
  private decoded = 0;
  private trailerBytes = 0;
  private canonicalTrailer = '';
  private trailerSignature: string | undefined;
  /** Trailing headers (lowercase names), available once the body has ended. */
  readonly trailers = new Map<string, string>();

  constructor(private readonly opts: ChunkedOptions) {
    this.previousSignature = opts.signer?.seedSignature ?? '';
  }

  get decodedBytes(): number {
    return this.decoded;
  }

  /** Feeds the next piece of the raw body; returns the decoded bytes it completes. */
  push(input: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < input.length) {
      switch (this.state) {
        case 'size-line':
        case 'trailer':
          pos = this.consumeLine(input, pos);
          break;
        case 'data':
          pos = this.consumeData(input, pos, out);
          break;
        case 'data-cr':
        case 'data-lf':
          pos = this.consumeDataEnd(input, pos);
          break;
        case 'done':
          throw new S3Error('InvalidRequest', 'The request contained data after the final chunk.');
      }
    }
    return out;
  }

  /** Call at the end of the raw body: fails unless the framing is complete. */
  end(): void {
    if (this.state === 'trailer' && this.lineLength === 0) this.finishTrailer();
    if (this.state !== 'done') throw terminated();
    if (this.decoded !== this.opts.decodedLength) throw terminated();
  }

  private consumeData(input: Buffer, pos: number, out: Buffer[]): number {
    const n = Math.min(this.remaining, input.length - pos);
    const slice = input.subarray(pos, pos + n);
    this.chunkHash?.update(slice);
    out.push(slice);
    this.remaining -= n;
    if (this.remaining === 0) this.state = 'data-cr';
    return pos + n;
  }

  private consumeDataEnd(input: Buffer, pos: number): number {
    const expected = this.state === 'data-cr' ? CR : LF;
    if (input[pos] !== expected) throw terminated();
    if (this.state === 'data-cr') {
      this.state = 'data-lf';
    } else {
      this.verifyChunk(this.chunkHash?.digest('hex') ?? '');
      this.state = 'size-line';
    }
    return pos + 1;
  }

  /** Buffers up to the next LF; a complete line is handed to the state's handler. */
  private consumeLine(input: Buffer, pos: number): number {
    const lf = input.indexOf(LF, pos);
    const end = lf < 0 ? input.length : lf;
    this.lineLength += end - pos;
    if (this.lineLength > this.opts.maxLineLength) {
      throw this.state === 'trailer' ? malformedTrailer() : terminated();
    }
    this.line.push(input.subarray(pos, end));
    if (lf < 0) return input.length;
    const raw = Buffer.concat(this.line).toString('latin1');
    this.line = [];
    this.lineLength = 0;
    if (this.state === 'size-line') this.onSizeLine(raw);
    else this.onTrailerLine(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
    return lf + 1;
  }

  private onSizeLine(raw: string): void {
    // Chunk headers must end in CRLF; a bare LF is not aws-chunked framing.
    if (!raw.endsWith('\r')) throw terminated();
    const match = SIZE_LINE.exec(raw.slice(0, -1));
    if (match === null) throw terminated();
    const size = parseInt(match[1]!, 16);
    this.checkChunkSize(size);
    this.chunkSignature = this.readChunkSignature(match[2]!);
    this.chunkCount++;
    this.lastChunkSize = size;
    if (size === 0) {
      this.verifyChunk(EMPTY_SHA256);
      this.state = 'trailer';
      return;
    }
    this.remaining = size;
    this.chunkHash = this.opts.signer ? createHash('sha256') : undefined;
    this.state = 'data';
  }

  private checkChunkSize(size: number): void {
    if (size > this.opts.maxChunkSize) {
      throw new S3Error('InvalidChunkSizeError', `Chunk size must not exceed ${this.opts.maxChunkSize} bytes`, {
        Chunk: this.chunkCount + 1,
        BadChunkSize: size,
      });
    }
    const previous = this.lastChunkSize;
    if (size > 0 && previous >= 0 && previous < this.opts.minChunkSize) {
      throw new S3Error('InvalidChunkSizeError', undefined, { Chunk: this.chunkCount, BadChunkSize: previous });
    }
    this.decoded += size;
    if (this.decoded > this.opts.decodedLength) throw terminated();
  }

  private readChunkSignature(extensions: string): string {
    if (this.opts.signer === undefined) return '';
    const params = extensions.split(';').slice(1);
    const signature = params.length === 1 && params[0]!.startsWith('chunk-signature=') ? params[0]!.slice(16) : '';
    if (!SIGNATURE.test(signature)) throw terminated();
    return signature;
  }

  private verifyChunk(dataHashHex: string): void {
    const signer = this.opts.signer;
    if (signer === undefined) return;
    const toSign = [
      'AWS4-HMAC-SHA256-PAYLOAD',
      signer.amzDate,
      signer.scope,
      this.previousSignature,
      EMPTY_SHA256,
      dataHashHex,
    ].join('\n');
    this.checkSignature(signer, toSign, this.chunkSignature);
    this.previousSignature = this.chunkSignature.toLowerCase();
  }

  private checkSignature(signer: ChunkSigner, toSign: string, provided: string): void {
    if (signaturesEqual(hmacHex(signer.signingKey, toSign), provided)) return;
    throw new S3Error('SignatureDoesNotMatch', undefined, {
      AWSAccessKeyId: signer.accessKeyId,
      StringToSign: toSign,
      SignatureProvided: provided,
      StringToSignBytes: spacedHex(toSign),
      CanonicalRequest: signer.canonicalRequest,
      CanonicalRequestBytes: spacedHex(signer.canonicalRequest),
    });
  }

  private onTrailerLine(line: string): void {
    this.trailerBytes += line.length + 2;
    if (this.trailerBytes > this.opts.maxTrailerBytes) throw malformedTrailer();
    if (line === '') {
      // Some clients end each trailing header with LF and put a blank line before the
      // signature line; a signed trailer is only over once its signature has come.
      const awaitingSignature = this.opts.trailer === 'signed' && this.trailers.size > 0 && this.trailerSignature === undefined;
      if (!awaitingSignature) this.finishTrailer();
      return;
    }
    if (this.opts.trailer === 'none' || this.trailerSignature !== undefined) throw malformedTrailer();
    const colon = line.indexOf(':');
    if (colon <= 0) throw malformedTrailer();
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'x-amz-trailer-signature') return void (this.trailerSignature = value);
    if (this.trailers.has(name)) throw malformedTrailer();
    this.trailers.set(name, value);
    this.canonicalTrailer += `${name}:${value}\n`;
  }

  private finishTrailer(): void {
    const signer = this.opts.signer;
    if (this.opts.trailer === 'signed' && signer !== undefined && (this.trailers.size > 0 || this.trailerSignature)) {
      if (this.trailerSignature === undefined) throw malformedTrailer();
      const toSign = [
        'AWS4-HMAC-SHA256-TRAILER',
        signer.amzDate,
        signer.scope,
        this.previousSignature,
        sha256Hex(this.canonicalTrailer),
      ].join('\n');
      this.checkSignature(signer, toSign, this.trailerSignature);
    }
    this.state = 'done';
  }
}

/** Wraps the decoder around a byte stream. */
export async function* decodeAwsChunked(
  source: AsyncIterable<Buffer>,
  decoder: AwsChunkedDecoder,
): AsyncGenerator<Buffer, void, undefined> {
  for await (const piece of source) {
    for (const data of decoder.push(piece)) yield data;
  }
  decoder.end();
}
