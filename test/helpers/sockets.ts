// Reading a paused socket a little at a time, as a slow or stopping client does.
import type net from 'node:net';

/**
 * Lets a paused socket flow until `bytes` more have arrived, then pauses it again; resolves early
 * if it closes. Every piece read is handed to `keep`.
 */
export function readSome(socket: net.Socket, bytes: number, keep: (piece: Buffer) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    let got = 0;
    const done = (): void => {
      socket.pause();
      socket.off('data', onData);
      socket.off('close', done);
      resolve();
    };
    const onData = (piece: Buffer): void => {
      keep(piece);
      got += piece.length;
      if (got >= bytes) done();
    };
    socket.on('data', onData);
    socket.once('close', done);
    socket.resume();
  });
}
