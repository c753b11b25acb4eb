// Random bytes for ids (request ids, version ids) on every request. crypto.randomBytes costs a
// few microseconds per call whatever the size, so small draws are cut from a pool refilled 4 KiB
// at a time from the same CSPRNG.
import { randomBytes, randomFillSync } from 'node:crypto';

const POOL = Buffer.allocUnsafe(4096);
let used = POOL.length;

/** `n` bytes from the CSPRNG (a copy: callers may keep it). */
export function pooledRandomBytes(n: number): Buffer {
  if (n > 256) return randomBytes(n);
  if (used + n > POOL.length) {
    randomFillSync(POOL);
    used = 0;
  }
  const out = Buffer.from(POOL.subarray(used, used + n));
  used += n;
  return out;
}
