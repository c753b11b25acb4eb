// File helpers shared by the rooms that keep their own files (storage nodes' shards and pack logs,
// the namespace's value log).
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

/** Makes a directory's entries (a create, rename or unlink in it) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** pwrite until done. A short direct write leaves an unaligned rest, which the kernel refuses: that surfaces as the error. */
export async function writeFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten === 0) throw new Error('write made no progress');
    done += bytesWritten;
  }
}

/** Reads into `buf` from `position` until it is full, the file ends, or a read returns a count `more` rejects. */
export async function readFully(fh: FileHandle, buf: Buffer, position: number, more: (bytesRead: number) => boolean): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    got += bytesRead;
    if (bytesRead === 0 || !more(bytesRead)) break;
  }
  return got;
}
