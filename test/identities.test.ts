// The gateway's access-key cache alone, over a fake namespace and a fake clock: root from the
// config, TTL, cached misses, disabled keys and users, one lookup for concurrent requests, bounds.
import t from 'tap';
import { IdentityCache, userPin, type CredentialSource } from '../gateway/auth/identities.js';
import type { AccessKeyCredential, PrincipalStatus } from '../namespace/types.js';

const KEY = 'AKIAABCDEFGHIJKLMNOP';

function credential(status: PrincipalStatus = 'active', userStatus: PrincipalStatus = 'active'): AccessKeyCredential {
  return {
    key: { accessKeyId: KEY, userId: 'alice', createdAt: '', status, secretAccessKey: 'secret-of-alice' },
    user: { id: 'alice', displayName: 'Alice', createdAt: '', status: userStatus },
  };
}

function setup(initial: AccessKeyCredential | null = credential()) {
  let now = 1_000;
  const state = { answer: initial as AccessKeyCredential | null, calls: 0, fail: false };
  const source: CredentialSource = {
    accessKeyCredential: async () => {
      state.calls++;
      if (state.fail) throw new Error('namespace unreachable');
      return state.answer;
    },
  };
  const cache = new IdentityCache(new Map([['rootkey', 'rootsecret']]), source, { ttlMs: 2000, maxEntries: 3, now: () => now });
  return { cache, state, advance: (ms: number) => (now += ms) };
}

t.test('root comes from the config, never from the namespace', async (t) => {
  const { cache, state } = setup();
  const root = await cache.resolve('rootkey');
  t.equal(root?.secret, 'rootsecret');
  t.same(root?.principal, { type: 'root', userId: 'root', displayName: 'root' });
  t.equal(state.calls, 0);
});

t.test('a key is fetched once per TTL; a change is seen after it', async (t) => {
  const { cache, state, advance } = setup();
  const first = await cache.resolve(KEY);
  t.equal(first?.secret, 'secret-of-alice');
  t.same(first?.principal, { type: 'user', userId: 'alice', displayName: 'Alice', pin: 'created ' }, 'a user made before unique ids is pinned by creation time');
  await cache.resolve(KEY);
  t.equal(state.calls, 1, 'served from the cache');
  state.answer = credential('disabled');
  advance(1999);
  t.ok(await cache.resolve(KEY), 'still cached just before the TTL');
  advance(1);
  t.equal(await cache.resolve(KEY), undefined, 'a disabled key is refused once the entry is due');
  t.equal(state.calls, 2);
  state.answer = credential('active', 'disabled');
  advance(2000);
  t.equal(await cache.resolve(KEY), undefined, 'a disabled user\'s key is refused');
  state.answer = null;
  advance(2000);
  t.equal(await cache.resolve(KEY), undefined, 'a deleted key is refused');
  await cache.resolve(KEY);
  t.equal(state.calls, 4, 'misses are cached too');
});

t.test("a user's pin is their unique id, or for a user made before unique ids their creation time", async (t) => {
  t.equal(userPin({ uniqueId: 'AIDAABCDEFGHIJKLMNOPQ', createdAt: '2026-01-01T00:00:00.000Z' }), 'AIDAABCDEFGHIJKLMNOPQ');
  t.equal(userPin({ createdAt: '2026-01-01T00:00:00.000Z' }), 'created 2026-01-01T00:00:00.000Z');
  const withId = credential();
  withId.user.uniqueId = 'AIDAABCDEFGHIJKLMNOPQ';
  const { cache } = setup(withId);
  t.match((await cache.resolve(KEY))?.principal, { type: 'user', userId: 'alice', pin: 'AIDAABCDEFGHIJKLMNOPQ' });
});

t.test('concurrent requests share one lookup; failures are not cached and fail the request', async (t) => {
  const { cache, state, advance } = setup();
  await Promise.all([cache.resolve(KEY), cache.resolve(KEY), cache.resolve(KEY)]);
  t.equal(state.calls, 1);
  advance(2000);
  state.fail = true;
  await t.rejects(cache.resolve(KEY), /unreachable/, 'a stale entry is not trusted when the namespace is away');
  state.fail = false;
  t.ok(await cache.resolve(KEY), 'and the next request asks again');
});

t.test('ids the namespace never issues are not looked up; the cache is bounded', async (t) => {
  const { cache, state } = setup();
  t.equal(await cache.resolve('not-a-key'), undefined);
  t.equal(await cache.resolve('AKIA0000000000000000'), undefined, '0 and 1 are not base32');
  t.equal(state.calls, 0);
  for (const suffix of ['AAAA', 'BBBB', 'CCCC', 'DDDD']) await cache.resolve(`AKIAAAAAAAAAAAAA${suffix}`);
  t.equal(state.calls, 4);
  await cache.resolve('AKIAAAAAAAAAAAAAAAAA');
  t.equal(state.calls, 5, 'the oldest entry was dropped at 3 entries');
  await cache.resolve('AKIAAAAAAAAAAAAADDDD');
  t.equal(state.calls, 5, 'a recent one was kept');
});
