// Who signed a request: the access key id a request claims → its secret and its principal.
// The gateway's root credentials (--access-key-id / CAIRN_SECRET_ACCESS_KEY) are the built-in
// administrator "root": answered from the config, never from the namespace, so they work on an
// empty cluster and cannot be disabled there. Every other key lives in the namespace (users and
// access keys, see namespace/users.ts) and is looked up through a small cache (common/ttl-cache.ts):
// an entry is used for `ttlMs` (2 s) at most, a key not seen before is fetched at once, and misses
// are cached too (so a flood of unknown key ids costs one namespace lookup per id per TTL). A
// disabled or deleted key or user therefore stops working within the TTL. If the namespace cannot
// be asked when an entry is due, the request fails (503) rather than trusting a stale entry.
import type { AccessKeyCredential, UserRecord } from '../../namespace/types.js';
import { TtlCache, type TtlCacheOptions, type TtlCacheStats } from '../../common/ttl-cache.js';

export type Principal =
  | { readonly type: 'root'; readonly userId: string; readonly displayName: string }
  | { readonly type: 'user'; readonly userId: string; readonly displayName: string; readonly pin: string }
  | { readonly type: 'anonymous' };

/**
 * Which user this is, not only which name: their uniqueId, or for a user made before users had
 * one, their creation time (a user deleted and made again under the name has neither of the
 * old). Bucket policies keep the pins of the users they name (BucketRecord.policyPrincipals).
 */
export function userPin(user: Pick<UserRecord, 'uniqueId' | 'createdAt'>): string {
  return user.uniqueId ?? `created ${user.createdAt}`;
}

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

export type IdentityCacheOptions = TtlCacheOptions;

/** The shape of every key the namespace issues; anything else is not asked about. */
const ISSUED_KEY_ID = /^AKIA[A-Z2-7]{16}$/;

export class IdentityCache {
  private readonly keys: TtlCache<Identity | undefined>;

  constructor(
    private readonly root: ReadonlyMap<string, string>,
    source: CredentialSource,
    opts: IdentityCacheOptions = {},
  ) {
    this.keys = new TtlCache(async (accessKeyId) => {
      const credential = await source.accessKeyCredential(accessKeyId);
      return credential === null ? undefined : usable(credential);
    }, opts);
  }

  /** Lookups of issued keys only: the root credentials never reach the cache. */
  get stats(): Readonly<TtlCacheStats> {
    return this.keys.stats;
  }

  /** The secret and principal of a usable key (it and its user active), or undefined. */
  async resolve(accessKeyId: string): Promise<Identity | undefined> {
    const rootSecret = this.root.get(accessKeyId);
    if (rootSecret !== undefined) return { secret: rootSecret, principal: ROOT };
    if (!ISSUED_KEY_ID.test(accessKeyId)) return undefined;
    return this.keys.get(accessKeyId);
  }
}

function usable({ key, user }: AccessKeyCredential): Identity | undefined {
  if (key.status !== 'active' || user.status !== 'active' || key.userId !== user.id) return undefined;
  return { secret: key.secretAccessKey, principal: { type: 'user', userId: user.id, displayName: user.displayName, pin: userPin(user) } };
}
