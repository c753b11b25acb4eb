// Reading a Readable one chunk at a time, as the chunks were pushed.
//
// A Readable's own async iterator calls read() with no size, which joins every chunk buffered at
// that moment into one new Buffer: a copy of whatever arrived while the consumer was busy. On the
// repair's k source streams that copy was 5% of the repair process's CPU, and it is pure waste
// for consumers that take chunks as they come (ExactReader, views of received chunks).

import { finished, type Readable } from 'node:stream';

/** Chunks held before the stream is paused (the source then stops reading its socket). */
const HIGH_WATER_CHUNKS = 16;

/**
 * Yields the stream's chunks unjoined, with back-pressure. A stream that fails or closes before
 * its end throws after the chunks that did arrive; breaking out early destroys the stream (as
 * for-await over the stream itself does).
 */
export async function* chunksOf(stream: Readable): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  let settled = false;
  let failure: unknown;
  let notify: (() => void) | undefined;
  const wake = (): void => {
    const resolve = notify;
    notify = undefined;
    resolve?.();
  };
  const onData = (chunk: Buffer | string): void => {
    queue.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (queue.length >= HIGH_WATER_CHUNKS) stream.pause();
    wake();
  };
  // finished() reports a premature close as an error, as the stream's own iterator does.
  const stopWatching = finished(stream, (err) => {
    if (err) failure = err;
    settled = true;
    wake();
  });
  stream.on('data', onData);
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk !== undefined) {
        if (queue.length < HIGH_WATER_CHUNKS / 2 && stream.isPaused() && !settled) stream.resume();
        yield chunk;
        continue;
      }
      if (failure !== undefined) throw failure;
      if (settled) return;
      await new Promise<void>((resolve) => (notify = resolve));
    }
  } finally {
    stream.off('data', onData);
    stopWatching();
    if (!settled) {
      // Some sources (undici's bodies) answer destroy() with an 'error' event: nobody is listening
      // for the abandoned stream any more, and an unheard 'error' would take the process down.
      stream.on('error', () => undefined);
      stream.destroy();
    }
  }
}
