// The gateway's stripe buffers, reused across uploads (common/buffer-pool.ts says why and how).
import { BufferPool, releaseBuffer } from '../../common/buffer-pool.js';
import type { StripeBuffers } from '../../erasure/stream.js';

/** Idle stripe buffers kept for reuse: 16 stripes of the default layout (1 MiB data + 512 KiB parity). */
const MAX_IDLE_BYTES = 24 * 1024 * 1024;

/** Idle stripe buffers are let go after this long without an upload taking one. */
const TRIM_AFTER_MS = 2_000;

export const stripeBufferPool = new BufferPool(MAX_IDLE_BYTES, TRIM_AFTER_MS);

export const pooledStripeBuffers: StripeBuffers = {
  take: (size) => stripeBufferPool.take(size),
  release: releaseBuffer,
};
