// Pure: how S3 turns part checksums into an object checksum for a multipart upload.
//  - COMPOSITE (CRC32, CRC32C, SHA1, SHA256): base64(hash(raw part checksum ‖ ...)) + "-N". It
//    describes no byte sequence a client can hash, which is why readers skip values with "-N".
//  - FULL_OBJECT (CRC32, CRC32C, CRC64NVME): the CRC of the whole object, combined from the parts'
//    CRCs and lengths (crc-combine.ts). CRC64NVME is always full-object.
import { createHasher, type ChecksumAlgorithm } from './checksums.js';
import { crcOfConcatenation, isCombinable } from './crc-combine.js';

export const CHECKSUM_TYPES = ['COMPOSITE', 'FULL_OBJECT'] as const;
export type ChecksumType = (typeof CHECKSUM_TYPES)[number];

export function parseChecksumType(value: string): ChecksumType | undefined {
  const upper = value.trim().toUpperCase();
  return (CHECKSUM_TYPES as readonly string[]).includes(upper) ? (upper as ChecksumType) : undefined;
}

/** What S3 picks when CreateMultipartUpload names an algorithm but no type. */
export function defaultChecksumType(algorithm: ChecksumAlgorithm): ChecksumType {
  return algorithm === 'CRC64NVME' ? 'FULL_OBJECT' : 'COMPOSITE';
}

/** SHA digests cannot be combined, and S3 offers CRC64NVME only as a full-object checksum. */
export function supportsChecksumType(algorithm: ChecksumAlgorithm, type: ChecksumType): boolean {
  return type === 'FULL_OBJECT' ? isCombinable(algorithm) : algorithm !== 'CRC64NVME';
}

/** `partValues` are the parts' base64 checksums in object order. */
export function compositeChecksum(algorithm: ChecksumAlgorithm, partValues: readonly string[]): string {
  const hasher = createHasher(algorithm);
  for (const value of partValues) hasher.update(Buffer.from(value, 'base64'));
  return `${hasher.digest().toString('base64')}-${partValues.length}`;
}

export function fullObjectChecksum(algorithm: ChecksumAlgorithm, parts: readonly { value: string; size: number }[]): string {
  if (!isCombinable(algorithm)) throw new RangeError(`${algorithm} has no full-object form for multipart uploads`);
  return crcOfConcatenation(
    algorithm,
    parts.map((p) => ({ crc: Buffer.from(p.value, 'base64'), length: p.size })),
  ).toString('base64');
}
