// The digest thread: hashes the bodies of large PUTs off the event loop (see digest-thread.ts for
// the protocol). Each batch's buffer goes back with its ack, to be filled again.
import { parentPort } from 'node:worker_threads';
import { BodyHashers } from './body-digests.js';
import type { FromDigestThread, ToDigestThread } from './digest-thread.js';

const port = parentPort;
if (!port) throw new Error('digest-thread-main.ts runs only as a worker thread');
const streams = new Map<number, BodyHashers>();
const reply = (message: FromDigestThread, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

port.on('message', (message: ToDigestThread) => {
  const { id } = message;
  try {
    switch (message.op) {
      case 'open':
        streams.set(id, new BodyHashers(message.spec));
        break;
      case 'data': {
        const hashers = streams.get(id);
        if (!hashers) throw new Error(`digest stream ${id} is not open`);
        hashers.update(new Uint8Array(message.buffer, 0, message.length));
        reply({ op: 'ack', id, buffer: message.buffer }, [message.buffer]);
        break;
      }
      case 'finish': {
        const hashers = streams.get(id);
        if (!hashers) throw new Error(`digest stream ${id} is not open`);
        streams.delete(id);
        reply({ op: 'done', id, digests: hashers.digests() });
        break;
      }
      case 'abort':
        streams.delete(id);
        break;
      case 'stats':
        reply({ op: 'stats', id, open: streams.size });
        break;
    }
  } catch (err) {
    streams.delete(id);
    reply({ op: 'error', id, message: err instanceof Error ? err.message : String(err) });
  }
});
