// Who signed a request: the access key id a request claims → its secret and its principal.
// The gateway's root credentials (--access-key-id / CAIRN_SECRET_ACCESS_KEY) are the built-in
// administrator "root": answered from the config, never from the namespace, so they work on an
// empty cluster and cannot be disabled there. Every other key lives in the namespace (users and
// access keys, see namespace/users.ts) and is looked up through a small cache: an entry is used for
// `ttlMs` (2 s) and fetched again after that, a key not seen before is fetched at once, and misses
// are cached too (so a flood of unknown key ids costs one namespace lookup per id per TTL). A
// disabled or deleted key or user therefore stops working within the TTL. If the namespace cannot
// be asked when an entry is due, the request fails (503) rather than trusting a stale entry.
import type { AccessKeyCredential } from '../../namespace/types.js';

export type Principal =
  | { readonly type: 'root'; readonly userId: string; readonly displayName: string }
  | { readonly type: 'user'; readonly userId: string; readonly displayName: string }
  | { readonly type: 'anonymous' };

/** The user id the root credentials act as: owner of the buckets they create. Reserved in the namespace. */
export const ROOT_USER_ID = 'root';
export const ROOT: Principal = { type: 'root', userId: ROOT_USER_ID, displayName: ROOT_USER_ID };
export const ANONYMOUS: Principal = { type: 'anonymous' };

export interface Identity {
  readonly secret: string;
  readonly principal: Principal;
}

export interface CredentialSource {
  /** The key with its secret and user, or null when there is no such key. */
  accessKeyCredential(accessKeyId: string): Promise<AccessKeyCredential | null>;
}

export interface IdentityCacheOptions {
  /** How long a looked-up key (or its absence) is trusted (default 2 s). */
  ttlMs?: number;
  /** Entries kept at most; the least recently fetched go first (default 10,000). */
  maxEntries?: number;
  now?: () => number;
}

/** The shape of every key the namespace issues; anything else is not asked about. */
const ISSUED_KEY_ID = /^AKIA[A-Z2-7]{16}$/;

interface Entry {
  identity: Identity | undefined;
  fetchedAt: number;
}

export class IdentityCache {
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<Identity | undefined>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly root: ReadonlyMap<string, string>,
    private readonly source: CredentialSource,
    opts: IdentityCacheOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 2_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** The secret and principal of a usable key (it and its user active), or undefined. */
  async resolve(accessKeyId: string): Promise<Identity | undefined> {
    const rootSecret = this.root.get(accessKeyId);
    if (rootSecret !== undefined) return { secret: rootSecret, principal: ROOT };
    if (!ISSUED_KEY_ID.test(accessKeyId)) return undefined;
    const cached = this.entries.get(accessKeyId);
    if (cached !== undefined && this.now() - cached.fetchedAt < this.ttlMs) return cached.identity;
    let pending = this.pending.get(accessKeyId);
    if (pending === undefined) {
      pending = this.fetch(accessKeyId).finally(() => this.pending.delete(accessKeyId));
      this.pending.set(accessKeyId, pending);
    }
    return pending;
  }

  private async fetch(accessKeyId: string): Promise<Identity | undefined> {
    const credential = await this.source.accessKeyCredential(accessKeyId);
    const identity = credential === null ? undefined : usable(credential);
    this.entries.delete(accessKeyId);
    this.entries.set(accessKeyId, { identity, fetchedAt: this.now() });
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
    }
    return identity;
  }
}

function usable({ key, user }: AccessKeyCredential): Identity | undefined {
  if (key.status !== 'active' || user.status !== 'active' || key.userId !== user.id) return undefined;
  return { secret: key.secretAccessKey, principal: { type: 'user', userId: user.id, displayName: user.displayName } };
}
