// Internal authentication: the pure signing module (canonical form, every tampered field refused,
// clock window, replay cache, the secret never printed), the secret file, and a real cluster whose
// namespace, storage nodes and repair service refuse whoever lacks the cluster secret, while the
// cluster itself works — with the S3 endpoint over TLS when `openssl` can make a certificate.
import t from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { inspect, promisify } from 'node:util';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CLUSTER_SECRET_FILE, loadOrCreateSecretFile, readSecretFile } from '../common/cluster-secret.js';
import {
  ClusterSecret,
  InternalAuthError,
  NonceCache,
  RequestVerifier,
  canonicalString,
  checkBodyDigest,
  sha256Hex,
  signRequest,
  type HeaderBag,
  type RequestToSign,
} from '../common/internal-auth.js';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestCluster, type TestCluster } from './helpers/cluster.js';
import { rawRequest, sendWith, signedHeaders, type RawRequest } from './helpers/internal.js';

const run = promisify(execFile);
const SECRET = ClusterSecret.parse('unit-test-cluster-secret-0123456789abcdef');
const NOW = 1_750_000_000_000;

// ---- the pure module ------------------------------------------------------------------------

const base: RequestToSign = {
  method: 'PUT',
  host: '127.0.0.1:4100',
  target: '/shards/v1.0.3?x=1',
  headers: { 'content-type': 'application/octet-stream', 'x-cairn-block-size': '262144', range: 'bytes=0-9' },
  body: '{"a":1}',
};

/** What a server sees for a signed request: the headers as Node would hand them over. */
function received(req: RequestToSign, headers: Record<string, string>): { method: string; target: string; headers: HeaderBag } {
  return { method: req.method, target: req.target, headers: { ...headers, connection: 'keep-alive', 'content-length': '7' } };
}

function refusal(fn: () => unknown): { status: number; code: string } | 'accepted' {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof InternalAuthError) return { status: err.status, code: err.code };
    throw err;
  }
}

t.test('canonical string: one line per field, then the signed headers sorted', async (t) => {
  const text = canonicalString({
    method: 'put', host: 'h:1', target: '/a/b?c=d', date: '123', nonce: 'n'.repeat(22), contentSha256: 'UNSIGNED-PAYLOAD',
    headers: { 'x-cairn-block-size': '8', 'content-type': ' text/plain ', connection: 'close', 'content-length': '5', 'x-cairn-signature': 'ff', range: 'bytes=1-2', 'x-other': 'no' },
  });
  t.equal(text, [
    'CAIRN1-HMAC-SHA256', 'PUT', 'h:1', '/a/b?c=d', '123', 'n'.repeat(22), 'UNSIGNED-PAYLOAD',
    'content-type:text/plain', 'range:bytes=1-2', 'x-cairn-block-size:8',
  ].join('\n'));
});

t.test('a signed request verifies; every tampered field is refused', async (t) => {
  const headers = signRequest(SECRET, base, NOW, 'nonce-0123456789abcdef');
  t.match(headers, { host: base.host, 'x-cairn-date': String(NOW), 'x-cairn-nonce': 'nonce-0123456789abcdef', 'x-cairn-content-sha256': sha256Hex('{"a":1}') });
  t.match(headers['x-cairn-signature'], /^[0-9a-f]{64}$/);
  const fresh = (): RequestVerifier => new RequestVerifier(SECRET, { now: () => NOW + 1000 });
  t.equal(fresh().verify(received(base, headers)), sha256Hex('{"a":1}'), 'accepted; the body digest is returned for checking');

  const mismatch = { status: 403, code: 'ClusterSignatureMismatch' };
  const tampered: [string, (r: ReturnType<typeof received>) => void, unknown][] = [
    ['method', (r) => (r.method = 'DELETE'), mismatch],
    ['path', (r) => (r.target = '/shards/v1.0.4?x=1'), mismatch],
    ['query', (r) => (r.target = '/shards/v1.0.3?x=2'), mismatch],
    ['host', (r) => (r.headers.host = '127.0.0.1:4101'), mismatch],
    ['date', (r) => (r.headers['x-cairn-date'] = String(NOW + 1)), mismatch],
    ['nonce', (r) => (r.headers['x-cairn-nonce'] = 'nonce-0123456789abcdeX'), mismatch],
    ['body digest', (r) => (r.headers['x-cairn-content-sha256'] = sha256Hex('{"a":2}')), mismatch],
    ['digest → UNSIGNED-PAYLOAD', (r) => (r.headers['x-cairn-content-sha256'] = 'UNSIGNED-PAYLOAD'), mismatch],
    ['content-type', (r) => (r.headers['content-type'] = 'application/json'), mismatch],
    ['range', (r) => (r.headers.range = 'bytes=0-99'), mismatch],
    ['x-cairn-block-size', (r) => (r.headers['x-cairn-block-size'] = '8'), mismatch],
    ['an added x-cairn header', (r) => (r.headers['x-cairn-extra'] = '1'), mismatch],
    ['a removed signed header', (r) => delete r.headers.range, mismatch],
    ['signature', (r) => (r.headers['x-cairn-signature'] = flipHex(String(r.headers['x-cairn-signature']))), mismatch],
    ['missing signature', (r) => delete r.headers['x-cairn-signature'], { status: 401, code: 'ClusterAuthMissing' }],
    ['missing nonce', (r) => delete r.headers['x-cairn-nonce'], { status: 401, code: 'ClusterAuthMissing' }],
    ['short signature', (r) => (r.headers['x-cairn-signature'] = 'abcd'), { status: 401, code: 'ClusterAuthMalformed' }],
    ['non-numeric date', (r) => (r.headers['x-cairn-date'] = 'yesterday'), { status: 401, code: 'ClusterAuthMalformed' }],
    ['short nonce', (r) => (r.headers['x-cairn-nonce'] = 'abc'), { status: 401, code: 'ClusterAuthMalformed' }],
    ['bad digest syntax', (r) => (r.headers['x-cairn-content-sha256'] = 'xyz'), { status: 401, code: 'ClusterAuthMalformed' }],
  ];
  for (const [what, change, expected] of tampered) {
    const r = received(base, headers);
    r.headers = { ...r.headers };
    change(r);
    t.same(refusal(() => fresh().verify(r)), expected, `tampered ${what}`);
  }
  t.equal(fresh().verify({ ...received(base, headers), headers: { ...received(base, headers).headers, 'content-length': '9', 'x-forwarded-for': 'x' } }), sha256Hex('{"a":1}'),
    'headers outside the signed set (content-length, proxies) do not matter; a digest covers the body');
  const wrong = signRequest(ClusterSecret.parse('another-secret-of-enough-length-0123456789'), base, NOW, 'nonce-0123456789abcdef');
  t.same(refusal(() => fresh().verify(received(base, wrong))), mismatch, 'signed with another secret');
  const addressedAs = (host: string | undefined): unknown =>
    refusal(() => new RequestVerifier(SECRET, { now: () => NOW, host: () => host }).verify(received(base, headers)));
  t.equal(addressedAs('127.0.0.1:4100'), 'accepted', 'a receiver that knows its host accepts requests signed for it');
  t.same(addressedAs('127.0.0.1:4101'), { status: 403, code: 'ClusterAuthWrongHost' }, 'and refuses those signed for another');
  t.equal(addressedAs(undefined), 'accepted', 'not known yet: not checked');
});

function flipHex(hex: string): string {
  return (hex[0] === '0' ? '1' : '0') + hex.slice(1);
}

t.test('clock window: more than 5 minutes either way is refused', async (t) => {
  const at = (skew: number): unknown => {
    const verifier = new RequestVerifier(SECRET, { now: () => NOW + skew });
    return refusal(() => verifier.verify(received(base, signRequest(SECRET, base, NOW))));
  };
  t.equal(at(5 * 60_000), 'accepted', 'exactly 5 min late');
  t.equal(at(-5 * 60_000), 'accepted', 'exactly 5 min early');
  t.same(at(5 * 60_000 + 1), { status: 403, code: 'ClusterAuthStale' });
  t.same(at(-5 * 60_000 - 1), { status: 403, code: 'ClusterAuthStale' });
});

t.test('replays within the window are refused; the nonce cache is bounded', async (t) => {
  const verifier = new RequestVerifier(SECRET, { now: () => NOW, nonceCapacity: 3 });
  const signed = received(base, signRequest(SECRET, base, NOW));
  t.equal(refusal(() => verifier.verify(signed)), 'accepted');
  t.same(refusal(() => verifier.verify(signed)), { status: 403, code: 'ClusterAuthReplayed' }, 'the same request again');
  const junk = received(base, { ...signRequest(SECRET, base, NOW), 'x-cairn-signature': '0'.repeat(64) });
  t.same(refusal(() => verifier.verify(junk)), { status: 403, code: 'ClusterSignatureMismatch' });
  t.same(refusal(() => verifier.verify({ ...junk, headers: { ...junk.headers, 'x-cairn-signature': String(signed.headers['x-cairn-signature']) } })),
    { status: 403, code: 'ClusterSignatureMismatch' }, 'a bad signature does not consume its nonce');

  const cache = new NonceCache(3, 1000);
  t.ok(cache.add('a', 100, 100) && cache.add('b', 200, 200) && cache.add('c', 300, 300));
  t.notOk(cache.add('b', 200, 300), 'seen');
  t.ok(cache.add('d', 400, 400), 'a fourth pushes out the oldest');
  t.equal(cache.size, 3);
  t.notOk(cache.add('z', 100, 400), 'a request dated at or before a forgotten one is refused: it may be a replay');
  t.ok(cache.add('e', 401, 401));
  t.ok(cache.add('f', 2000, 2000), 'dated after every forgotten one: accepted');
  t.equal(cache.size, 1, 'entries older than the window are dropped as time passes');
});

t.test('body digests', async (t) => {
  const body = Buffer.from('{"a":1}');
  t.doesNotThrow(() => checkBodyDigest(sha256Hex(body), body));
  t.doesNotThrow(() => checkBodyDigest('UNSIGNED-PAYLOAD', body), 'a streamed body is not checked here');
  t.throws(() => checkBodyDigest(sha256Hex(body), Buffer.from('{"a":2}')), { status: 403, code: 'ClusterBodyMismatch' });
  const streamed = signRequest(SECRET, { ...base, body: undefined, streamed: true }, NOW);
  t.equal(streamed['x-cairn-content-sha256'], 'UNSIGNED-PAYLOAD');
  t.equal(signRequest(SECRET, { ...base, body: undefined }, NOW)['x-cairn-content-sha256'], sha256Hex(''), 'no body: the digest of nothing');
});

t.test('the secret: at least 32 bytes, never printed', async (t) => {
  t.throws(() => ClusterSecret.parse('x'.repeat(31), 'CAIRN_CLUSTER_SECRET'), /CAIRN_CLUSTER_SECRET must be at least 32 bytes, got 31/);
  const text = ClusterSecret.generate();
  t.ok(Buffer.byteLength(text) >= 32);
  const secret = ClusterSecret.parse(text);
  for (const shown of [String(secret), JSON.stringify({ secret }), inspect({ secret }), `${secret}`]) t.notOk(shown.includes(text), `hidden in ${shown}`);
});

t.test('the secret file: made once with mode 0600, refused when others may read it', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-secret-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.equal(await readSecretFile(dir), undefined);
  const made = await loadOrCreateSecretFile(dir);
  t.equal((await stat(path.join(dir, CLUSTER_SECRET_FILE))).mode & 0o777, 0o600);
  t.equal(await loadOrCreateSecretFile(dir), made, 'the same one on the next start');
  await chmod(path.join(dir, CLUSTER_SECRET_FILE), 0o644);
  await t.rejects(readSecretFile(dir), /may be read by other users \(mode 644\)/);
  await writeFile(path.join(dir, CLUSTER_SECRET_FILE), 'short\n', { mode: 0o600 });
  await chmod(path.join(dir, CLUSTER_SECRET_FILE), 0o600);
  await t.rejects(readSecretFile(dir), /at least 32 bytes/);
});

// ---- a real cluster ---------------------------------------------------------------------------

/** A self-signed certificate for 127.0.0.1, or why there is none. */
async function makeCertificate(dir: string): Promise<{ certFile: string; keyFile: string; cert: Buffer } | string> {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  try {
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile, '-out', certFile,
    ]);
  } catch (err) {
    // Node cannot make an X.509 certificate by itself.
    return `no certificate: openssl failed or is missing (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
  return { certFile, keyFile, cert: await readFile(certFile) };
}

t.test('a real cluster refuses whoever lacks the cluster secret, and works signed', async (t) => {
  const certDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-tls-'));
  t.teardown(() => rm(certDir, { recursive: true, force: true }));
  const tls = await makeCertificate(certDir);
  const tc: TestCluster = await startTestCluster(typeof tls === 'string' ? {} : { tls: { certFile: tls.certFile, keyFile: tls.keyFile } });
  t.teardown(() => tc.destroy());
  const { cluster } = tc;
  const secret = cluster.clusterSecret;
  const ns = cluster.namespaceUrl;
  const node1 = cluster.services.get('node-1')!.ready.url;
  const node2 = cluster.services.get('node-2')!.ready.url;
  const repair = cluster.services.get('repair')!.ready.url;
  const signed = (url: string, opts: RawRequest = {}): ReturnType<typeof rawRequest> => rawRequest(url, { ...opts, secret });
  const unsigned = (url: string, opts: RawRequest = {}): ReturnType<typeof rawRequest> => rawRequest(url, { ...opts, secret: null });
  const answer = async (res: Awaited<ReturnType<typeof rawRequest>>): Promise<string> => {
    const text = await res.body.text();
    let code = '';
    try {
      code = (JSON.parse(text) as { code?: string }).code ?? '';
    } catch {
      // not JSON
    }
    return `${res.statusCode}${code ? ` ${code}` : ''}`;
  };
  const json = { 'content-type': 'application/json' };

  // The S3 endpoint: PUT and GET round trip (over HTTPS with the test CA when there is a certificate).
  const data = randomBytes(300_000);
  let s3: S3Client;
  if (typeof tls === 'string') {
    t.comment(`TLS part skipped: ${tls}`);
    s3 = tc.s3;
  } else {
    t.match(cluster.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/, 'the gateway serves https');
    s3 = new S3Client({
      endpoint: cluster.endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1,
      credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
      requestHandler: { httpsAgent: new https.Agent({ ca: tls.cert }) },
    });
    t.teardown(() => s3.destroy());
    await t.rejects(fetch(`${cluster.endpoint}/-/health`), 'a client that does not trust the certificate gets no answer');
  }
  await s3.send(new CreateBucketCommand({ Bucket: 'auth' }));
  await s3.send(new PutObjectCommand({ Bucket: 'auth', Key: 'k', Body: data }));
  const got = await s3.send(new GetObjectCommand({ Bucket: 'auth', Key: 'k' }));
  t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(data), 'S3 PUT then GET round trip through the signed cluster');

  // What the cluster holds now, read with signed requests.
  const record = await signed(`${ns}/objects/auth/k`);
  t.equal(record.statusCode, 200);
  const recordText = await record.body.text();
  const placement = (JSON.parse(recordText) as { segments: { placements: { nodeId: string | null; shardId: string }[] }[] }).segments[0].placements[0];
  const holder = cluster.services.get(placement.nodeId!)!.ready.url;
  const shard = `${holder}/shards/${encodeURIComponent(placement.shardId)}`;
  t.equal((await signed(shard, { method: 'HEAD' })).statusCode, 200, 'the shard is there');

  t.test('unsigned requests to the namespace are refused, and change nothing', async (t) => {
    const commit = JSON.stringify({ record: { ...JSON.parse(recordText), key: 'forged' } });
    const cases: [string, string, RawRequest][] = [
      ['get an object record', `${ns}/objects/auth/k`, {}],
      ['list nodes', `${ns}/nodes`, {}],
      ['list buckets', `${ns}/buckets`, {}],
      ['commit an object', `${ns}/objects/auth/forged`, { method: 'PUT', headers: json, body: commit }],
      ['delete an object', `${ns}/objects/auth/k`, { method: 'DELETE', headers: json, body: '{}' }],
      ['heartbeat for a fake node', `${ns}/nodes/evil-node/heartbeat`, { method: 'POST', headers: json, body: JSON.stringify({ url: 'http://127.0.0.1:1', capacityBytes: 1e12, usedBytes: 0, freeBytes: 1e12 }) }],
      ['place shards', `${ns}/placements`, { method: 'POST', headers: json, body: JSON.stringify({ count: 6 }) }],
      ['queue GC acks', `${ns}/gc/ack`, { method: 'POST', headers: json, body: JSON.stringify({ ids: [] }) }],
      ['an unknown route', `${ns}/nothing-here`, {}],
    ];
    for (const [what, url, opts] of cases) t.equal(await answer(await unsigned(url, opts)), '401 ClusterAuthMissing', `unsigned: ${what}`);
    t.equal(await answer(await signed(`${ns}/objects/auth/forged`)), '404 NoSuchKey', 'no forged object');
    t.equal(await answer(await signed(`${ns}/objects/auth/k`)), '200', 'the object is still there');
    t.equal(await answer(await signed(`${ns}/nodes/evil-node`)), '404 NoSuchNode', 'no fake node registered');
  });

  t.test('unsigned requests to a storage node are refused, and change nothing', async (t) => {
    const cases: [string, string, RawRequest][] = [
      ['read a shard', shard, {}],
      ['write a shard', `${holder}/shards/forged.0.0`, { method: 'PUT', headers: { 'x-cairn-block-size': '8' }, body: Buffer.alloc(12) }],
      ['delete a shard', shard, { method: 'DELETE' }],
      ['verify a shard', `${shard}/verify`, { method: 'POST' }],
      ['list shards', `${holder}/shards`, {}],
      ['scrub', `${holder}/scrub`, { method: 'POST', headers: json, body: '{}' }],
    ];
    for (const [what, url, opts] of cases) t.equal(await answer(await unsigned(url, opts)), '401 ClusterAuthMissing', `unsigned: ${what}`);
    const head = await unsigned(shard, { method: 'HEAD' });
    t.equal(head.statusCode, 401, 'unsigned HEAD');
    await head.body.dump();
    t.equal((await signed(shard, { method: 'HEAD' })).statusCode, 200, 'the shard survived');
    t.equal((await signed(`${holder}/shards/forged.0.0`, { method: 'HEAD' })).statusCode, 404, 'nothing was written');
  });

  t.test('unsigned requests to the repair service are refused', async (t) => {
    t.equal(await answer(await unsigned(`${repair}/status`)), '401 ClusterAuthMissing');
    t.equal(await answer(await unsigned(`${repair}/workers/all/pause`, { method: 'POST' })), '401 ClusterAuthMissing');
    t.equal(await answer(await unsigned(`${repair}/rate`, { method: 'PUT', headers: json, body: '{"rate":"1B"}' })), '401 ClusterAuthMissing');
    const workers = JSON.parse(await (await signed(`${repair}/workers`)).body.text()) as { workers: { state: string }[] };
    t.notOk(workers.workers.some((w) => w.state === 'paused'), 'no worker was paused');
  });

  t.test('a wrong secret, a replay, a stale or future date, a swapped body, another host', async (t) => {
    const wrong = ClusterSecret.parse(ClusterSecret.generate());
    t.equal(await answer(await rawRequest(`${ns}/nodes`, { secret: wrong })), '403 ClusterSignatureMismatch', 'namespace: wrong secret');
    t.equal(await answer(await rawRequest(shard, { secret: wrong })), '403 ClusterSignatureMismatch', 'node: wrong secret');
    t.equal(await answer(await rawRequest(`${repair}/status`, { secret: wrong })), '403 ClusterSignatureMismatch', 'repair: wrong secret');

    const opts: RawRequest = { method: 'PUT', headers: json, body: '{"rate":"100MB"}' };
    const once = signedHeaders(`${repair}/rate`, { ...opts, secret });
    t.equal(await answer(await sendWith(`${repair}/rate`, opts, once)), '200', 'a signed request is served once');
    t.equal(await answer(await sendWith(`${repair}/rate`, opts, once)), '403 ClusterAuthReplayed', 'and refused when replayed');
    const listing = signedHeaders(`${holder}/shards`, { secret });
    t.equal(await answer(await sendWith(`${holder}/shards`, {}, listing)), '200');
    t.equal(await answer(await sendWith(`${holder}/shards`, {}, listing)), '403 ClusterAuthReplayed', 'node: replay refused');
    const other = holder === node1 ? node2 : node1;
    const elsewhere = signedHeaders(`${holder}/shards?limit=1`, { secret });
    t.equal(await answer(await sendWith(`${other}/shards?limit=1`, {}, elsewhere)), '403 ClusterAuthWrongHost', 'signed for one node, refused by another');
    t.equal(await answer(await sendWith(`${other}/shards`, {}, { ...listing, host: new URL(other).host })), '403 ClusterSignatureMismatch', 'and the Host header is signed');

    t.equal(await answer(await signed(`${ns}/nodes`, { now: Date.now() - 6 * 60_000 })), '403 ClusterAuthStale', 'six minutes old');
    t.equal(await answer(await signed(`${ns}/nodes`, { now: Date.now() + 6 * 60_000 })), '403 ClusterAuthStale', 'six minutes ahead');

    const honest = signedHeaders(`${ns}/nodes/evil-node/heartbeat`, { method: 'POST', headers: json, body: '{}', secret });
    const swapped = JSON.stringify({ url: 'http://127.0.0.1:1', capacityBytes: 1e12, usedBytes: 0, freeBytes: 1e12 });
    t.equal(await answer(await sendWith(`${ns}/nodes/evil-node/heartbeat`, { method: 'POST', body: swapped }, honest)), '403 ClusterBodyMismatch', 'a body swapped under a signature');
    t.equal(await answer(await signed(`${ns}/nodes/evil-node`)), '404 NoSuchNode');
  });

  t.test('/health and /metrics answer anyone and carry no secret', async (t) => {
    const secretText = (await readFile(path.join(tc.dataDir, CLUSTER_SECRET_FILE), 'utf8')).trim();
    t.equal((await stat(path.join(tc.dataDir, CLUSTER_SECRET_FILE))).mode & 0o777, 0o600, 'the secret file is private');
    for (const url of [ns, node1, repair]) {
      for (const route of ['/health', '/metrics']) {
        const res = await unsigned(url + route);
        const text = await res.body.text();
        t.equal(res.statusCode, 200, `${url}${route}`);
        t.notOk(text.includes(secretText) || text.includes(SECRET_ACCESS_KEY), `${route} leaks no secret`);
      }
    }
    const metrics = await (await unsigned(`${ns}/metrics`)).body.text();
    t.match(metrics, /cairn_internal_auth_refused_total\{code="ClusterAuthMissing"\} \d+/, 'refusals are counted');
    for (const service of cluster.services.values()) {
      const cmdline = await readFile(`/proc/${service.ready.pid}/cmdline`, 'utf8').catch(() => '');
      t.notOk(cmdline.includes(secretText), `${service.name}: the secret is not on its command line`);
    }
    for (const log of await readdir(path.join(tc.dataDir, 'logs'))) {
      t.notOk((await readFile(path.join(tc.dataDir, 'logs', log), 'utf8')).includes(secretText), `${log} holds no secret`);
    }
  });

  t.test('npm run admin finds the secret in the data dir', async (t) => {
    const env = { ...process.env };
    delete env.CAIRN_CLUSTER_SECRET;
    const { stdout } = await run(process.execPath, ['--no-warnings', '--import', 'tsx', 'repair/admin.ts', 'status', '--data-dir', tc.dataDir, '--json'], {
      cwd: path.resolve(import.meta.dirname, '..'),
      env,
    });
    const status = JSON.parse(stdout) as { nodes: unknown[]; repair: { workers?: unknown[] } | string };
    t.equal(status.nodes.length, 6);
    t.ok(typeof status.repair === 'object' && status.repair.workers && status.repair.workers.length > 0, 'and reaches the repair service');
  });
});
