// The S3 "additional checksums": names, wire widths and incremental hashers.
import { createHash } from 'node:crypto';
import { crc32, crc32c } from '@node-rs/crc32';
import { Crc64Nvme } from './crc64nvme.js';

export const CHECKSUM_ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

export interface Hasher {
  update(data: Uint8Array): void;
  /** Raw digest bytes (big-endian for the CRCs), as S3 base64-encodes them. */
  digest(): Buffer;
}

/** Digest length in bytes, which fixes the exact base64 length S3 accepts. */
const DIGEST_BYTES: Readonly<Record<ChecksumAlgorithm, number>> = {
  CRC32: 4,
  CRC32C: 4,
  CRC64NVME: 8,
  SHA1: 20,
  SHA256: 32,
};

export function parseChecksumAlgorithm(name: string): ChecksumAlgorithm | undefined {
  const upper = name.trim().toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(upper) ? (upper as ChecksumAlgorithm) : undefined;
}

export function checksumHeaderName(algorithm: ChecksumAlgorithm): string {
  return `x-amz-checksum-${algorithm.toLowerCase()}`;
}

/** The XML element name S3 uses for the checksum, e.g. ChecksumCRC32. */
export function checksumXmlName(algorithm: ChecksumAlgorithm): string {
  return `Checksum${algorithm}`;
}

/** The algorithm named by an `x-amz-checksum-*` header name, if it is one S3 knows. */
export function algorithmOfHeader(headerName: string): ChecksumAlgorithm | undefined {
  const lower = headerName.toLowerCase();
  return CHECKSUM_ALGORITHMS.find((a) => checksumHeaderName(a) === lower);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** S3 rejects a value that is not canonical base64 of exactly the digest width. */
export function isValidChecksumValue(algorithm: ChecksumAlgorithm, value: string): boolean {
  if (!BASE64.test(value) || value.length % 4 !== 0) return false;
  const decoded = Buffer.from(value, 'base64');
  return decoded.length === DIGEST_BYTES[algorithm] && decoded.toString('base64') === value;
}

class CrcHasher implements Hasher {
  private state = 0;
  constructor(private readonly fn: (input: Uint8Array, initial?: number) => number) {}
  update(data: Uint8Array): void {
    if (data.length > 0) this.state = this.fn(data, this.state);
  }
  digest(): Buffer {
    const out = Buffer.allocUnsafe(4);
    out.writeUInt32BE(this.state >>> 0, 0);
    return out;
  }
}

class NodeHasher implements Hasher {
  private readonly hash;
  constructor(name: 'sha1' | 'sha256' | 'md5') {
    this.hash = createHash(name);
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  digest(): Buffer {
    return this.hash.digest();
  }
}

export function createHasher(algorithm: ChecksumAlgorithm): Hasher {
  switch (algorithm) {
    case 'CRC32':
      return new CrcHasher(crc32);
    case 'CRC32C':
      return new CrcHasher(crc32c);
    case 'CRC64NVME':
      return new Crc64Nvme();
    case 'SHA1':
      return new NodeHasher('sha1');
    case 'SHA256':
      return new NodeHasher('sha256');
  }
}

/** Base64 checksum of a whole buffer (for tests and small bodies). */
export function checksumOf(algorithm: ChecksumAlgorithm, data: Uint8Array): string {
  const hasher = createHasher(algorithm);
  hasher.update(data);
  return hasher.digest().toString('base64');
}

/** A multipart checksum-of-checksums carries its part count ("…-3"); it describes no byte stream. */
export function checksumTypeOf(value: string): 'FULL_OBJECT' | 'COMPOSITE' {
  return /-\d+$/.test(value) ? 'COMPOSITE' : 'FULL_OBJECT';
}
