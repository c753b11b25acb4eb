// The digests a PUT body needs, computed together in one pass: MD5 (the ETag, Content-MD5),
// SHA-256 when the request signed its payload, and the S3 additional checksum when there is one.
// Pure: the same class runs on the event loop for small bodies and in the digest thread for
// large ones (digest-thread.ts).
import { createHash, type Hash } from 'node:crypto';
import { createHasher, type ChecksumAlgorithm, type Hasher } from './checksums.js';

export interface BodyDigestSpec {
  readonly sha256: boolean;
  readonly checksum: ChecksumAlgorithm | undefined;
}

export interface BodyDigests {
  readonly md5: Buffer;
  readonly sha256: Buffer | undefined;
  readonly checksum: Buffer | undefined;
}

export class BodyHashers {
  private readonly md5: Hash = createHash('md5');
  private readonly sha256: Hash | undefined;
  private readonly checksum: Hasher | undefined;

  constructor(spec: BodyDigestSpec) {
    this.sha256 = spec.sha256 ? createHash('sha256') : undefined;
    this.checksum = spec.checksum === undefined ? undefined : createHasher(spec.checksum);
  }

  update(piece: Uint8Array): void {
    this.md5.update(piece);
    this.sha256?.update(piece);
    this.checksum?.update(piece);
  }

  digests(): BodyDigests {
    return { md5: this.md5.digest(), sha256: this.sha256?.digest(), checksum: this.checksum?.digest() };
  }
}
