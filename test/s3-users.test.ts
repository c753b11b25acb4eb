// Access control end to end: a real cluster, users and keys made with the admin CLI
// (`npm run admin -- user|key ...`), and @aws-sdk/client-s3 signed with each user's key. Bucket
// ownership, bucket policies (grants, Deny over Allow, anonymous public read), disabled and deleted
// keys, and no secret in any service log.
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  DeleteObjectTaggingCommand,
  DeleteObjectsCommand,
  GetBucketAclCommand,
  GetBucketPolicyCommand,
  GetBucketTaggingCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  PutBucketTaggingCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3ServiceException,
  type S3Client,
} from '@aws-sdk/client-s3';
import { startTestCluster, s3ClientFor, SECRET_ACCESS_KEY, type TestCluster } from './helpers/cluster.js';
import type { AccessKeyRecord, CreatedAccessKey } from '../namespace/types.js';
import { NamespaceClient } from '../namespace/client.js';

const ROOT_DIR = path.resolve(import.meta.dirname, '..');
const ALICE_BUCKET = 'alice-photos';
const BOB_BUCKET = 'bob-files';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let env: TestCluster;
const secrets: string[] = [];

async function admin(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--no-warnings', '--import', 'tsx', 'repair/admin.ts', ...args, '--data-dir', env.dataDir], {
    cwd: ROOT_DIR,
  });
  return stdout;
}

/** The admin command's failure (exit code 1) and what it printed. */
async function adminFails(...args: string[]): Promise<string> {
  try {
    await admin(...args);
  } catch (err) {
    return String((err as { stderr?: string }).stderr);
  }
  throw new Error(`admin ${args.join(' ')} succeeded`);
}

async function newKey(user: string): Promise<CreatedAccessKey> {
  const key = JSON.parse(await admin('key', 'create', user, '--json')) as CreatedAccessKey;
  secrets.push(key.secretAccessKey);
  return key;
}

function clientOf(key: CreatedAccessKey): S3Client {
  return s3ClientFor(env.cluster.endpoint, { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey });
}

/** `code` undefined: a HEAD, whose error has no body to name it. */
async function expectError(t: Test, promise: Promise<unknown>, code: string | undefined, status: number, what: string): Promise<void> {
  try {
    await promise;
    t.fail(`${what}: expected ${code ?? status}, but it succeeded`);
  } catch (err) {
    if (!(err instanceof S3ServiceException)) throw err;
    if (code !== undefined) t.equal(err.name, code, `${what}: ${code}`);
    t.equal(err.$metadata.httpStatusCode, status, `${what}: HTTP ${status}`);
  }
}

const denied = (t: Test, promise: Promise<unknown>, what: string): Promise<void> => expectError(t, promise, 'AccessDenied', 403, what);

async function text(s3: S3Client, bucket: string, key: string): Promise<string> {
  return (await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString());
}

function policy(...statements: object[]): string {
  return JSON.stringify({ Version: '2012-10-17', Statement: statements });
}

/** Polls until `call` fails with `code`; returns how long that took. */
async function untilRefused(call: () => Promise<unknown>, code: string, limitMs = 8000): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      await call();
    } catch (err) {
      if (err instanceof S3ServiceException && err.name === code) return Date.now() - started;
      throw err;
    }
    if (Date.now() - started > limitMs) throw new Error(`still accepted after ${limitMs} ms`);
    await sleep(200);
  }
}

t.before(async () => {
  env = await startTestCluster({ nodes: 3, k: 2, m: 1 });
});

t.teardown(async () => {
  await env?.destroy();
});

t.test('users, keys, ownership and bucket policies', async (t) => {
  const root = env.s3;
  secrets.push(SECRET_ACCESS_KEY);

  // ---- users and keys through the admin CLI ----
  t.match(await admin('user', 'create', 'alice', '--display-name', 'Alice A.'), /user alice created/);
  t.match(await admin('user', 'create', 'bob'), /user bob created/);
  t.match(await adminFails('user', 'create', 'alice'), /already exists/, 'a user id is taken once');
  t.match(await adminFails('user', 'create', 'root'), /reserved/, '"root" is the root credentials\' user');
  t.match(await adminFails('key', 'create', 'nobody'), /does not exist/, 'keys belong to existing users');
  const aliceKey = await newKey('alice');
  const bobKey = await newKey('bob');
  t.match(aliceKey.accessKeyId, /^AKIA[A-Z2-7]{16}$/, 'AWS-shaped access key id');
  t.equal(aliceKey.secretAccessKey.length, 40, '40-character secret');
  const human = await admin('key', 'create', 'bob');
  const spare = /Access key id:\s+(\S+)/.exec(human)![1]!;
  secrets.push(/Secret access key:\s+(\S+)/.exec(human)![1]!);
  const listed = JSON.parse(await admin('key', 'list', '--json')) as AccessKeyRecord[];
  t.same(listed.map((k) => k.accessKeyId).sort(), [aliceKey.accessKeyId, bobKey.accessKeyId, spare].sort(), 'key list shows every key');
  const listText = await admin('key', 'list', 'bob');
  t.match(listText, bobKey.accessKeyId);
  t.notMatch(listText, aliceKey.accessKeyId, 'key list <user> shows only theirs');
  for (const secret of secrets) {
    t.notOk(listText.includes(secret) || JSON.stringify(listed).includes(secret), 'no secret in a key listing');
  }
  t.match(await admin('user', 'list'), /alice\s+Alice A\.\s+active\s+\S+\s+AIDA[A-Z2-7]{17}/, 'user list shows each user\'s unique id');
  t.match(await admin('key', 'delete', spare), /deleted/);

  const alice = clientOf(aliceKey);
  const bob = clientOf(bobKey);
  t.teardown(() => {
    alice.destroy();
    bob.destroy();
  });

  // ---- ownership ----
  await alice.send(new CreateBucketCommand({ Bucket: ALICE_BUCKET }));
  await alice.send(new PutObjectCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt', Body: 'from alice' }));
  await alice.send(new PutObjectCommand({ Bucket: ALICE_BUCKET, Key: 'private/p.txt', Body: 'secret' }));
  await bob.send(new CreateBucketCommand({ Bucket: BOB_BUCKET }));
  await expectError(t, bob.send(new CreateBucketCommand({ Bucket: ALICE_BUCKET })), 'BucketAlreadyExists', 409, 'bob creating alice\'s bucket');
  t.equal(await text(alice, ALICE_BUCKET, 'a.txt'), 'from alice');

  await denied(t, bob.send(new GetObjectCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' })), 'bob GET');
  await denied(t, bob.send(new PutObjectCommand({ Bucket: ALICE_BUCKET, Key: 'b.txt', Body: 'x' })), 'bob PUT');
  await denied(t, bob.send(new ListObjectsV2Command({ Bucket: ALICE_BUCKET })), 'bob LIST');
  await denied(t, bob.send(new DeleteObjectCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' })), 'bob DELETE');
  await denied(t, bob.send(new GetBucketPolicyCommand({ Bucket: ALICE_BUCKET })), 'bob GetBucketPolicy');
  await denied(t, bob.send(new DeleteBucketCommand({ Bucket: ALICE_BUCKET })), 'bob DeleteBucket');
  await expectError(t, bob.send(new HeadObjectCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' })), undefined, 403, 'bob HEAD');
  await expectError(t, bob.send(new HeadBucketCommand({ Bucket: ALICE_BUCKET })), undefined, 403, 'bob HeadBucket');
  await denied(t, bob.send(new CopyObjectCommand({ Bucket: BOB_BUCKET, Key: 'stolen', CopySource: `${ALICE_BUCKET}/a.txt` })), 'bob copying out of alice\'s bucket');
  await denied(t, bob.send(new CopyObjectCommand({ Bucket: ALICE_BUCKET, Key: 'planted', CopySource: `${BOB_BUCKET}/none` })), 'bob copying into alice\'s bucket');
  const multi = await bob.send(new DeleteObjectsCommand({ Bucket: ALICE_BUCKET, Delete: { Objects: [{ Key: 'a.txt' }] } }));
  t.equal(multi.Errors?.[0]?.Code, 'AccessDenied', 'DeleteObjects: AccessDenied per key');
  t.equal(await text(alice, ALICE_BUCKET, 'a.txt'), 'from alice', 'nothing bob tried changed anything');
  await expectError(t, bob.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'x' })), 'NoSuchBucket', 404, 'a missing bucket is still NoSuchBucket');

  const bobList = await bob.send(new ListBucketsCommand({}));
  t.same(bobList.Buckets?.map((b) => b.Name), [BOB_BUCKET], 'bob sees only his own bucket');
  t.equal(bobList.Owner?.ID, 'bob');
  const aliceList = await alice.send(new ListBucketsCommand({}));
  t.same(aliceList.Buckets?.map((b) => b.Name), [ALICE_BUCKET]);
  t.same(aliceList.Owner, { ID: 'alice', DisplayName: 'Alice A.' }, 'Owner is the user');
  const rootList = (await root.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name) ?? [];
  t.ok(rootList.includes(ALICE_BUCKET) && rootList.includes(BOB_BUCKET), 'root sees every bucket');

  // ---- a policy granting bob s3:GetObject ----
  const grant = policy({ Sid: 'BobReads', Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::cairn:user/bob' }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${ALICE_BUCKET}/*` });
  await denied(t, bob.send(new PutBucketPolicyCommand({ Bucket: ALICE_BUCKET, Policy: grant })), 'bob cannot set alice\'s policy');
  await alice.send(new PutBucketPolicyCommand({ Bucket: ALICE_BUCKET, Policy: grant }));
  t.equal((await alice.send(new GetBucketPolicyCommand({ Bucket: ALICE_BUCKET }))).Policy, grant, 'GetBucketPolicy returns it');
  t.equal(await text(bob, ALICE_BUCKET, 'a.txt'), 'from alice', 'bob can GET now');
  t.equal((await bob.send(new HeadObjectCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' }))).ContentLength, 10, 'and HEAD');
  await denied(t, bob.send(new PutObjectCommand({ Bucket: ALICE_BUCKET, Key: 'b.txt', Body: 'x' })), 'but not PUT');
  await denied(t, bob.send(new DeleteObjectCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' })), 'nor DELETE');
  await denied(t, bob.send(new ListObjectsV2Command({ Bucket: ALICE_BUCKET })), 'nor LIST');
  await denied(t, bob.send(new GetObjectCommand({ Bucket: ALICE_BUCKET, Key: 'missing' })), 'a missing key is AccessDenied without s3:ListBucket');
  await expectError(t, alice.send(new GetObjectCommand({ Bucket: ALICE_BUCKET, Key: 'missing' })), 'NoSuchKey', 404, 'but NoSuchKey for the owner');
  await bob.send(new CopyObjectCommand({ Bucket: BOB_BUCKET, Key: 'copied', CopySource: `${ALICE_BUCKET}/a.txt` }));
  t.equal(await text(bob, BOB_BUCKET, 'copied'), 'from alice', 'a copy needs s3:GetObject on the source');

  // ---- the gateway keeps bucket records for a moment: one namespace lookup serves many requests ----
  const cacheLookups = async (): Promise<Record<string, number>> => {
    const metrics = await (await fetch(`${env.cluster.endpoint}/-/metrics`)).text();
    const counts: Record<string, number> = {};
    for (const m of metrics.matchAll(/^cairn_gateway_cache_lookups_total\{cache="(\w+)",result="(\w+)"\} (\d+)$/gm)) counts[`${m[1]} ${m[2]}`] = Number(m[3]);
    return counts;
  };
  const lookupsBefore = await cacheLookups();
  const started = Date.now();
  for (let i = 0; i < 20; i++) t.equal(await text(bob, ALICE_BUCKET, 'a.txt'), 'from alice');
  const elapsedMs = Date.now() - started;
  const lookupsAfter = await cacheLookups();
  // Each record is fetched at most once, then refreshed ahead at most once per half TTL (1 s):
  // a slow machine (CI under coverage) may take seconds for the 20 GETs.
  const bound = 1 + Math.floor(elapsedMs / 1000);
  for (const cache of ['buckets', 'access_keys']) {
    const fetches = lookupsAfter[`${cache} fetch`]! - lookupsBefore[`${cache} fetch`]!;
    const hits = lookupsAfter[`${cache} hit`]! - lookupsBefore[`${cache} hit`]!;
    t.ok(fetches >= 0 && fetches <= bound && fetches + hits === 20, `20 GETs by a user (${elapsedMs} ms): ${cache} ${fetches} fetched, ${hits} from memory`);
  }
  // A change made through another gateway (here: the namespace directly) is seen within the TTL.
  const otherGateway = new NamespaceClient(env.cluster.namespaceUrl, { secret: env.cluster.clusterSecret, timeoutMs: 10_000 });
  t.teardown(() => otherGateway.close());
  await otherGateway.setBucketPolicy(ALICE_BUCKET, null);
  const revokedAfter = await untilRefused(() => text(bob, ALICE_BUCKET, 'a.txt'), 'AccessDenied');
  t.ok(revokedAfter < 4000, `a policy removed through another gateway stops granting within a few seconds (${revokedAfter} ms)`);

  // A bucket deleted through another gateway while this one still trusts its record: nobody else
  // can take the name until that record is past use, so its old owner is never let into a stranger's bucket.
  const scratch = 'alice-scratch';
  await alice.send(new CreateBucketCommand({ Bucket: scratch }));
  await alice.send(new HeadBucketCommand({ Bucket: scratch }));
  await otherGateway.deleteBucket(scratch);
  await t.rejects(
    bob.send(new CreateBucketCommand({ Bucket: scratch })),
    { name: 'OperationAborted', message: /^A conflicting conditional operation is currently in progress against this resource/, $metadata: { httpStatusCode: 409 } },
    'bob taking a name alice deleted a moment ago: OperationAborted, with AWS\'s text',
  );
  await expectError(t, alice.send(new PutObjectCommand({ Bucket: scratch, Key: 'late', Body: 'x' })), 'NoSuchBucket', 404, 'alice writing through the stale record');
  await alice.send(new CreateBucketCommand({ Bucket: scratch }));
  t.pass('its owner may re-create a deleted bucket at once');
  await alice.send(new DeleteBucketCommand({ Bucket: scratch }));

  // ---- an explicit Deny beats the Allow ----
  await alice.send(
    new PutBucketPolicyCommand({
      Bucket: ALICE_BUCKET,
      Policy: policy(
        { Effect: 'Allow', Principal: { AWS: ['bob'] }, Action: ['s3:Get*', 's3:ListBucket'], Resource: [`arn:aws:s3:::${ALICE_BUCKET}`, `arn:aws:s3:::${ALICE_BUCKET}/*`] },
        { Effect: 'Deny', Principal: { AWS: 'bob' }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${ALICE_BUCKET}/private/*` },
      ),
    }),
  );
  t.equal(await text(bob, ALICE_BUCKET, 'a.txt'), 'from alice');
  await denied(t, bob.send(new GetObjectCommand({ Bucket: ALICE_BUCKET, Key: 'private/p.txt' })), 'Deny wins over Allow');
  const bobListing = await bob.send(new ListObjectsV2Command({ Bucket: ALICE_BUCKET }));
  t.same(bobListing.Contents?.map((c) => c.Key), ['a.txt', 'private/p.txt'], 's3:ListBucket granted');
  await expectError(t, bob.send(new GetObjectCommand({ Bucket: ALICE_BUCKET, Key: 'missing' })), 'NoSuchKey', 404, 'with s3:ListBucket a missing key is NoSuchKey');
  t.equal(await text(alice, ALICE_BUCKET, 'private/p.txt'), 'secret', 'the owner is not denied');

  // ---- bad policies ----
  await expectError(t, alice.send(new PutBucketPolicyCommand({ Bucket: ALICE_BUCKET, Policy: '{"Statement": [' })), 'MalformedPolicy', 400, 'invalid JSON');
  const conditioned = policy({ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${ALICE_BUCKET}/*`, Condition: { Bool: { 'aws:SecureTransport': 'true' } } });
  await expectError(t, alice.send(new PutBucketPolicyCommand({ Bucket: ALICE_BUCKET, Policy: conditioned })), 'MalformedPolicy', 400, 'Condition is unsupported');
  const stranger = policy({ Effect: 'Allow', Principal: { AWS: 'mallory' }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${ALICE_BUCKET}/*` });
  await expectError(t, alice.send(new PutBucketPolicyCommand({ Bucket: ALICE_BUCKET, Policy: stranger })), 'MalformedPolicy', 400, 'a principal that is no user');
  const elsewhere = policy({ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BOB_BUCKET}/*` });
  await expectError(t, alice.send(new PutBucketPolicyCommand({ Bucket: ALICE_BUCKET, Policy: elsewhere })), 'MalformedPolicy', 400, 'another bucket\'s resource');
  const huge = policy({ Sid: 'x'.repeat(21 * 1024), Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${ALICE_BUCKET}/*` });
  await expectError(t, alice.send(new PutBucketPolicyCommand({ Bucket: ALICE_BUCKET, Policy: huge })), 'PolicyTooLarge', 400, 'over 20 KB');
  t.equal(await text(bob, ALICE_BUCKET, 'a.txt'), 'from alice', 'a refused policy leaves the old one in place');

  // ---- removing the policy removes the access ----
  await alice.send(new DeleteBucketPolicyCommand({ Bucket: ALICE_BUCKET }));
  await denied(t, bob.send(new GetObjectCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' })), 'after DeleteBucketPolicy');
  await expectError(t, alice.send(new GetBucketPolicyCommand({ Bucket: ALICE_BUCKET })), 'NoSuchBucketPolicy', 404, 'no policy left');

  // ---- anonymous requests ----
  const url = `${env.cluster.endpoint}/${ALICE_BUCKET}/a.txt`;
  const before = await fetch(url);
  t.equal(before.status, 403, 'anonymous GET is denied by default');
  t.match(await before.text(), /<Code>AccessDenied<\/Code>/);
  await alice.send(
    new PutBucketPolicyCommand({
      Bucket: ALICE_BUCKET,
      Policy: policy({ Sid: 'PublicRead', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${ALICE_BUCKET}/*` }),
    }),
  );
  const after = await fetch(url);
  t.equal(after.status, 200, 'a public-read policy lets an unsigned GET through');
  t.equal(await after.text(), 'from alice');
  t.equal((await fetch(url, { method: 'HEAD' })).status, 200, 'and HEAD');
  const put = await fetch(`${env.cluster.endpoint}/${ALICE_BUCKET}/anon.txt`, { method: 'PUT', body: 'anonymous' });
  t.equal(put.status, 403, 'but not an unsigned PUT');
  t.match(await put.text(), /<Code>AccessDenied<\/Code>/);
  t.equal((await fetch(`${env.cluster.endpoint}/${ALICE_BUCKET}`)).status, 403, 'nor an unsigned listing');
  const anonymousBuckets = await fetch(`${env.cluster.endpoint}/`);
  t.equal(anonymousBuckets.status, 403, 'anonymous ListBuckets');
  t.match(await anonymousBuckets.text(), /<Code>AccessDenied<\/Code>/);
  t.equal((await fetch(`${env.cluster.endpoint}/${BOB_BUCKET}/copied`)).status, 403, 'other buckets stay private');
  t.equal((await fetch(`${env.cluster.endpoint}/no-such-bucket-x/k`)).status, 403, 'anonymous callers cannot probe for bucket names');

  // ---- root may do everything ----
  t.equal(await text(root, ALICE_BUCKET, 'private/p.txt'), 'secret', 'root reads alice\'s objects');
  await root.send(new PutObjectCommand({ Bucket: ALICE_BUCKET, Key: 'from-root', Body: 'root' }));
  t.ok((await root.send(new GetBucketPolicyCommand({ Bucket: ALICE_BUCKET }))).Policy, 'root reads alice\'s policy');
  t.equal((await root.send(new ListObjectsV2Command({ Bucket: BOB_BUCKET }))).KeyCount, 1, 'root lists bob\'s bucket');
  await root.send(new DeleteObjectCommand({ Bucket: ALICE_BUCKET, Key: 'from-root' }));

  // ---- tags are permissions of their own ----
  const ownerTag = [{ Key: 'owner', Value: 'alice' }];
  await alice.send(new PutObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt', Tagging: { TagSet: ownerTag } }));
  t.equal(await text(bob, ALICE_BUCKET, 'a.txt'), 'from alice', 'the public-read policy lets bob read the object');
  await denied(t, bob.send(new GetObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' })), 'but s3:GetObject does not cover its tags');
  await denied(t, bob.send(new PutObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt', Tagging: { TagSet: [] } })), 'bob may not tag without s3:PutObjectTagging');
  await denied(t, bob.send(new DeleteObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' })), 'nor untag');
  const bobWrites = (...actions: string[]) =>
    alice.send(new PutBucketPolicyCommand({ Bucket: ALICE_BUCKET, Policy: policy({ Effect: 'Allow', Principal: { AWS: 'bob' }, Action: actions, Resource: `arn:aws:s3:::${ALICE_BUCKET}/bob/*` }) }));
  await bobWrites('s3:PutObject');
  await bob.send(new PutObjectCommand({ Bucket: ALICE_BUCKET, Key: 'bob/plain', Body: 'x' }));
  await denied(t, bob.send(new PutObjectCommand({ Bucket: ALICE_BUCKET, Key: 'bob/tagged', Body: 'x', Tagging: 'by=bob' })), 'a PUT with tags also needs s3:PutObjectTagging');
  await denied(t, bob.send(new GetObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'bob/plain' })), 'and reading tags s3:GetObjectTagging');
  await bobWrites('s3:PutObject', 's3:PutObjectTagging', 's3:GetObjectTagging', 's3:DeleteObjectTagging', 's3:DeleteObject');
  await bob.send(new PutObjectCommand({ Bucket: ALICE_BUCKET, Key: 'bob/tagged', Body: 'x', Tagging: 'by=bob' }));
  t.same((await bob.send(new GetObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'bob/tagged' }))).TagSet, [{ Key: 'by', Value: 'bob' }], 'granted, bob tags his writes');
  await bob.send(new DeleteObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'bob/tagged' }));
  await denied(t, bob.send(new GetObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'bob/none' })), 'the tags of a missing key are AccessDenied without s3:ListBucket');
  await expectError(t, alice.send(new GetObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'bob/none' })), 'NoSuchKey', 404, 'but NoSuchKey for the owner');
  await denied(t, bob.send(new PutObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt', Tagging: { TagSet: [] } })), 'only where the policy says');
  t.same((await alice.send(new GetObjectTaggingCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' }))).TagSet, ownerTag);
  for (const key of ['bob/plain', 'bob/tagged']) await bob.send(new DeleteObjectCommand({ Bucket: ALICE_BUCKET, Key: key }));
  await alice.send(new PutBucketTaggingCommand({ Bucket: ALICE_BUCKET, Tagging: { TagSet: ownerTag } }));
  await denied(t, bob.send(new GetBucketTaggingCommand({ Bucket: ALICE_BUCKET })), "bob may not read alice's bucket tags");
  await denied(t, bob.send(new PutBucketTaggingCommand({ Bucket: ALICE_BUCKET, Tagging: { TagSet: [] } })), 'nor set them');
  t.same((await alice.send(new GetBucketTaggingCommand({ Bucket: ALICE_BUCKET }))).TagSet, ownerTag);
  const aliceAcl = await alice.send(new GetObjectAclCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' }));
  t.same(aliceAcl.Owner, { ID: 'alice', DisplayName: 'Alice A.' }, "an ACL shows the bucket's owner as ListBuckets does");
  t.same(aliceAcl.Grants?.map((g) => [g.Grantee?.ID, g.Permission]), [['alice', 'FULL_CONTROL']]);
  await denied(t, bob.send(new GetBucketAclCommand({ Bucket: ALICE_BUCKET })), 'ACLs are read with s3:GetBucketAcl');
  await denied(t, bob.send(new GetObjectAclCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' })), 'and s3:GetObjectAcl');

  // ---- users who own buckets stay ----
  t.match(await adminFails('user', 'delete', 'alice'), /still owns 1 bucket/, 'a user who owns buckets cannot be deleted');

  // ---- disabled and deleted keys stop working within the cache TTL ----
  const bobCall = (): Promise<unknown> => bob.send(new ListBucketsCommand({}));
  await admin('key', 'disable', bobKey.accessKeyId);
  const disabledAfter = await untilRefused(bobCall, 'InvalidAccessKeyId');
  t.ok(disabledAfter < 4000, `a disabled key is refused within a few seconds (${disabledAfter} ms)`);
  await admin('key', 'enable', bobKey.accessKeyId);
  await sleep(2500);
  await bobCall();
  t.pass('an enabled key works again');
  await admin('user', 'disable', 'bob');
  t.ok((await untilRefused(bobCall, 'InvalidAccessKeyId')) < 4000, 'a disabled user\'s keys are refused');
  await admin('user', 'enable', 'bob');
  await sleep(2500);
  await bobCall();
  await admin('key', 'delete', bobKey.accessKeyId);
  t.ok((await untilRefused(bobCall, 'InvalidAccessKeyId')) < 4000, 'a deleted key is refused');
  t.equal(await text(alice, ALICE_BUCKET, 'a.txt'), 'from alice', 'other keys are unaffected');

  // ---- a policy names a user, not a name: deleted and made again, the name gets nothing ----
  t.match(await admin('user', 'create', 'carol'), /user carol created/);
  const carolPolicy = policy({ Effect: 'Allow', Principal: { AWS: 'carol' }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${ALICE_BUCKET}/a.txt` });
  await alice.send(new PutBucketPolicyCommand({ Bucket: ALICE_BUCKET, Policy: carolPolicy }));
  const firstCarol = clientOf(await newKey('carol'));
  t.teardown(() => firstCarol.destroy());
  t.equal(await text(firstCarol, ALICE_BUCKET, 'a.txt'), 'from alice', 'the policy lets carol in');
  t.match(await admin('user', 'delete', 'carol'), /deleted/);
  t.match(await admin('user', 'create', 'carol'), /user carol created/);
  const secondCarol = clientOf(await newKey('carol'));
  t.teardown(() => secondCarol.destroy());
  await denied(t, secondCarol.send(new GetObjectCommand({ Bucket: ALICE_BUCKET, Key: 'a.txt' })), 'a new user under a deleted one\'s name');
  t.equal((await alice.send(new GetBucketPolicyCommand({ Bucket: ALICE_BUCKET }))).Policy, carolPolicy, 'the policy reads back as sent');
  await alice.send(new PutBucketPolicyCommand({ Bucket: ALICE_BUCKET, Policy: carolPolicy }));
  t.equal(await text(secondCarol, ALICE_BUCKET, 'a.txt'), 'from alice', 'put again, the policy names the new carol');
  await alice.send(new DeleteBucketPolicyCommand({ Bucket: ALICE_BUCKET }));
  t.match(await admin('user', 'delete', 'carol'), /deleted/);

  // ---- cleaning up: a user without buckets can go, with their keys ----
  for (const key of ['a.txt', 'private/p.txt']) await alice.send(new DeleteObjectCommand({ Bucket: ALICE_BUCKET, Key: key }));
  await alice.send(new DeleteBucketCommand({ Bucket: ALICE_BUCKET }));
  t.match(await admin('user', 'delete', 'alice'), /deleted/);
  t.ok((await untilRefused(() => alice.send(new ListBucketsCommand({})), 'InvalidAccessKeyId')) < 4000, 'a deleted user\'s keys are gone');
  t.same(JSON.parse(await admin('key', 'list', '--json')), [], 'no keys left (bob\'s was deleted)');
});

t.test('no secret ever reaches a log file', async (t) => {
  await env.cluster.stop();
  const dir = path.join(env.dataDir, 'logs');
  const files = await readdir(dir);
  t.ok(files.length >= 5, 'every service logged');
  t.ok(secrets.length >= 4);
  for (const file of files) {
    const content = await readFile(path.join(dir, file), 'utf8');
    for (const secret of secrets) t.notOk(content.includes(secret), `${file} does not contain a secret`);
  }
});
