// The floor's HTTP plumbing: whole small bodies (common/http.ts reads them), async handlers,
// loopback listeners.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from '../../common/http.js';

/** Far above any body the floor reads whole (a batch of 64 inline records is ~0.4 MB). */
const MAX_WHOLE_BODY = 16 << 20;

export interface Listening {
  port: number;
  close: () => Promise<void>;
}

/** A whole body (the floor reads only small ones whole: records, inline objects, small shards). */
export function readAll(message: http.IncomingMessage): Promise<Buffer> {
  return readBody(message, MAX_WHOLE_BODY);
}

/** A server whose async handler's failure answers 500 (or cuts a reply already under way). */
export function serverOf(serve: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>): http.Server {
  return http.createServer((req, res) => {
    serve(req, res).catch((err: unknown) => {
      if (res.headersSent) res.destroy();
      else res.writeHead(500).end(String(err));
    });
  });
}

/** Listens on 127.0.0.1 (port 0); `close` drops every connection, then runs `after`. */
export async function listenLoopback(server: http.Server, after?: () => Promise<void>): Promise<Listening> {
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await after?.();
    },
  };
}
