// The storage seam: the namespace needs only ordered byte keys in a few key spaces, point reads,
// atomic multi-space batches and range cursors that can seek. LevelDB provides them here; a
// replicated ordered KV store could implement the same interface (it would also have to take
// over the in-process locking the store does, see store.ts).
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';

export const SPACES = ['buckets', 'objects', 'uploads', 'upload-keys', 'parts', 'nodes', 'shards', 'gc', 'repairs', 'users', 'access-keys', 'inline'] as const;
export type Space = (typeof SPACES)[number];

export type KvOp = { type: 'put'; space: Space; key: Buffer; value: Buffer } | { type: 'del'; space: Space; key: Buffer };

export interface KvRange {
  gt?: Buffer;
  gte?: Buffer;
  lt?: Buffer;
  limit?: number;
}

export interface KvCursor {
  /** The next entry in key order, or undefined at the end of the range. */
  next(): Promise<[Buffer, Buffer] | undefined>;
  /** Continue from the first key >= target (still bounded by the range). */
  seek(target: Buffer): void;
  close(): Promise<void>;
}

export interface KvEngine {
  get(space: Space, key: Buffer): Promise<Buffer | undefined>;
  /** Point reads of several keys at once; missing keys come back undefined, in input order. */
  getMany(space: Space, keys: Buffer[]): Promise<(Buffer | undefined)[]>;
  batch(ops: KvOp[], opts: { sync: boolean }): Promise<void>;
  cursor(space: Space, range: KvRange): KvCursor;
  close(): Promise<void>;
}

/** Every entry of a range, in key order (callers bound the range with `limit`). */
export async function scanRange(engine: KvEngine, space: Space, range: KvRange): Promise<[Buffer, Buffer][]> {
  const cursor = engine.cursor(space, range);
  const rows: [Buffer, Buffer][] = [];
  try {
    for (let entry = await cursor.next(); entry; entry = await cursor.next()) rows.push(entry);
  } finally {
    await cursor.close();
  }
  return rows;
}

type Db = Level<Buffer, Buffer>;
type Sub = AbstractSublevel<Db, string | Buffer | Uint8Array, Buffer, Buffer>;

const ENCODING = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;

export class LevelEngine implements KvEngine {
  private constructor(private readonly db: Db, private readonly subs: Map<Space, Sub>) {}

  /** Opens (creating if needed) the database at `dir`. Only one process may hold it. */
  static async open(dir: string): Promise<LevelEngine> {
    await mkdir(path.dirname(dir), { recursive: true });
    const db = new Level<Buffer, Buffer>(dir, ENCODING);
    await db.open();
    const subs = new Map<Space, Sub>(SPACES.map((s) => [s, db.sublevel<Buffer, Buffer>(s, ENCODING)]));
    return new LevelEngine(db, subs);
  }

  async get(space: Space, key: Buffer): Promise<Buffer | undefined> {
    const value = await this.sub(space).get(key);
    return value ?? undefined;
  }

  async getMany(space: Space, keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    if (keys.length === 0) return [];
    return (await this.sub(space).getMany(keys)).map((value) => value ?? undefined);
  }

  async batch(ops: KvOp[], opts: { sync: boolean }): Promise<void> {
    if (ops.length === 0) return;
    const chained = this.db.batch();
    for (const op of ops) {
      if (op.type === 'put') chained.put(op.key, op.value, { sublevel: this.sub(op.space) });
      else chained.del(op.key, { sublevel: this.sub(op.space) });
    }
    await chained.write({ sync: opts.sync });
  }

  cursor(space: Space, range: KvRange): KvCursor {
    const it = this.sub(space).iterator({ ...range });
    return {
      next: async () => (await it.next()) ?? undefined,
      seek: (target) => it.seek(target),
      close: () => it.close(),
    };
  }

  close(): Promise<void> {
    return this.db.close();
  }

  private sub(space: Space): Sub {
    const sub = this.subs.get(space);
    if (!sub) throw new Error(`unknown key space ${space}`);
    return sub;
  }
}
