// Writing and reading one shard file: around the page cache (O_DIRECT) where the filesystem allows
// it, through it where not (tmpfs, some network filesystems).
//
// Why around it: a shard is written once and read rarely soon after, so caching its pages on the
// way to disk buys little and evicts what readers do use — the reason MinIO writes with O_DIRECT
// too. On this project's VMs it is also the largest single cost of a PUT: a buffered write costs
// 5–10 ms of kernel CPU per MiB (measured: 192 MiB with fsync, 1.9 s sys buffered vs 0.03 s direct),
// and the nodes write 1.5× every object's bytes.
//
// O_DIRECT wants the memory address, the file offset and the length aligned to the device's
// logical block. Bytes are therefore copied into an aligned staging buffer and written a full
// buffer at a time; the last, partial buffer is padded to the alignment and the file is then cut
// to its exact length. The header at offset 0 is written last (a file whose header does not check
// out was never completely written), by rewriting the first aligned block, kept aside for that.
//
// Large reads go around the cache too: a shard written directly is not in the page cache, and a
// cold buffered read costs 1.3 ms of kernel CPU per MiB here against 0.1 ms for a direct read into
// a buffer already mapped. That holds only for REUSED buffers (a fresh aligned buffer per read is no
// cheaper than the cold buffered read), so reads land in pooled buffers that the reader hands back
// once the bytes have been sent (FileBytes.release). Small shards keep the page cache, where a
// second read of a hot object is free.
import { createRequire } from 'node:module';
import { constants, fstatSync, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { readFully, writeFully } from '../common/files.js';
import type { FileIdentity, ReusableShardFile } from './open-shards.js';

interface DirectIoBinding {
  readonly O_DIRECT: number;
  getAlignedBuffer(size: number, alignment: number): Buffer;
}

const directIo = createRequire(import.meta.url)('@ronomon/direct-io') as DirectIoBinding;

/** Memory, offset and length unit of direct writes: covers 512- and 4096-byte logical blocks. */
export const DIRECT_ALIGN = 4096;
/** Bytes staged before a direct write; also the batch size of buffered writes. */
export const STAGE_BYTES = 1024 * 1024;
/**
 * Idle staging buffers kept for the next writes (each in-flight write holds one). A fresh one is
 * a zeroed 1 MiB allocation freed by the GC: at 16, the 48 shard files of 8 parts in flight (one
 * process, 6 disks) mostly got fresh ones, and the allocations were 3.5% of the process's samples
 * and a third of its CPU per MiB above a 64 MiB PUT's. The pool never holds more than were once
 * in use together.
 */
const MAX_IDLE_STAGES = 64;
/** Pooled read buffers hold a read of up to this many bytes (a 1 MiB batch starting anywhere); larger reads get their own. */
export const READ_BUFFER_BYTES = STAGE_BYTES + 2 * DIRECT_ALIGN;
/**
 * Idle read buffers kept (a read holds its pre-verified 2 MiB and the batch it reads ahead while the socket drains).
 * The pool never holds more than were once in use together. At 32, a repair (2 workers reading 4
 * shards each from one storage process) missed it on 29% of its reads, and every miss is a fresh
 * aligned MiB to fault in: 128 took the misses from 3,259 to 89 and the storage process from 0.73
 * to 0.56 cores at the same rebuild rate (repair bench).
 */
const MAX_IDLE_READS = 128;

/** How a shard file is written or read: around the page cache, or through it. */
export type IoMode = 'direct' | 'buffered';

export interface ShardFile {
  readonly mode: IoMode;
  /** Appends bytes after the header area, in order. The chunk may be reused once this resolves. */
  append(chunk: Buffer): Promise<void>;
  /** Writes `header` at offset 0, cuts the file to its exact length and makes it durable (fsync). */
  finish(header: Buffer): Promise<void>;
  /** Idempotent; after a failure it only releases what the file holds. */
  close(): Promise<void>;
}

/** A run of file bytes in a buffer that may be pooled. */
export interface FileBytes {
  readonly bytes: Buffer;
  /**
   * Hands the buffer back for reuse: call it once, when nothing will read `bytes` again (for a
   * socket, when the write has called back). Not calling it only costs the reuse.
   */
  release(): void;
}

export interface ShardFileReader {
  readonly mode: IoMode;
  /** Bytes [position, position + length), fewer at the end of the file. */
  read(position: number, length: number): Promise<FileBytes>;
  stat(): Promise<{ size: number; mtime: Date }>;
  close(): Promise<void>;
}

/** Opens `file` for reading; ENOENT and other open errors surface as thrown. */
export async function openShardFileForRead(file: string, mode: IoMode): Promise<ReusableShardFile> {
  if (mode === 'buffered') return new BufferedShardReader(await fs.open(file, 'r'));
  return new DirectShardReader(await fs.open(file, constants.O_RDONLY | directIo.O_DIRECT));
}

/** Creates `file` (which must not exist) for writing a shard whose header takes `headerBytes`. */
export async function createShardFile(file: string, mode: IoMode, headerBytes: number): Promise<ShardFile> {
  if (mode === 'buffered') return new BufferedShardFile(await fs.open(file, 'wx'), headerBytes);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | directIo.O_DIRECT;
  return new DirectShardFile(await fs.open(file, flags, 0o644), headerBytes);
}

/**
 * Whether direct writes and reads work in `dir`: a test file is written, read back (buffered and
 * directly) and removed. Filesystems without O_DIRECT refuse the open (EINVAL); anything else
 * going wrong also means "buffered".
 */
export async function probeDirectIo(dir: string): Promise<boolean> {
  const file = path.join(dir, `direct-io-probe-${randomBytes(6).toString('hex')}.tmp`);
  let shard: ShardFile | undefined;
  try {
    shard = await createShardFile(file, 'direct', 16);
    const body = randomBytes(DIRECT_ALIGN + 100);
    await shard.append(body);
    const header = randomBytes(16);
    await shard.finish(header);
    const back = await fs.readFile(file);
    if (!(back.length === 16 + body.length && back.subarray(0, 16).equals(header) && back.subarray(16).equals(body))) return false;
    // Reads are probed too: the filesystem must take O_DIRECT reads at an unaligned start and end.
    const reader = await openShardFileForRead(file, 'direct');
    try {
      const part = await reader.read(100, DIRECT_ALIGN);
      const same = part.bytes.equals(back.subarray(100, 100 + DIRECT_ALIGN));
      part.release();
      return same;
    } finally {
      await reader.close();
    }
  } catch {
    return false;
  } finally {
    await shard?.close().catch(() => undefined);
    await fs.rm(file, { force: true }).catch(() => undefined);
  }
}

/** What both ways of writing share: the open file, its stat, and a close that runs once. */
abstract class OpenShardFile {
  protected closed = false;

  constructor(protected readonly fh: FileHandle) {}

  stat(): Promise<{ size: number; mtime: Date }> {
    return this.fh.stat();
  }

  /** Synchronous: fstat reads no disk, and a kept file is checked before every reuse (open-shards.ts). */
  identity(): FileIdentity {
    const st = fstatSync(this.fh.fd);
    return { nlink: st.nlink, size: st.size, mtimeMs: st.mtimeMs };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
    this.release();
  }

  /** Hands back what the file held, once it is closed (no write can be using it then). */
  protected release(): void {}
}

// ---- through the page cache -------------------------------------------------------------------

class BufferedShardFile extends OpenShardFile implements ShardFile {
  readonly mode = 'buffered';
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private position: number;

  constructor(fh: FileHandle, headerBytes: number) {
    super(fh);
    this.position = headerBytes;
  }

  async append(chunk: Buffer): Promise<void> {
    // Batched: one writev per STAGE_BYTES instead of one write per network chunk.
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= STAGE_BYTES) await this.flush();
  }

  async finish(header: Buffer): Promise<void> {
    await this.flush();
    await writeFully(this.fh, header, 0);
    await this.fh.sync();
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    let rest = this.pending;
    let offset = this.position;
    this.position += this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    while (rest.length > 0) {
      const { bytesWritten } = await this.fh.writev(rest, offset);
      offset += bytesWritten;
      rest = dropBytes(rest, bytesWritten);
    }
  }
}

/** The buffers after the first `n` bytes (a short writev leaves a tail to write again). */
function dropBytes(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  let skip = n;
  while (i < bufs.length && skip >= bufs[i]!.length) skip -= bufs[i++]!.length;
  if (i === bufs.length) return [];
  return [bufs[i]!.subarray(skip), ...bufs.slice(i + 1)];
}

// ---- around the page cache --------------------------------------------------------------------

const idleStages: Buffer[] = [];
const idleHeads: Buffer[] = [];

function takeAligned(idle: Buffer[], size: number): Buffer {
  return idle.pop() ?? directIo.getAlignedBuffer(size, DIRECT_ALIGN);
}

function giveBack(idle: Buffer[], buf: Buffer, maxIdle = MAX_IDLE_STAGES): void {
  if (idle.length < maxIdle) idle.push(buf);
}

class DirectShardFile extends OpenShardFile implements ShardFile {
  readonly mode = 'direct';
  private stage: Buffer | undefined = takeAligned(idleStages, STAGE_BYTES);
  /** A copy of the file's first aligned block once the first stage has gone to disk. */
  private head: Buffer | undefined;
  /** File offset of stage[0]. */
  private stageStart = 0;
  /** Bytes of the stage in use. */
  private fill: number;

  constructor(fh: FileHandle, headerBytes: number) {
    super(fh);
    if (headerBytes > DIRECT_ALIGN) throw new RangeError(`a header of ${headerBytes} bytes does not fit the first aligned block`);
    this.stage!.fill(0, 0, headerBytes);
    this.fill = headerBytes;
  }

  async append(chunk: Buffer): Promise<void> {
    const stage = this.live();
    for (let at = 0; at < chunk.length; ) {
      const n = chunk.copy(stage, this.fill, at);
      this.fill += n;
      at += n;
      if (this.fill === STAGE_BYTES) await this.writeStage();
    }
  }

  async finish(header: Buffer): Promise<void> {
    const stage = this.live();
    const length = this.stageStart + this.fill;
    // A file within one stage has its first block still here; a longer one kept it aside.
    const head = this.stageStart === 0 ? stage : this.head!;
    header.copy(head, 0);
    if (this.fill > 0) {
      const padded = Math.ceil(this.fill / DIRECT_ALIGN) * DIRECT_ALIGN;
      stage.fill(0, this.fill, padded);
      await writeFully(this.fh, stage.subarray(0, padded), this.stageStart);
    }
    if (head !== stage) await writeFully(this.fh, head, 0);
    await this.fh.truncate(length);
    await this.fh.sync();
  }

  protected override release(): void {
    if (this.stage) giveBack(idleStages, this.stage);
    if (this.head) giveBack(idleHeads, this.head);
    this.stage = this.head = undefined;
  }

  private live(): Buffer {
    if (!this.stage || this.closed) throw new Error('shard file is closed');
    return this.stage;
  }

  /** Writes the full stage out. */
  private async writeStage(): Promise<void> {
    const stage = this.live();
    if (this.stageStart === 0) {
      // The header goes in last: keep the first block to rewrite it then.
      this.head = takeAligned(idleHeads, DIRECT_ALIGN);
      stage.copy(this.head, 0, 0, DIRECT_ALIGN);
    }
    await writeFully(this.fh, stage, this.stageStart);
    this.stageStart += STAGE_BYTES;
    this.fill = 0;
  }
}

// ---- reading ----------------------------------------------------------------------------------

const idleReads: Buffer[] = [];
const NOTHING_TO_RELEASE = (): void => undefined;

class BufferedShardReader extends OpenShardFile implements ReusableShardFile {
  readonly mode = 'buffered';

  async read(position: number, length: number): Promise<FileBytes> {
    const buf = Buffer.allocUnsafe(length);
    const got = await readFully(this.fh, buf, position, () => true);
    return { bytes: buf.subarray(0, got), release: NOTHING_TO_RELEASE };
  }
}

class DirectShardReader extends OpenShardFile implements ReusableShardFile {
  readonly mode = 'direct';

  async read(position: number, length: number): Promise<FileBytes> {
    if (this.closed) throw new Error('shard file is closed');
    const from = Math.floor(position / DIRECT_ALIGN) * DIRECT_ALIGN;
    const to = Math.ceil((position + length) / DIRECT_ALIGN) * DIRECT_ALIGN;
    const pooled = to - from <= READ_BUFFER_BYTES;
    const buf = pooled ? takeAligned(idleReads, READ_BUFFER_BYTES) : directIo.getAlignedBuffer(to - from, DIRECT_ALIGN);
    let got: number;
    try {
      // A read that stops short of an aligned end has met the end of the file.
      got = await readFully(this.fh, buf.subarray(0, to - from), from, (n) => n % DIRECT_ALIGN === 0);
    } catch (err) {
      if (pooled) giveBack(idleReads, buf, MAX_IDLE_READS);
      throw err;
    }
    const skip = position - from;
    const bytes = buf.subarray(Math.min(skip, got), Math.min(skip + length, got));
    return { bytes, release: pooled ? releaseOnce(buf) : NOTHING_TO_RELEASE };
  }
}

/** A second release of the same buffer would let two reads share it: only the first counts. */
function releaseOnce(buf: Buffer): () => void {
  return once(() => giveBack(idleReads, buf, MAX_IDLE_READS));
}

/**
 * Releases for `holders` users of one read (say, the frames of a batch, each sent on its own): the
 * buffer goes back when every one has been called, and each counts once however often it is called.
 */
export function shareRelease(read: FileBytes, holders: number): (() => void)[] {
  let left = holders;
  const releaseOne = (): void => {
    if (--left === 0) read.release();
  };
  return Array.from({ length: holders }, () => once(releaseOne));
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (!done) fn();
    done = true;
  };
}

