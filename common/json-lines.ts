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

/** A body that is not JSON lines: `line` (1-based) is the first line that failed to parse. */
export class JsonLinesError extends Error {
  constructor(readonly line: number) {
    super(`line ${line} is not a JSON text`);
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
