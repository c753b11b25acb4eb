// The floor's HTTP plumbing: whole small bodies, async handlers, loopback listeners.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';

export interface Listening {
  port: number;
  close: () => Promise<void>;
}

/** A whole (small) HTTP body. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
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
