// Small shards, packed: append-only logs of records instead of one file per shard.
//
// Why: on this project's VMs, creating, syncing and renaming one file per shard costs about 1.6 ms
// of CPU (nearly all kernel) whatever its size, against about 0.1 ms to append the same bytes to a
// log whose fsync is shared by every write in flight (measured: 3,000 writes of 16 KiB, 16 at a
// time, ext4). A 64 KiB object is six 16 KiB shards, so that fixed cost was most of its PUT.
//
// Layout: <dir>/packs/<seq>.log (seq: 8 decimal digits), with <seq>.idx and <seq>.dead beside it.
// A new log is started at every open and when the active one passes LOG_ROLL_BYTES; only the
// active log is appended to. A log is a run of records:
//   0  "CPK1"           4  u8 0xA5 (a second marker)
//   5  u8 id length     6  u16 0        8  u32 shard length      12 f64 mtime (ms since epoch)
//   20 u32 CRC32C of bytes 0..3 and 5..19 and of the id
//   24 the id, then the shard exactly as a shard file holds it (its 32-byte header, then frames)
// Appends go out from one loop, a batch at a time (one write, one fdatasync), and an append is
// acknowledged only once its batch is synced. A record torn by a crash is therefore followed only
// by records nobody was told were stored, and the scan at open stops at the first bad record.
// Records never change. A deleted or superseded record's offset is appended to its log's dead
// list (<seq>.dead: u32 offset, u32 CRC32C of it; synced before the delete is acknowledged; a torn
// or unwritten entry fails its CRC and is skipped). A sealed log gets an index (<seq>.idx: every
// record's offset, length, mtime and id, with a CRC32C over all), so an open reads the index and
// the dead list instead of the whole log; a log without a valid index is scanned, then indexed.
// A sealed log whose live bytes fall below half its size is compacted: its live records are
// appended again and its files removed.
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { GroupSync } from '../common/group-sync.js';
import type { Logger } from '../common/log.js';
import { fsyncDir, readFully, writeFully } from '../common/files.js';
import type { FileBytes, ShardFileReader } from './shard-file.js';

const MiB = 1024 * 1024;
const RECORD_MAGIC = Buffer.from('CPK1', 'latin1');
const MARKER = 0xa5;
const RECORD_HEADER_BYTES = 24;
/** The active log is sealed and a new one started once it holds this much. */
const LOG_ROLL_BYTES = 64 * MiB;
/** Most bytes one batch writes: a bound on the buffer it gathers. */
const BATCH_MAX_BYTES = 8 * MiB;
/** Largest shard a record may hold; bigger ones belong in shard files (and a scan must fit a record in one read). */
export const MAX_PACKED_SHARD_BYTES = 1 * MiB;
/** A sealed log is compacted once fewer than this share of its bytes are live. */
const COMPACT_BELOW_LIVE = 0.5;
/** Live records a compaction moves at once. */
const COMPACT_BATCH = 64;
const LOG_NAME = /^(\d{8})\.log$/;
/** An open that reads logs for longer than this logs its progress. */
const PROGRESS_EVERY_MS = 5000;

/** Where a packed shard's bytes are. */
export interface PackedShard extends Readonly<IndexEntry> {
  /** The log it is in. */
  readonly seq: number;
}

function recordBytes(p: PackedShard): number {
  return RECORD_HEADER_BYTES + Buffer.byteLength(p.id, 'latin1') + p.length;
}

function dataOffset(p: PackedShard): number {
  return p.offset + RECORD_HEADER_BYTES + Buffer.byteLength(p.id, 'latin1');
}

function recordHeader(id: string, length: number, mtimeMs: number): Buffer {
  const idBytes = Buffer.from(id, 'latin1');
  const h = Buffer.alloc(RECORD_HEADER_BYTES + idBytes.length);
  RECORD_MAGIC.copy(h, 0);
  h[4] = MARKER;
  h[5] = idBytes.length;
  h.writeUInt32LE(length, 8);
  h.writeDoubleLE(mtimeMs, 12);
  idBytes.copy(h, RECORD_HEADER_BYTES);
  h.writeUInt32LE(headerCrc(h, idBytes.length), 20);
  return h;
}

function headerCrc(h: Buffer, idLength: number): number {
  let crc = crc32c(h.subarray(0, 4));
  crc = crc32c(h.subarray(5, 20), crc);
  return crc32c(h.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + idLength), crc) >>> 0;
}

class LogFile {
  /** Bytes of records (live or dead) written or found; the next append goes here. */
  size = 0;
  /** Records appended while this is the active log, for its index when it is sealed. */
  appended: IndexEntry[] | undefined = [];
  /** Its dead list, opened at the first death. */
  private deadList: Promise<{ fh: FileHandle; syncer: GroupSync; size: number }> | undefined;
  liveBytes = 0;
  /** Readers and dead-list writes using the log: its files are closed only when none is left. */
  users = 0;
  retired = false;
  readonly syncer: GroupSync;

  constructor(readonly seq: number, readonly file: string, readonly fh: FileHandle) {
    this.syncer = new GroupSync(() => fh.datasync());
  }

  /** Closes once retired and no user holds it. */
  async closeIfDone(): Promise<void> {
    if (this.retired && this.users === 0) {
      await this.fh.close().catch(() => undefined);
      if (this.deadList) await (await this.deadList.catch(() => undefined))?.fh.close().catch(() => undefined);
    }
  }

  /** Records `offset` as dead, durably. */
  async bury(offset: number): Promise<void> {
    this.deadList ??= openDeadList(this.file);
    const list = await this.deadList;
    // Reserved before the write, so concurrent deaths land side by side.
    const at = list.size;
    list.size += DEAD_ENTRY_BYTES;
    await writeFully(list.fh, deadEntry(offset), at);
    await list.syncer.sync();
  }
}

const DEAD_ENTRY_BYTES = 8;

function deadEntry(offset: number): Buffer {
  const e = Buffer.alloc(DEAD_ENTRY_BYTES);
  e.writeUInt32LE(offset, 0);
  e.writeUInt32LE(crc32c(e.subarray(0, 4)) >>> 0, 4);
  return e;
}

function sidePath(logFile: string, ext: 'idx' | 'dead'): string {
  return logFile.replace(/\.log$/, `.${ext}`);
}

async function openDeadList(logFile: string): Promise<{ fh: FileHandle; syncer: GroupSync; size: number }> {
  const file = sidePath(logFile, 'dead');
  const fh = await fs.open(file, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
  const size = (await fh.stat()).size;
  // A new file's name must survive a crash as well as its entries.
  if (size === 0) await fsyncDir(path.dirname(file));
  // A torn entry at the end is skipped: the next one starts on an entry boundary.
  return { fh, syncer: new GroupSync(() => fh.datasync()), size: Math.ceil(size / DEAD_ENTRY_BYTES) * DEAD_ENTRY_BYTES };
}

/** Offsets in a log's dead list; entries that fail their CRC (torn, never written) are skipped. */
async function readDeadList(logFile: string): Promise<Set<number>> {
  const dead = new Set<number>();
  const bytes = await fs.readFile(sidePath(logFile, 'dead')).catch(() => Buffer.alloc(0));
  for (let at = 0; at + DEAD_ENTRY_BYTES <= bytes.length; at += DEAD_ENTRY_BYTES) {
    if ((crc32c(bytes.subarray(at, at + 4)) >>> 0) === bytes.readUInt32LE(at + 4)) dead.add(bytes.readUInt32LE(at));
  }
  return dead;
}

/** What a log's index holds of each record. */
interface IndexEntry {
  id: string;
  /** Offset of the record in its log. */
  offset: number;
  /** Bytes of the shard (what a shard file of it would hold). */
  length: number;
  mtimeMs: number;
}

const INDEX_MAGIC = Buffer.from('CPX1', 'latin1');

/** Writes a sealed log's index: whole or not at all (temp file, fsync, rename). */
async function writeIndex(logFile: string, entries: IndexEntry[]): Promise<void> {
  const parts: Buffer[] = [Buffer.concat([INDEX_MAGIC, u32(entries.length)])];
  for (const e of entries) {
    const fixed = Buffer.alloc(17);
    fixed.writeUInt32LE(e.offset, 0);
    fixed.writeUInt32LE(e.length, 4);
    fixed.writeDoubleLE(e.mtimeMs, 8);
    fixed[16] = Buffer.byteLength(e.id, 'latin1');
    parts.push(fixed, Buffer.from(e.id, 'latin1'));
  }
  const body = Buffer.concat(parts);
  const file = sidePath(logFile, 'idx');
  const tmp = `${file}.tmp`;
  const fh = await fs.open(tmp, 'w');
  try {
    await writeFully(fh, Buffer.concat([body, u32(crc32c(body) >>> 0)]), 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** A log's index, or undefined when missing, damaged, or naming bytes past the log's end. */
async function readIndex(logFile: string, logSize: number): Promise<IndexEntry[] | undefined> {
  const bytes = await fs.readFile(sidePath(logFile, 'idx')).catch(() => undefined);
  if (!bytes || bytes.length < 12 || !bytes.subarray(0, 4).equals(INDEX_MAGIC)) return undefined;
  const body = bytes.subarray(0, bytes.length - 4);
  if ((crc32c(body) >>> 0) !== bytes.readUInt32LE(bytes.length - 4)) return undefined;
  const entries: IndexEntry[] = [];
  let at = 8;
  for (let n = body.readUInt32LE(4); n > 0; n--) {
    if (at + 17 > body.length) return undefined;
    const idLength = body[at + 16]!;
    const e = { offset: body.readUInt32LE(at), length: body.readUInt32LE(at + 4), mtimeMs: body.readDoubleLE(at + 8), id: body.toString('latin1', at + 17, at + 17 + idLength) };
    at += 17 + idLength;
    if (at > body.length || e.offset + RECORD_HEADER_BYTES + idLength + e.length > logSize) return undefined;
    entries.push(e);
  }
  return at === body.length ? entries : undefined;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

interface PendingAppend {
  id: string;
  bytes: Buffer;
  length: number;
  mtimeMs: number;
  done(p: PackedShard): void;
  fail(err: unknown): void;
}

export class PackLog {
  private readonly logs = new Map<number, LogFile>();
  private readonly shards = new Map<string, PackedShard>();
  private active!: LogFile;
  private queue: PendingAppend[] = [];
  private writer: Promise<void> | undefined;
  /** Set and cleared synchronously with the drain loop, so no append can slip in between its end and the flag. */
  private draining = false;
  private compaction: Promise<void> | undefined;
  private closed = false;
  /** Appends and the batches (one write and one fdatasync each) they went out in; logs compacted. */
  readonly stats = { appends: 0, batches: 0, compactions: 0 };

  private constructor(readonly dir: string, private readonly log: Logger | undefined) {}

  /** Opens (creating) `dir`, reads every log's records, and starts a new active log. */
  static async open(dir: string, log?: Logger): Promise<PackLog> {
    await fs.mkdir(dir, { recursive: true });
    const packs = new PackLog(dir, log);
    // An index whose write a crash cut short: the log it was for is scanned instead.
    for (const name of await fs.readdir(dir)) if (name.endsWith('.idx.tmp')) await fs.rm(path.join(dir, name), { force: true });
    const seqs = await logSeqs(dir);
    // Reading every log takes a while on a node full of small shards: say how far it got.
    const started = performance.now();
    let said = started;
    for (const [n, seq] of seqs.entries()) {
      await packs.scan(seq);
      if (performance.now() - said >= PROGRESS_EVERY_MS) {
        said = performance.now();
        log?.info('reading shard logs', { logs: `${n + 1}/${seqs.length}`, shards: packs.shards.size, seconds: Math.round((said - started) / 1000) });
      }
    }
    if (said !== started) log?.info('read shard logs', { logs: seqs.length, shards: packs.shards.size, seconds: Math.round((performance.now() - started) / 1000) });
    await packs.roll();
    packs.compactWhenDue();
    return packs;
  }

  get count(): number {
    return this.shards.size;
  }

  has(id: string): boolean {
    return this.shards.has(id);
  }

  /** Every live packed shard. */
  all(): IterableIterator<PackedShard> {
    return this.shards.values();
  }

  /** The log file and offset of a packed shard's bytes (for operators and fault-injecting tests). */
  locate(id: string): { file: string; offset: number; length: number } | undefined {
    const p = this.shards.get(id);
    const log = p && this.logs.get(p.seq);
    return p && log ? { file: log.file, offset: dataOffset(p), length: p.length } : undefined;
  }

  /**
   * Appends a shard (the bytes a shard file would hold) and resolves once it is durable; it then
   * replaces any earlier record of the id, which is marked dead.
   */
  async append(id: string, shard: Buffer[], mtimeMs = Date.now()): Promise<PackedShard> {
    const placed = await this.write(id, shard, mtimeMs);
    await this.publish(placed, this.shards.get(id));
    return placed;
  }

  /** Marks the id's record dead (durably); false when it is not packed here. */
  async remove(id: string): Promise<boolean> {
    const p = this.shards.get(id);
    if (!p) return false;
    this.shards.delete(id);
    await this.bury(p);
    return true;
  }

  /**
   * A reader of a packed shard's bytes, as a shard file reader (position 0 = the shard's header).
   * `whole`: its first read fetches the whole shard (a GET or verify reads it all anyway); else
   * each read fetches only what it asks for (a stat or a listing wants the header alone).
   */
  reader(id: string, whole: boolean): ShardFileReader | undefined {
    const p = this.shards.get(id);
    const log = p && this.logs.get(p.seq);
    if (!p || !log) return undefined;
    return new PackedShardReader(p, log, whole);
  }

  /** Waits for appends and a compaction under way, then closes every log. */
  async close(): Promise<void> {
    this.closed = true;
    await this.writer;
    await this.compaction;
    // Indexed now, the next open need not read it.
    if (this.active.size > 0) await this.seal(this.active);
    for (const log of this.logs.values()) {
      log.retired = true;
      await log.closeIfDone();
    }
  }

  // ---- writing ----

  private write(id: string, shard: Buffer[], mtimeMs: number): Promise<PackedShard> {
    if (this.closed) return Promise.reject(new Error('pack log is closed'));
    const length = shard.reduce((n, b) => n + b.length, 0);
    if (length > MAX_PACKED_SHARD_BYTES) throw new RangeError(`a packed shard holds at most ${MAX_PACKED_SHARD_BYTES} bytes, not ${length}`);
    const bytes = Buffer.concat([recordHeader(id, length, mtimeMs), ...shard]);
    return new Promise((done, fail) => {
      this.queue.push({ id, bytes, length, mtimeMs, done, fail });
      if (!this.draining) {
        this.draining = true;
        this.writer = this.drain();
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        let bytes = 0;
        let n = 0;
        while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.bytes.length <= BATCH_MAX_BYTES)) bytes += this.queue[n++]!.bytes.length;
        await this.writeBatch(this.queue.splice(0, n), bytes);
      }
    } finally {
      this.draining = false;
    }
  }

  private async writeBatch(batch: PendingAppend[], bytes: number): Promise<void> {
    try {
      if (this.active.size > 0 && this.active.size + bytes > LOG_ROLL_BYTES) await this.roll();
      const log = this.active;
      const start = log.size;
      // Claimed before the write: a failed write leaves unknown bytes there, and the log is sealed.
      log.size += bytes;
      try {
        await writeFully(log.fh, batch.length === 1 ? batch[0]!.bytes : Buffer.concat(batch.map((p) => p.bytes), bytes), start);
        await log.syncer.sync();
      } catch (err) {
        await this.roll().catch(() => undefined);
        throw err;
      }
      this.stats.batches++;
      this.stats.appends += batch.length;
      let offset = start;
      for (const p of batch) {
        log.appended?.push({ id: p.id, offset, length: p.length, mtimeMs: p.mtimeMs });
        p.done({ id: p.id, seq: log.seq, offset, length: p.length, mtimeMs: p.mtimeMs });
        offset += p.bytes.length;
      }
    } catch (err) {
      for (const p of batch) p.fail(err);
    }
  }

  /** Makes `placed` the id's record; `was` (if any, and not already replaced) is buried. */
  private async publish(placed: PackedShard, was: PackedShard | undefined): Promise<void> {
    const current = this.shards.get(placed.id);
    if (current !== was) {
      // Deleted or rewritten while this copy was written (only a compaction's move can race so).
      await this.bury(placed, false);
      return;
    }
    this.shards.set(placed.id, placed);
    this.logs.get(placed.seq)!.liveBytes += recordBytes(placed);
    if (was) await this.bury(was);
  }

  /** Adds a record to its log's dead list (durably); `counted` = its bytes are in its log's live bytes. */
  private async bury(p: PackedShard, counted = true): Promise<void> {
    const log = this.logs.get(p.seq);
    if (!log) return;
    if (counted) log.liveBytes -= recordBytes(p);
    if (!log.retired) {
      // A compaction may retire the log meanwhile: its files stay open until this is done.
      log.users++;
      try {
        await log.bury(p.offset);
      } finally {
        log.users--;
        await log.closeIfDone();
      }
    }
    this.compactWhenDue();
  }

  private async roll(): Promise<void> {
    if (this.active) await this.seal(this.active);
    const seq = Math.max(0, ...this.logs.keys()) + 1;
    const file = logPath(this.dir, seq);
    const log = new LogFile(seq, file, await fs.open(file, 'wx+'));
    await fsyncDir(this.dir);
    this.logs.set(seq, log);
    this.active = log;
  }

  /** Indexes a log that takes no more appends; without its index it is only scanned at open, never lost. */
  private async seal(log: LogFile): Promise<void> {
    const entries = log.appended;
    log.appended = undefined;
    if (!entries) return;
    await writeIndex(log.file, entries).catch((err: unknown) => this.log?.warn('writing a shard log index failed; the log will be scanned at open', { file: log.file, err }));
  }

  // ---- compaction ----

  private compactWhenDue(): void {
    if (this.compaction || this.closed) return;
    const due = [...this.logs.values()].find((l) => l !== this.active && !l.retired && l.liveBytes < l.size * COMPACT_BELOW_LIVE);
    if (!due) return;
    this.compaction = this.compact(due)
      .catch((err: unknown) => this.log?.error('compacting a shard log failed; it stays as it is', { file: due.file, err }))
      .finally(() => {
        this.compaction = undefined;
        this.compactWhenDue();
      });
  }

  /** Moves a sealed log's live records to the active log, then removes its file. */
  private async compact(log: LogFile): Promise<void> {
    const started = performance.now();
    const live = [...this.shards.values()].filter((p) => p.seq === log.seq);
    for (let i = 0; i < live.length; i += COMPACT_BATCH) {
      if (this.closed) return;
      await Promise.all(live.slice(i, i + COMPACT_BATCH).map((p) => this.move(p, log)));
    }
    log.retired = true;
    // The index and dead list first: a log left without them is only scanned, never misread.
    await fs.rm(sidePath(log.file, 'idx'), { force: true });
    await fs.rm(sidePath(log.file, 'dead'), { force: true });
    await fs.rm(log.file, { force: true });
    await fsyncDir(this.dir);
    this.logs.delete(log.seq);
    await log.closeIfDone();
    this.stats.compactions++;
    this.log?.info('compacted a shard log', { file: path.basename(log.file), moved: live.length, bytesFreed: log.size, ms: Math.round(performance.now() - started) });
  }

  private async move(p: PackedShard, from: LogFile): Promise<void> {
    if (this.shards.get(p.id) !== p) return;
    const bytes = Buffer.allocUnsafe(p.length);
    const got = await readFully(from.fh, bytes, dataOffset(p), () => true);
    if (got !== p.length) throw new Error(`log ${from.file} ends inside the record of ${p.id}`);
    const placed = await this.write(p.id, [bytes], p.mtimeMs);
    await this.publish(placed, p);
  }

  // ---- reading the logs at open ----

  /** Reads a log's records in order; stops (and says so) at the first that does not check out. */
  private async scan(seq: number): Promise<void> {
    const file = logPath(this.dir, seq);
    const fh = await fs.open(file, 'r+');
    const fileSize = (await fh.stat()).size;
    if (fileSize === 0) {
      // The active log of a run that wrote nothing.
      await fh.close();
      await fs.rm(sidePath(file, 'idx'), { force: true });
      await fs.rm(sidePath(file, 'dead'), { force: true });
      await fs.rm(file);
      return;
    }
    const log = new LogFile(seq, file, fh);
    log.appended = undefined;
    log.size = fileSize;
    this.logs.set(seq, log);
    const dead = await readDeadList(file);
    const take = (r: IndexEntry): void => {
      if (dead.has(r.offset)) return;
      const p: PackedShard = { ...r, seq };
      const earlier = this.shards.get(p.id);
      if (earlier) this.logs.get(earlier.seq)!.liveBytes -= recordBytes(earlier);
      this.shards.set(p.id, p);
      log.liveBytes += recordBytes(p);
    };
    const indexed = await readIndex(file, fileSize);
    if (indexed) {
      indexed.forEach(take);
      return;
    }
    const entries: IndexEntry[] = [];
    const { end, bad } = await readRecords(fh, fileSize, (r) => {
      entries.push(r);
      take(r);
    });
    // Records past a bad one were never acknowledged (see the top of this file) or are lost to rot;
    // the log is sealed either way, and its bytes count as dead until it is compacted away.
    if (bad) this.log?.warn('shard log has unreadable bytes; records after them are ignored', { file, offset: end, why: bad });
    // Indexed now, the next open need not read it again.
    log.appended = entries;
    await this.seal(log);
  }
}

function logPath(dir: string, seq: number): string {
  return path.join(dir, `${String(seq).padStart(8, '0')}.log`);
}

async function logSeqs(dir: string): Promise<number[]> {
  return (await fs.readdir(dir))
    .map((name) => LOG_NAME.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** Calls `onRecord` for each record in order; `end` is where the records stop, `bad` says why when short of the file's end. */
async function readRecords(fh: FileHandle, fileSize: number, onRecord: (r: IndexEntry) => void): Promise<{ end: number; bad?: string }> {
  const window = new ReadWindow(fh, fileSize);
  let at = 0;
  while (at < fileSize) {
    const head = await window.get(at, RECORD_HEADER_BYTES);
    if (!head) return { end: at, bad: 'a record header runs past the end' };
    const idLength = head[5]!;
    const full = await window.get(at, RECORD_HEADER_BYTES + idLength);
    if (!full || !head.subarray(0, 4).equals(RECORD_MAGIC) || head[4] !== MARKER || headerCrc(full, idLength) !== head.readUInt32LE(20)) {
      return { end: at, bad: 'a record header does not check out' };
    }
    const length = head.readUInt32LE(8);
    const size = RECORD_HEADER_BYTES + idLength + length;
    if (length > MAX_PACKED_SHARD_BYTES || at + size > fileSize) return { end: at, bad: 'a record runs past the end' };
    onRecord({ id: full.toString('latin1', RECORD_HEADER_BYTES), offset: at, length, mtimeMs: head.readDoubleLE(12) });
    at += size;
  }
  return { end: at };
}

/**
 * The live packed shards in the logs under `dir`, read without opening a store (the node may be
 * running; a log it removes meanwhile is skipped): for operators' tools and fault-injecting tests.
 */
export async function readPackedShards(dir: string): Promise<Map<string, { file: string; offset: number; length: number }>> {
  const found = new Map<string, { file: string; offset: number; length: number }>();
  const seqs = await logSeqs(dir).catch(() => []);
  for (const seq of seqs) {
    const file = logPath(dir, seq);
    const fh = await fs.open(file, 'r').catch(() => undefined);
    if (!fh) continue;
    try {
      const dead = await readDeadList(file);
      await readRecords(fh, (await fh.stat()).size, (r) => {
        const offset = r.offset + RECORD_HEADER_BYTES + Buffer.byteLength(r.id, 'latin1');
        if (!dead.has(r.offset)) found.set(r.id, { file, offset, length: r.length });
      });
    } finally {
      await fh.close();
    }
  }
  return found;
}

const NO_RELEASE = (): void => undefined;

/** Sequential reads of a file through one 1 MiB buffer. */
class ReadWindow {
  private buf = Buffer.alloc(0);
  private start = 0;

  constructor(private readonly fh: FileHandle, private readonly size: number) {}

  /** Bytes [at, at + length), or undefined if the file ends first. */
  async get(at: number, length: number): Promise<Buffer | undefined> {
    if (at + length > this.size) return undefined;
    if (at < this.start || at + length > this.start + this.buf.length) {
      const want = Math.min(Math.max(length, MiB), this.size - at);
      const buf = Buffer.allocUnsafe(want);
      const got = await readFully(this.fh, buf, at, () => true);
      this.buf = buf.subarray(0, got);
      this.start = at;
      if (got < length) return undefined;
    }
    return this.buf.subarray(at - this.start, at - this.start + length);
  }
}

/**
 * A packed shard seen as a shard file: position 0 is its header. Read `whole`, the first read
 * fetches all of it (at most MAX_PACKED_SHARD_BYTES), so opening one (its header) and reading its
 * frames cost one pread, not two.
 */
class PackedShardReader implements ShardFileReader {
  readonly mode = 'buffered';
  private closed = false;
  private whole: Promise<Buffer> | undefined;

  constructor(private readonly shard: PackedShard, private readonly log: LogFile, private readonly readWhole: boolean) {
    log.users++;
  }

  async read(position: number, length: number): Promise<FileBytes> {
    if (this.closed) throw new Error('shard file is closed');
    if (!this.readWhole) return { bytes: await this.fetch(position, length), release: NO_RELEASE };
    this.whole ??= this.fetch(0, this.shard.length);
    const whole = await this.whole;
    return { bytes: whole.subarray(Math.min(position, whole.length), Math.min(position + length, whole.length)), release: NO_RELEASE };
  }

  /** Bytes [position, position + length) of the shard, fewer at its end. */
  private async fetch(position: number, length: number): Promise<Buffer> {
    const n = Math.max(0, Math.min(length, this.shard.length - position));
    const buf = Buffer.allocUnsafe(n);
    const got = n === 0 ? 0 : await readFully(this.log.fh, buf, dataOffset(this.shard) + position, () => true);
    return buf.subarray(0, got);
  }

  stat(): Promise<{ size: number; mtime: Date }> {
    return Promise.resolve({ size: this.shard.length, mtime: new Date(this.shard.mtimeMs) });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.log.users--;
    await this.log.closeIfDone();
  }
}
