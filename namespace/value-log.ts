// The value log: segment files that small objects' bytes are appended to, so that LevelDB holds
// only a pointer to them (the WiscKey split). In LevelDB those bytes were written again at every
// memtable flush and compaction level: with 4 KiB PUTs at 256 clients, LevelDB's compaction thread
// spent 0.05–0.1 ms of CPU per PUT, as much as the namespace's event loop, and its flushes were the
// 4 KiB PUT tail. Here a value is written once, and moved again only when its segment is compacted.
//
// Layout: <dir>/<segment>.vlog (segment: 8 decimal digits). A new segment is started at every open
// and when the active one passes its roll size; only the active one is appended to. A segment is a
// run of entries:
//   0  "CVL1"   4  u16 key length   6  u16 0   8  u32 value length   12 u32 CRC32C of the value
//   16 u32 CRC32C of bytes 0..15 and of the key
//   20 the key (its LevelDB key: which object the bytes belong to), then the value
// An append batch is one write, made durable when asked (O_DSYNC); the caller commits pointers to
// it only after that, so a pointer never names bytes a crash could lose. What a crash cuts short is
// never pointed to, and is dead space like a deleted value's.
import { constants as fsConstants, readSync } from 'node:fs';
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { fsyncDir, readFully, writeFully } from '../common/files.js';

/** Where one value is: what LevelDB keeps instead of the bytes. */
export interface ValuePointer {
  segment: number;
  /** Offset of the entry (its header) in the segment. */
  offset: number;
  keyLength: number;
  valueLength: number;
  /** CRC32C of the value, checked at every read. */
  crc32c: number;
}

const POINTER_VERSION = 1;
const POINTER_BYTES = 19;

export function encodePointer(p: ValuePointer): Buffer {
  const b = Buffer.allocUnsafe(POINTER_BYTES);
  b[0] = POINTER_VERSION;
  b.writeUInt32BE(p.segment, 1);
  b.writeUInt32BE(p.offset, 5);
  b.writeUInt16BE(p.keyLength, 9);
  b.writeUInt32BE(p.valueLength, 11);
  b.writeUInt32BE(p.crc32c, 15);
  return b;
}

export function decodePointer(b: Buffer): ValuePointer {
  if (b.length !== POINTER_BYTES || b[0] !== POINTER_VERSION) throw new Error(`not a value pointer (${b.length} bytes, version ${b[0]})`);
  return { segment: b.readUInt32BE(1), offset: b.readUInt32BE(5), keyLength: b.readUInt16BE(9), valueLength: b.readUInt32BE(11), crc32c: b.readUInt32BE(15) };
}

const ENTRY_MAGIC = Buffer.from('CVL1', 'latin1');
const ENTRY_HEADER_BYTES = 20;
/** A key longer than a u16 cannot be recorded; LevelDB keys of objects are far shorter (bucket + 1,024-byte key + version). */
const MAX_KEY_BYTES = 0xffff;
/** Offsets are u32: a segment stops taking appends well before. */
const MAX_SEGMENT_BYTES = 0xffff_ffff;

/** Bytes an entry takes in its segment: what its segment's live count holds for it. */
export function entryBytes(p: Pick<ValuePointer, 'keyLength' | 'valueLength'>): number {
  return ENTRY_HEADER_BYTES + p.keyLength + p.valueLength;
}

function entryHeader(key: Buffer, value: Buffer, valueCrc: number): Buffer {
  const h = Buffer.alloc(ENTRY_HEADER_BYTES);
  ENTRY_MAGIC.copy(h, 0);
  h.writeUInt16LE(key.length, 4);
  h.writeUInt32LE(value.length, 8);
  h.writeUInt32LE(valueCrc, 12);
  h.writeUInt32LE(crc32c(key, crc32c(h.subarray(0, 16))) >>> 0, 16);
  return h;
}

/** A value whose bytes do not match their pointer: bit rot, or a segment changed under the log. */
export class ValueIntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueIntegrityError';
  }
}

export interface ValueLogOptions {
  /** The active segment is sealed and a new one started once it holds this much (default 64 MiB). */
  rollBytes?: number;
}

interface SegmentFile {
  readonly id: number;
  readonly file: string;
  readonly fh: FileHandle;
  /**
   * The active segment opened again with O_DSYNC: a synced append is one write that returns
   * durable, not a write and then an fdatasync, each a trip through libuv's pool (4 KiB PUTs at 32
   * clients: about 3% more of them, interleaved).
   */
  syncFh?: FileHandle;
  /** Bytes written (or claimed by a write under way); the next append goes here. */
  size: number;
}

/** An entry as a scan of its segment finds it. */
export interface ScannedEntry {
  key: Buffer;
  pointer: ValuePointer;
}

const SEGMENT_NAME = /^(\d{8})\.vlog$/;
const DEFAULT_ROLL_BYTES = 64 * 1024 * 1024;
/** How much a segment scan reads at once. */
const SCAN_READ_BYTES = 1024 * 1024;

export class ValueLog {
  private readonly segments = new Map<number, SegmentFile>();
  private active!: SegmentFile;
  private readonly rollBytes: number;
  /** A roll under way: appends that find the active segment full all wait for this one. */
  private rolling: Promise<void> | undefined;

  private constructor(readonly dir: string, opts: ValueLogOptions) {
    this.rollBytes = Math.min(opts.rollBytes ?? DEFAULT_ROLL_BYTES, MAX_SEGMENT_BYTES / 2);
  }

  /** Opens (creating) `dir` with the segments it holds, and starts a new active segment. */
  static async open(dir: string, opts: ValueLogOptions = {}): Promise<ValueLog> {
    await fs.mkdir(dir, { recursive: true });
    const values = new ValueLog(dir, opts);
    for (const name of (await fs.readdir(dir)).sort()) {
      const id = SEGMENT_NAME.exec(name)?.[1];
      if (id === undefined) continue;
      const file = path.join(dir, name);
      const fh = await fs.open(file, 'r');
      values.segments.set(Number(id), { id: Number(id), file, fh, size: (await fh.stat()).size });
    }
    await values.roll();
    return values;
  }

  /** Every segment and its size in bytes. */
  sizes(): Map<number, number> {
    return new Map([...this.segments.values()].map((s) => [s.id, s.size]));
  }

  get activeSegment(): number {
    return this.active.id;
  }

  /**
   * Appends the values (one write) and, with `sync`, makes them durable before resolving to their
   * pointers, in order. A failed write leaves unknown bytes behind: the active segment is sealed
   * and the next append starts a new one.
   */
  async append(entries: readonly { key: Buffer; value: Buffer }[], sync: boolean): Promise<ValuePointer[]> {
    if (entries.length === 0) return [];
    if (this.active.size >= this.rollBytes) await this.rollOnce();
    const segment = this.active;
    const parts: Buffer[] = [];
    const pointers: ValuePointer[] = [];
    let offset = segment.size;
    for (const { key, value } of entries) {
      if (key.length > MAX_KEY_BYTES) throw new RangeError(`a value log key holds at most ${MAX_KEY_BYTES} bytes, not ${key.length}`);
      const crc = crc32c(value) >>> 0;
      parts.push(entryHeader(key, value, crc), key, value);
      pointers.push({ segment: segment.id, offset, keyLength: key.length, valueLength: value.length, crc32c: crc });
      offset += entryBytes({ keyLength: key.length, valueLength: value.length });
    }
    if (offset > MAX_SEGMENT_BYTES) throw new RangeError(`one append of ${offset - segment.size} bytes does not fit a value log segment`);
    const start = segment.size;
    // Claimed before the write, so a write that fails midway is never overwritten by the next.
    segment.size = offset;
    try {
      await writeFully(sync && segment.syncFh ? segment.syncFh : segment.fh, Buffer.concat(parts, offset - start), start);
    } catch (err) {
      if (segment === this.active) await this.rollOnce().catch(() => undefined);
      throw err;
    }
    return pointers;
  }

  /**
   * The value a pointer names, checked against its CRC32C; undefined when its segment is gone (a
   * compaction moved the value and removed the segment since the pointer was read). The read is
   * synchronous: a value is at most a few KiB, and LevelDB's point reads here are too.
   */
  read(p: ValuePointer): Buffer | undefined {
    const segment = this.segments.get(p.segment);
    if (!segment) return undefined;
    const at = p.offset + ENTRY_HEADER_BYTES + p.keyLength;
    const value = Buffer.allocUnsafe(p.valueLength);
    let got = 0;
    while (got < value.length) {
      const n = readSync(segment.fh.fd, value, got, value.length - got, at + got);
      if (n === 0) break;
      got += n;
    }
    if (got !== value.length) throw new ValueIntegrityError(`value log segment ${segment.file} ends before the ${p.valueLength} bytes at ${at}`);
    if (crc32c(value) >>> 0 !== p.crc32c) throw new ValueIntegrityError(`the ${p.valueLength} bytes at ${at} of value log segment ${segment.file} fail their CRC32C`);
    return value;
  }

  /**
   * The entries of a segment, in order, as their headers describe them (values are not read or
   * checked: a reader of one does that). Stops at the first entry whose header fails its check: a
   * crash's torn tail, or damage, after which nothing can be told apart.
   */
  async *entries(id: number): AsyncGenerator<ScannedEntry> {
    const segment = this.segments.get(id);
    if (!segment) return;
    const window = new ReadWindow(segment.fh, segment.size);
    for (let offset = 0; offset + ENTRY_HEADER_BYTES <= segment.size; ) {
      const header = await window.bytesAt(offset, ENTRY_HEADER_BYTES);
      if (!header || !header.subarray(0, 4).equals(ENTRY_MAGIC)) return;
      const keyLength = header.readUInt16LE(4);
      const key = await window.bytesAt(offset + ENTRY_HEADER_BYTES, keyLength);
      if (!key || crc32c(key, crc32c(header.subarray(0, 16))) >>> 0 !== header.readUInt32LE(16)) return;
      const pointer: ValuePointer = { segment: id, offset, keyLength, valueLength: header.readUInt32LE(8), crc32c: header.readUInt32LE(12) };
      yield { key: Buffer.from(key), pointer };
      offset += entryBytes(pointer);
    }
  }

  /** Where a value's bytes are on disk (for operators and fault-injecting tests). */
  locate(p: ValuePointer): { file: string; offset: number } | undefined {
    const segment = this.segments.get(p.segment);
    return segment && { file: segment.file, offset: p.offset + ENTRY_HEADER_BYTES + p.keyLength };
  }

  /** Deletes a sealed segment: the caller has made sure, durably, that nothing points into it. */
  async remove(id: number): Promise<void> {
    const segment = this.segments.get(id);
    if (!segment) return;
    if (segment === this.active) throw new Error(`value log segment ${id} is the active one`);
    // Out of the map first: a read from here on gets undefined and reads its pointer again.
    this.segments.delete(id);
    await segment.fh.close();
    await segment.syncFh?.close();
    await fs.rm(segment.file, { force: true });
    await fsyncDir(this.dir);
  }

  async close(): Promise<void> {
    for (const segment of this.segments.values()) {
      await segment.fh.close().catch(() => undefined);
      await segment.syncFh?.close().catch(() => undefined);
    }
    this.segments.clear();
  }

  private rollOnce(): Promise<void> {
    this.rolling ??= this.roll().finally(() => {
      this.rolling = undefined;
    });
    return this.rolling;
  }

  private async roll(): Promise<void> {
    const id = Math.max(0, ...this.segments.keys()) + 1;
    const file = path.join(this.dir, `${String(id).padStart(8, '0')}.vlog`);
    const fh = await fs.open(file, 'wx+');
    const syncFh = await fs.open(file, fsConstants.O_WRONLY | fsConstants.O_DSYNC).catch(async (err: unknown) => {
      await fh.close();
      throw err;
    });
    const segment: SegmentFile = { id, file, fh, syncFh, size: 0 };
    // The new name must survive a crash before any pointer to it is committed.
    await fsyncDir(this.dir);
    // The segment sealed here is only read from now on.
    const sealed = this.active?.syncFh;
    if (sealed) {
      this.active.syncFh = undefined;
      await sealed.close();
    }
    this.segments.set(id, segment);
    this.active = segment;
  }
}

/** Reads a file forward in large pieces, handing out the byte ranges asked for. */
class ReadWindow {
  private start = 0;
  private bytes = Buffer.alloc(0);

  constructor(private readonly fh: FileHandle, private readonly size: number) {}

  /** Bytes [position, position + length), or undefined past the end of the file. */
  async bytesAt(position: number, length: number): Promise<Buffer | undefined> {
    if (position + length > this.size) return undefined;
    if (position < this.start || position + length > this.start + this.bytes.length) {
      const piece = Buffer.allocUnsafe(Math.min(Math.max(length, SCAN_READ_BYTES), this.size - position));
      const got = await readFully(this.fh, piece, position, () => true);
      this.start = position;
      this.bytes = piece.subarray(0, got);
      if (got < length) return undefined;
    }
    return this.bytes.subarray(position - this.start, position - this.start + length);
  }
}
