// Users and their access keys (access control, issue 6). A user owns buckets and access keys; the
// gateway verifies SigV4 with a key's secret, so the secret is stored as is (HMAC needs it) and
// leaves this module only in the answer to createAccessKey and in credential(), the gateway's
// lookup. Listings never carry it. Writes are rare (operator commands) and serialised by one lock;
// every one is fsynced. The root credentials of the gateway are not stored here: "root" is a
// reserved user id (validate.ts).
import { randomBytes } from 'node:crypto';
import { scanRange, type KvEngine, type KvOp } from './engine.js';
import * as errors from './errors.js';
import { accessKeyKey, userKey } from './keys.js';
import { KeyedLock } from './lock.js';
import { decode, encode } from './records.js';
import type { AccessKeyCredential, AccessKeyRecord, BucketRecord, CreatedAccessKey, PrincipalStatus, UserRecord } from './types.js';
import * as v from './validate.js';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** "AKIA" + 16 characters of [A-Z2-7]: 80 random bits, the shape AWS's long-term key ids have. */
export function newAccessKeyId(): string {
  return 'AKIA' + randomBase32(16);
}

/** "AIDA" + 17 characters of [A-Z2-7] (85 random bits), the shape of AWS's unique user ids. */
export function newUniqueUserId(): string {
  return 'AIDA' + randomBase32(17);
}

function randomBase32(length: number): string {
  const bytes = randomBytes(Math.ceil((length * 5) / 8));
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5 && out.length < length) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

/** 40 characters of base64 (240 random bits), like an AWS secret access key. */
export function newSecretAccessKey(): string {
  return randomBytes(30).toString('base64');
}

/** A key record without its secret, built field by field so nothing else can slip through. */
function publicKey(key: CreatedAccessKey): AccessKeyRecord {
  return { accessKeyId: key.accessKeyId, userId: key.userId, createdAt: key.createdAt, status: key.status };
}

export class UserDirectory {
  private readonly lock = new KeyedLock();

  constructor(private readonly engine: KvEngine, private readonly opts: { sync: boolean; now: () => number }) {}

  createUser(id: string, displayName?: string): Promise<UserRecord> {
    const userId = v.newUserId(id);
    const name = displayName === undefined ? userId : v.displayName(displayName);
    return this.write(async () => {
      if (await this.readUser(userId)) throw errors.entityAlreadyExists(`user ${JSON.stringify(userId)}`);
      // A bucket may still name this id as owner: made by a user deleted while a gateway's cache
      // still let them in, or before buckets had user owners (then the owner is an access key id).
      // A new user must not silently inherit it.
      const orphan = (await this.bucketsOwnedBy(userId))[0];
      if (orphan) {
        throw new errors.NamespaceError(409, 'EntityAlreadyExists', `bucket ${JSON.stringify(orphan.name)} is owned by ${JSON.stringify(userId)}, which is no user: a new user may not take that name`);
      }
      const user: UserRecord = { id: userId, uniqueId: newUniqueUserId(), displayName: name, createdAt: this.isoNow(), status: 'active' };
      await this.batch([{ type: 'put', space: 'users', key: userKey(userId), value: encode(user) }]);
      return user;
    });
  }

  async getUser(id: string): Promise<UserRecord> {
    const userId = v.userId(id);
    const user = await this.readUser(userId);
    if (!user) throw errors.noSuchEntity(`user ${JSON.stringify(userId)}`);
    return user;
  }

  async listUsers(): Promise<UserRecord[]> {
    return (await scanRange(this.engine, 'users', {})).map(([, value]) => decode<UserRecord>(value));
  }

  /** A disabled user's keys all stop working (gateways notice within their cache lifetime). */
  setUserStatus(id: string, status: PrincipalStatus): Promise<UserRecord> {
    const userId = v.userId(id);
    const wanted = v.principalStatus(status);
    return this.write(async () => {
      const user = { ...(await this.getUser(userId)), status: wanted };
      await this.batch([{ type: 'put', space: 'users', key: userKey(userId), value: encode(user) }]);
      return user;
    });
  }

  /** Deletes the user and all their keys; refused (DeleteConflict) while they own a bucket. */
  deleteUser(id: string): Promise<UserRecord> {
    const userId = v.userId(id);
    return this.write(async () => {
      const user = await this.getUser(userId);
      const owned = await this.bucketsOwnedBy(userId);
      if (owned.length > 0) {
        const names = owned.slice(0, 5).map((b) => b.name).join(', ');
        throw errors.deleteConflict(`user ${JSON.stringify(userId)} still owns ${owned.length} bucket(s): ${names}${owned.length > 5 ? ', ...' : ''}`);
      }
      const keys = await this.keysOf(userId);
      await this.batch([
        { type: 'del', space: 'users', key: userKey(userId) },
        ...keys.map((k): KvOp => ({ type: 'del', space: 'access-keys', key: accessKeyKey(k.accessKeyId) })),
      ]);
      return user;
    });
  }

  /** A new key for an existing user; the answer is the only place its secret is ever shown. */
  createAccessKey(id: string): Promise<CreatedAccessKey> {
    const userId = v.userId(id);
    return this.write(async () => {
      await this.getUser(userId);
      let accessKeyId = newAccessKeyId();
      while (await this.engine.get('access-keys', accessKeyKey(accessKeyId))) accessKeyId = newAccessKeyId();
      const key: CreatedAccessKey = { accessKeyId, userId, createdAt: this.isoNow(), status: 'active', secretAccessKey: newSecretAccessKey() };
      await this.batch([{ type: 'put', space: 'access-keys', key: accessKeyKey(accessKeyId), value: encode(key) }]);
      return key;
    });
  }

  /** Every key (of one user when `id` is given), without secrets. */
  async listAccessKeys(id?: string): Promise<AccessKeyRecord[]> {
    if (id === undefined) return (await this.allKeys()).map(publicKey);
    const userId = v.userId(id);
    await this.getUser(userId);
    return (await this.keysOf(userId)).map(publicKey);
  }

  async getAccessKey(accessKeyId: string): Promise<AccessKeyRecord> {
    return publicKey(await this.readKey(v.accessKeyId(accessKeyId)));
  }

  /** The gateway's lookup: the key with its secret, and its user (both carry their status). */
  async credential(accessKeyId: string): Promise<AccessKeyCredential> {
    const key = await this.readKey(v.accessKeyId(accessKeyId));
    const user = await this.readUser(key.userId);
    // A key whose user is gone (cannot happen through deleteUser) is as good as no key.
    if (!user) throw errors.noSuchEntity(`access key ${JSON.stringify(key.accessKeyId)}`);
    return { key, user };
  }

  setAccessKeyStatus(accessKeyId: string, status: PrincipalStatus): Promise<AccessKeyRecord> {
    const id = v.accessKeyId(accessKeyId);
    const wanted = v.principalStatus(status);
    return this.write(async () => {
      const key = { ...(await this.readKey(id)), status: wanted };
      await this.batch([{ type: 'put', space: 'access-keys', key: accessKeyKey(id), value: encode(key) }]);
      return publicKey(key);
    });
  }

  deleteAccessKey(accessKeyId: string): Promise<AccessKeyRecord> {
    const id = v.accessKeyId(accessKeyId);
    return this.write(async () => {
      const key = await this.readKey(id);
      await this.batch([{ type: 'del', space: 'access-keys', key: accessKeyKey(id) }]);
      return publicKey(key);
    });
  }

  // ---- plumbing ----

  private write<R>(fn: () => Promise<R>): Promise<R> {
    return this.lock.exclusive('directory', fn);
  }

  private batch(ops: KvOp[]): Promise<void> {
    return this.engine.batch(ops, { sync: this.opts.sync });
  }

  private async readUser(userId: string): Promise<UserRecord | undefined> {
    const raw = await this.engine.get('users', userKey(userId));
    return raw === undefined ? undefined : decode<UserRecord>(raw);
  }

  private async readKey(accessKeyId: string): Promise<CreatedAccessKey> {
    const raw = await this.engine.get('access-keys', accessKeyKey(accessKeyId));
    if (raw === undefined) throw errors.noSuchEntity(`access key ${JSON.stringify(accessKeyId)}`);
    return decode<CreatedAccessKey>(raw);
  }

  private async bucketsOwnedBy(userId: string): Promise<BucketRecord[]> {
    return (await scanRange(this.engine, 'buckets', {})).map(([, value]) => decode<BucketRecord>(value)).filter((b) => b.owner === userId);
  }

  private async allKeys(): Promise<CreatedAccessKey[]> {
    return (await scanRange(this.engine, 'access-keys', {})).map(([, value]) => decode<CreatedAccessKey>(value));
  }

  private async keysOf(userId: string): Promise<CreatedAccessKey[]> {
    return (await this.allKeys()).filter((k) => k.userId === userId);
  }

  private isoNow(): string {
    return new Date(this.opts.now()).toISOString();
  }
}
