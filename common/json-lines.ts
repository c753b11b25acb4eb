// JSON Lines (https://jsonlines.org: one JSON text per line, each ended by '\n'), the body of the
// namespace's batch routes. Why not one JSON document: a batch of 64 small objects' records with
// their bytes inline is ~370 KB of JSON, and V8 allocates every string over 128 KiB in its
// large-object space, on fresh pages each time. Making or decoding such a string ran at ~260 MB/s on
// this machine kind against ~9 GB/s under the limit, and was half of the namespace's CPU on 4 KiB
// GETs at 256 clients. As lines, every item is a string of its own, small unless the item is.

export const JSON_LINES_TYPE = 'application/x-ndjson';

const NEWLINE = 0x0a;

/** The items as JSON lines in one Buffer (off the V8 heap, however large). */
export function encodeJsonLines(items: readonly unknown[]): Buffer {
  const texts = items.map((item, i) => {
    const text = JSON.stringify(item) as string | undefined;
    if (text === undefined) throw new TypeError(`item ${i} has no JSON form`);
    return text;
  });
  let size = 0;
  for (const text of texts) size += Buffer.byteLength(text) + 1;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const text of texts) {
    at += out.write(text, at);
    out[at++] = NEWLINE;
  }
  if (at !== size) throw new Error(`JSON lines: wrote ${at} bytes of ${size}`);
  return out;
}

/** A body that is not JSON lines (or blob lines): `line` (1-based) is the first line (item) that failed to parse. */
export class JsonLinesError extends Error {
  constructor(
    readonly line: number,
    message = `line ${line} is not a JSON text`,
  ) {
    super(message);
    this.name = 'JsonLinesError';
  }
}

/** Every line's value, in order. The last line may lack its '\n'; an empty line is an error. */
export function decodeJsonLines(bytes: Uint8Array): unknown[] {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const items: unknown[] = [];
  let start = 0;
  while (start < buf.length) {
    const newline = buf.indexOf(NEWLINE, start);
    const end = newline === -1 ? buf.length : newline;
    try {
      items.push(JSON.parse(buf.toString('utf8', start, end)));
    } catch {
      throw new JsonLinesError(items.length + 1);
    }
    start = end + 1;
  }
  return items;
}

/**
 * Blob lines: JSON lines whose items may each carry one run of raw bytes. An item is
 * `<n> <JSON text>\n` and then its n bytes (0: none); JSON text never holds a raw newline. The
 * namespace's batch routes carry small objects' bytes this way rather than as base64 inside the
 * JSON: base64 text and the JSON strings around it were ~20% of the heap the gateway allocated per
 * 4 KiB GET, and every byte was encoded, escaped, copied and decoded again between the value log
 * and the client's socket.
 */
export const BLOB_LINES_TYPE = 'application/x-cairn-blob-lines';

export interface BlobItem {
  value: unknown;
  blob?: Uint8Array;
}

const SPACE = 0x20;
/** Digits of an item's blob length: up to 10 (the namespace refuses bodies far smaller anyway). */
const BLOB_LENGTH = /^(0|[1-9][0-9]{0,9})$/;

/** The items as blob lines in one Buffer. */
export function encodeBlobLines(items: readonly BlobItem[]): Buffer {
  const heads = items.map((item, i) => {
    const text = JSON.stringify(item.value) as string | undefined;
    if (text === undefined) throw new TypeError(`item ${i} has no JSON form`);
    return `${item.blob?.length ?? 0} ${text}\n`;
  });
  let size = 0;
  for (let i = 0; i < items.length; i++) size += Buffer.byteLength(heads[i]!) + (items[i]!.blob?.length ?? 0);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < items.length; i++) {
    at += out.write(heads[i]!, at);
    const blob = items[i]!.blob;
    if (blob) {
      out.set(blob, at);
      at += blob.length;
    }
  }
  if (at !== size) throw new Error(`blob lines: wrote ${at} bytes of ${size}`);
  return out;
}

/** Every item's value and blob, in order. A blob is a view of `bytes`, not a copy. */
export function decodeBlobLines(bytes: Uint8Array): BlobItem[] {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const items: BlobItem[] = [];
  for (let at = 0; at < buf.length; ) {
    const item = items.length + 1;
    const space = buf.indexOf(SPACE, at);
    // A length has at most 10 digits: anything longer is not one, however far its first space.
    const lengthText = space !== -1 && space - at <= 10 ? buf.toString('latin1', at, space) : '';
    const newline = lengthText === '' ? -1 : buf.indexOf(NEWLINE, space);
    if (newline === -1 || !BLOB_LENGTH.test(lengthText)) throw new JsonLinesError(item, `item ${item} has no blob length and JSON line`);
    const blobEnd = newline + 1 + Number(lengthText);
    if (blobEnd > buf.length) throw new JsonLinesError(item, `item ${item}'s blob runs past the end of the body`);
    let value: unknown;
    try {
      value = JSON.parse(buf.toString('utf8', space + 1, newline));
    } catch {
      throw new JsonLinesError(item, `item ${item} is not a JSON text`);
    }
    items.push(blobEnd > newline + 1 ? { value, blob: buf.subarray(newline + 1, blobEnd) } : { value });
    at = blobEnd;
  }
  return items;
}
