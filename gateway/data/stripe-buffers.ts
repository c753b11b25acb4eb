// The gateway's stripe buffers, reused across uploads (common/buffer-pool.ts says why and how).
import { BufferPool, releaseBuffer } from '../../common/buffer-pool.js';
import type { StripeBuffers } from '../../erasure/stream.js';

/** Idle stripe buffers kept for reuse: 16 stripes of the default layout (1 MiB data + 512 KiB parity). */
const MAX_IDLE_BYTES = 24 * 1024 * 1024;

export const stripeBufferPool = new BufferPool(MAX_IDLE_BYTES);

export const pooledStripeBuffers: StripeBuffers = {
  take: (size) => stripeBufferPool.take(size),
  release: releaseBuffer,
};
