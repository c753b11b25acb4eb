// Continuation tokens for object listings: base64url of a version byte followed by the key bytes
// (bucket-relative) that the next page starts strictly after. A page that ends on a common prefix
// stores prefix + 0xFF, so the next page resumes after every key under that prefix without
// visiting them. The token carries no prefix or delimiter: a page is defined by its start alone.
import { invalidArgument } from './errors.js';

const VERSION = 1;
const MAX_BYTES = 1 + 1024 + 1;

export function encodeContinuation(after: Buffer): string {
  return Buffer.concat([Buffer.from([VERSION]), after]).toString('base64url');
}

export function decodeContinuation(token: string): Buffer {
  const bad = (): never => {
    throw invalidArgument('The continuation token provided is incorrect');
  };
  if (!/^[A-Za-z0-9_-]+$/.test(token) || token.length > Math.ceil((MAX_BYTES * 4) / 3)) bad();
  const raw = Buffer.from(token, 'base64url');
  if (raw.length < 2 || raw[0] !== VERSION) bad();
  return raw.subarray(1);
}
