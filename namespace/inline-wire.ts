// How an inline object's bytes travel between the gateway and the namespace. In memory a record
// holds them raw (`inline.bytes`). On the batch routes in blob lines (common/json-lines.ts) they
// leave the record and go raw beside its JSON line; everywhere else JSON carries them as base64
// (`inline.data`).
import type { BlobItem } from '../common/json-lines.js';
import type { ObjectRecord } from './types.js';
import { fail, fields } from './validate.js';

/** The record without its raw bytes, and the bytes, for a blob lines item. */
export function splitInlineBytes(record: ObjectRecord): { record: ObjectRecord; bytes?: Buffer } {
  const bytes = record.inline?.bytes;
  if (!bytes) return { record };
  return { record: { ...record, inline: { crc32c: record.inline!.crc32c } }, bytes };
}

/**
 * Puts an item's blob back into its record as raw inline bytes. `record` may be unchecked input:
 * a blob needs a record with an `inline` object to go to (the record itself is validated later).
 */
export function joinInlineBytes(record: unknown, blob: BlobItem['blob'], what: string): void {
  if (blob === undefined) return;
  const { inline } = fields(record, `${what}.record`);
  if (inline === undefined) fail(`${what}: bytes came with a record that has no inline field`);
  fields(inline, `${what}.record.inline`).bytes = Buffer.isBuffer(blob) ? blob : Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
}

/** The record as JSON carries it: raw inline bytes as base64. */
export function inlineAsBase64(record: ObjectRecord): ObjectRecord {
  const bytes = record.inline?.bytes;
  if (!bytes) return record;
  return { ...record, inline: { crc32c: record.inline!.crc32c, data: bytes.toString('base64') } };
}
