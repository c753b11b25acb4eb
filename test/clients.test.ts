// Client compatibility: the real cluster (processes in a temp dir) driven by real third-party S3
// clients from Debian — awscli v2 (/usr/bin/aws), rclone (/usr/bin/rclone) and s3cmd — exactly as a user
// would run them. Every round trip compares bytes (sha256 of source vs what came back); every S3
// error the clients hit is checked for its code and HTTP status in the client's own output.
// CI installs the three (.ci/run); a missing binary fails this file, it is never skipped.
import t, { type Test } from 'tap';
import { randomBytes, createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestCluster, ACCESS_KEY_ID, SECRET_ACCESS_KEY, type TestCluster } from './helpers/cluster.js';
import {
  AWS_BIN,
  RCLONE_BIN,
  S3CMD_BIN,
  awsDebugStatuses,
  awsEnv,
  cleanEnv,
  hashTree,
  isExecutable,
  md5hex,
  rcloneConfig,
  run,
  s3cmdConfig,
  sha256,
  sha256File,
  writeTree,
  type RunResult,
} from './helpers/clients.js';

const MiB = 1024 * 1024;
const BIG_SIZE = 17 * 1000 * 1000 + 7; // ~17 MB: 4 parts of 5 MiB (the last one short)
const COMMAND_TIMEOUT_MS = 60_000;

/** A tree with nested dirs, spaces, unicode and characters SigV4 encodes specially. */
function makeTree(): Record<string, Buffer> {
  return {
    'top.txt': Buffer.from('top level file\n'),
    'empty.txt': Buffer.alloc(0),
    'nested/a/sibling.txt': Buffer.from('sibling, version 1\n'),
    'nested/a/b/c/deep.bin': randomBytes(300_000),
    'with space/naïve café ☕ résumé.txt': Buffer.from('unicode name, spaces\n'),
    'with space/日本語 ファイル.dat': randomBytes(70_001),
    'special/a+b=c (1)~!.txt': Buffer.from('plus, equals, parens, tilde\n'),
  };
}

const s3Md5Etag = (data: Buffer): string => `"${md5hex(data)}"`;
/** The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, dash, part count. */
function multipartEtag(parts: Buffer[]): string {
  const h = createHash('md5');
  for (const p of parts) h.update(createHash('md5').update(p).digest());
  return `"${h.digest('hex')}-${parts.length}"`;
}
function split(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

function tail(text: string, n = 3000): string {
  const s = text.trim();
  return s.length > n ? `…${s.slice(-n)}` : s;
}

/** Asserts that a client command succeeded; on failure the diagnostic shows its stderr. */
function ok(t: Test, r: RunResult, what: string): boolean {
  const passed = r.code === 0 && !r.timedOut;
  t.ok(passed, what, {
    command: r.command,
    exit: r.timedOut ? `timed out after ${r.ms} ms (killed)` : r.code,
    signal: r.signal ?? undefined,
    stderr: tail(r.stderr),
    stdout: tail(r.stdout, 1500),
  });
  return passed;
}

/** Runs `tasks` at most `limit` at a time; results in task order. */
async function inParallel<T>(tasks: (() => Promise<T>)[], limit = 3): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** The request lines and response statuses in rclone's `--dump headers` output, in order. */
function rcloneExchanges(stderr: string): { method: string; path: string; status: number }[] {
  return [...stderr.matchAll(/DEBUG : (GET|HEAD|PUT|POST|DELETE) (\S+) HTTP\/1\.1\r?\n[\s\S]*?DEBUG : HTTP\/1\.1 (\d{3})/g)].map((m) => ({
    method: m[1]!,
    path: m[2]!,
    status: Number(m[3]),
  }));
}

function json<T = Record<string, unknown>>(t: Test, r: RunResult, what: string): T | undefined {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    t.fail(`${what}: output is not JSON`, { stdout: tail(r.stdout), stderr: tail(r.stderr) });
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------

let tmp = '';

t.test('real third-party S3 clients (awscli v2, rclone, s3cmd) against a real cluster', async (t) => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'cairn-clients-'));
  t.teardown(() => rm(tmp, { recursive: true, force: true }));

  const missing: string[] = [];
  for (const [bin, pkg] of [[AWS_BIN, 'awscli'], [RCLONE_BIN, 'rclone'], [S3CMD_BIN, 's3cmd']] as const) {
    if (!(await isExecutable(bin))) missing.push(`${bin} (Debian package ${pkg})`);
  }
  if (missing.length > 0) {
    t.fail(`third-party S3 clients are not installed: ${missing.join(', ')}. Install them (apt-get install awscli rclone s3cmd; .ci/run does this) — this test is not skipped.`);
    return;
  }
  const started = Date.now();
  const tc: TestCluster = await startTestCluster();
  t.teardown(() => tc.destroy());
  t.comment(`cluster up in ${Date.now() - started} ms at ${tc.cluster.endpoint}`);
  await t.test('awscli', (t) => awsTests(t, tc));
  await t.test('rclone', (t) => rcloneTests(t, tc));
  await t.test('s3cmd', (t) => s3cmdTests(t, tc));
  t.comment(`clients.test.ts total ${Date.now() - started} ms`);
});

// ---------------------------------------------------------------------------------------------
// awscli v2

async function awsTests(t: Test, tc: TestCluster): Promise<void> {
  const endpoint = tc.cluster.endpoint;
  const creds = { endpoint, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
  const env = await awsEnv(path.join(tmp, 'aws'), creds);
  const badEnv = { ...env, AWS_SECRET_ACCESS_KEY: 'not-the-secret' };
  const work = path.join(tmp, 'aws-work');
  await mkdir(work, { recursive: true });
  const bucket = 'cli-aws';
  const url = (key = ''): string => `s3://${bucket}/${key}`;

  const aws = (args: string[], e: NodeJS.ProcessEnv = env): Promise<RunResult> =>
    run(AWS_BIN, ['--endpoint-url', endpoint, ...args], { env: e, cwd: work, timeoutMs: COMMAND_TIMEOUT_MS });

  interface ErrorCase {
    args: string[];
    want: { exit: number; code: string; status: number };
    env?: NodeJS.ProcessEnv;
  }
  /** Runs commands that must fail with S3 error `code`, HTTP `status` and exit code `exit` (a few at a time). */
  async function awsErrors(t: Test, cases: ErrorCase[]): Promise<void> {
    const results = await inParallel(cases.map((c) => () => aws([...c.args, '--debug'], c.env ?? env)));
    for (const [i, r] of results.entries()) {
      const { args, want } = cases[i]!;
      const summary = { command: r.command, stderr: tail(r.stderr.split('\n').filter((l) => !l.includes(' - DEBUG - ') || / HTTP\/1\.1" \d{3}/.test(l)).join('\n')) };
      const what = `${args.slice(0, 2).join(' ')} → ${want.code}`;
      t.equal(r.code, want.exit, `${what}: exit code ${want.exit}`, summary);
      // awscli prints the code, or for a HEAD (no body) the status itself: "An error occurred (404) ...".
      t.match(r.stderr, `An error occurred (${want.code})`, `${what}: code in the CLI's message`, summary);
      const statuses = awsDebugStatuses(r.stderr);
      t.ok(statuses.includes(want.status), `${what}: HTTP status ${want.status} on the wire (saw ${statuses.join(',') || 'none'})`, summary);
    }
  }
  const awsError = (t: Test, args: string[], want: ErrorCase['want'], e?: NodeJS.ProcessEnv): Promise<void> => awsErrors(t, [{ args, want, env: e }]);

  async function head(key: string): Promise<Record<string, unknown> | undefined> {
    const r = await aws(['s3api', 'head-object', '--bucket', bucket, '--key', key]);
    return r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  }

  const small = randomBytes(123_457);
  const big = randomBytes(BIG_SIZE);
  await writeFile(path.join(work, 'small.bin'), small);
  await writeFile(path.join(work, 'big.bin'), big);

  await t.test('aws: s3 mb, s3 ls (buckets)', async (t) => {
    const mb = await aws(['s3', 'mb', url()]);
    if (!ok(t, mb, 's3 mb')) return;
    t.match(mb.stdout, `make_bucket: ${bucket}`);
    const ls = await aws(['s3', 'ls']);
    if (ok(t, ls, 's3 ls')) t.match(ls.stdout, new RegExp(`\\s${bucket}$`, 'm'), 'bucket listed');
  });

  await t.test('aws: s3 cp of a small file up and down', async (t) => {
    const up = await aws(['s3', 'cp', 'small.bin', url('dir/small.bin'), '--no-progress']);
    if (!ok(t, up, 's3 cp up')) return;
    t.match(up.stdout, `upload: ./small.bin to ${url('dir/small.bin')}`);
    const down = await aws(['s3', 'cp', url('dir/small.bin'), 'small.down', '--no-progress']);
    if (!ok(t, down, 's3 cp down')) return;
    t.equal(await sha256File(path.join(work, 'small.down')), sha256(small), 'downloaded bytes match (sha256)');
    const h = await head('dir/small.bin');
    t.equal(h?.ETag, s3Md5Etag(small), 'single-part ETag is the MD5');
    t.equal(h?.ContentLength, small.length);
  });

  await t.test('aws: s3 cp of a ~17 MB file (multipart, 5 MiB chunks) up and down', async (t) => {
    const up = await aws(['s3', 'cp', 'big.bin', url('big.bin'), '--no-progress']);
    if (!ok(t, up, 's3 cp up (multipart)')) return;
    const h = await head('big.bin');
    t.equal(h?.ContentLength, BIG_SIZE);
    t.equal(h?.ETag, multipartEtag(split(big, 5 * MiB)), 'ETag is md5-of-md5s-4: the CLI uploaded 4 parts');
    // s3transfer downloads objects above the threshold with parallel ranged GETs.
    const down = await aws(['s3', 'cp', url('big.bin'), 'big.down', '--no-progress']);
    if (!ok(t, down, 's3 cp down (ranged parts)')) return;
    t.equal(await sha256File(path.join(work, 'big.down')), sha256(big), 'downloaded bytes match (sha256)');
    await unlink(path.join(work, 'big.down'));
  });

  // A data lake's raw → conformed step: s3transfer copies an object above its multipart threshold
  // with UploadPartCopy, and first reads the source's tags (GetObjectTagging) to carry them over.
  await t.test('aws: s3 cp and s3 sync from bucket to bucket (multipart copy, tags carried)', async (t) => {
    const conformed = 'conformed-aws';
    const tag = await aws(['s3api', 'put-object-tagging', '--bucket', bucket, '--key', 'big.bin', '--tagging', 'TagSet=[{Key=stage,Value=raw},{Key=team,Value=lake}]']);
    if (!ok(t, tag, 's3api put-object-tagging') || !ok(t, await aws(['s3', 'mb', `s3://${conformed}`]), 's3 mb')) return;
    t.teardown(() => aws(['s3', 'rb', `s3://${conformed}`, '--force']).then(() => undefined));
    const tagsOf = async (b: string, key: string): Promise<unknown> =>
      (json<{ TagSet: unknown }>(t, await aws(['s3api', 'get-object-tagging', '--bucket', b, '--key', key]), 'get-object-tagging') ?? {}).TagSet;
    t.same(await tagsOf(bucket, 'big.bin'), [{ Key: 'stage', Value: 'raw' }, { Key: 'team', Value: 'lake' }]);

    const cp = await aws(['s3', 'cp', url('big.bin'), `s3://${conformed}/big.bin`, '--no-progress']);
    if (!ok(t, cp, 's3 cp from bucket to bucket')) return;
    t.same(await tagsOf(conformed, 'big.bin'), [{ Key: 'stage', Value: 'raw' }, { Key: 'team', Value: 'lake' }], 'the copy carries the tags');
    const sync = await aws(['s3', 'sync', url(), `s3://${conformed}/synced/`, '--no-progress']);
    if (!ok(t, sync, 's3 sync from bucket to bucket')) return;
    const copied = [...sync.stdout.matchAll(/^copy: (\S+) to /gm)].map((m) => m[1]).sort();
    t.same(copied, [url('big.bin'), url('dir/small.bin')], 'sync copied every object');
    for (const [key, bytes] of [['big.bin', big], ['synced/big.bin', big], ['synced/dir/small.bin', small]] as const) {
      const down = await aws(['s3', 'cp', `s3://${conformed}/${key}`, 'copy.down', '--no-progress']);
      if (ok(t, down, `s3 cp down ${key}`)) t.equal(await sha256File(path.join(work, 'copy.down')), sha256(bytes), `${key}: the copy's bytes match (sha256)`);
    }
    await unlink(path.join(work, 'copy.down'));

    // Emptying it as version-aware tools do (Terraform's force_destroy, boto3's object_versions):
    // every listed version, each one's only version "null", deleted by its id.
    type Versions = { Versions?: { Key: string; VersionId: string; IsLatest: boolean }[] };
    const listed = json<Versions>(t, await aws(['s3api', 'list-object-versions', '--bucket', conformed]), 'list-object-versions')?.Versions ?? [];
    const keys = ['big.bin', 'synced/big.bin', 'synced/dir/small.bin'];
    t.same(listed.map((v) => [v.Key, v.VersionId, v.IsLatest]), keys.map((k) => [k, 'null', true]), 'each object is its one version, null');
    await writeFile(path.join(work, 'versions.json'), JSON.stringify({ Objects: listed.map((v) => ({ Key: v.Key, VersionId: v.VersionId })) }));
    const deleted = await aws(['s3api', 'delete-objects', '--bucket', conformed, '--delete', 'file://versions.json']);
    if (ok(t, deleted, 's3api delete-objects of the listed versions')) {
      t.same(json<{ Deleted?: { Key: string }[] }>(t, deleted, 'delete-objects')?.Deleted?.map((d) => d.Key).sort(), keys);
    }
    ok(t, await aws(['s3', 'rb', `s3://${conformed}`]), 's3 rb: the bucket was left empty');
  });

  const tree = makeTree();
  const src = path.join(work, 'tree');
  await writeTree(src, tree);
  // `s3 sync` re-uploads a file whose mtime is newer than the object's LastModified: date the
  // tree a minute back so that second-granular LastModified values cannot make that flaky.
  const past = new Date(Date.now() - 60_000);
  for (const rel of Object.keys(tree)) await utimes(path.join(src, rel), past, past);
  const uploads = (r: RunResult): string[] => [...r.stdout.matchAll(/^upload: (.+) to s3:\/\//gm)].map((m) => m[1]!);

  await t.test('aws: s3 sync of a directory tree up, incremental, down', async (t) => {
    const first = await aws(['s3', 'sync', 'tree', url('tree'), '--no-progress']);
    if (!ok(t, first, 's3 sync up')) return;
    t.same(uploads(first).sort(), Object.keys(tree).map((k) => `tree/${k}`).sort(), 'every file uploaded once');

    const again = await aws(['s3', 'sync', 'tree', url('tree'), '--no-progress']);
    if (ok(t, again, 's3 sync up, nothing changed')) t.same(uploads(again), [], 'nothing transferred');

    tree['nested/a/sibling.txt'] = Buffer.from('sibling, version 2 (longer)\n');
    await writeFile(path.join(src, 'nested/a/sibling.txt'), tree['nested/a/sibling.txt']);
    const third = await aws(['s3', 'sync', 'tree', url('tree'), '--no-progress']);
    if (ok(t, third, 's3 sync up after one change')) t.same(uploads(third), ['tree/nested/a/sibling.txt'], 'only the changed file transferred');

    const dest = path.join(work, 'tree-down');
    const down = await aws(['s3', 'sync', url('tree'), 'tree-down', '--no-progress']);
    if (!ok(t, down, 's3 sync down into a fresh dir')) return;
    t.same([...(await hashTree(dest))], [...(await hashTree(src))], 'downloaded tree identical (names and sha256)');
  });

  await t.test('aws: s3 ls, s3 ls --recursive', async (t) => {
    const root = await aws(['s3', 'ls', url()]);
    if (ok(t, root, 's3 ls bucket root')) {
      t.match(root.stdout, /^\s+PRE dir\/$/m);
      t.match(root.stdout, /^\s+PRE tree\/$/m);
    }
    const dir = await aws(['s3', 'ls', url('dir/')]);
    if (ok(t, dir, 's3 ls of a prefix')) t.match(dir.stdout, new RegExp(`^\\S+ \\S+\\s+${small.length} small\\.bin$`, 'm'), 'object with its size');
    const sub = await aws(['s3', 'ls', url('tree/with space/')]);
    if (ok(t, sub, 's3 ls of a prefix with a space')) {
      const names = [...sub.stdout.matchAll(/^\S+ \S+\s+\d+ (.+)$/gm)].map((m) => m[1]).sort();
      t.same(names, ['naïve café ☕ résumé.txt', '日本語 ファイル.dat'].sort(), 'unicode names listed');
    }
    const rec = await aws(['s3', 'ls', url('tree/'), '--recursive']);
    if (ok(t, rec, 's3 ls --recursive')) {
      const listed = new Map([...rec.stdout.matchAll(/^\S+ \S+\s+(\d+) (.+)$/gm)].map((m) => [m[2]!, Number(m[1])]));
      t.same(
        [...listed].sort(),
        Object.entries(tree).map(([k, v]) => [`tree/${k}`, v.length]).sort(),
        'every key listed with its size',
      );
    }
  });

  await t.test('aws: s3api put-object, head-object, get-object --range', async (t) => {
    const data = randomBytes(2 * MiB + 3);
    const ranges = (): [string, number, number][] => [
      ['bytes=0-0', 0, 0],
      ['bytes=1000-1999', 1000, 1999],
      [`bytes=${MiB - 10}-${MiB + 10}`, MiB - 10, MiB + 10],
      ['bytes=-100', data.length - 100, data.length - 1],
      [`bytes=${2 * MiB}-`, 2 * MiB, data.length - 1],
    ];
    await writeFile(path.join(work, 'api.bin'), data);
    const put = await aws([
      's3api', 'put-object', '--bucket', bucket, '--key', 'api/obj.bin', '--body', 'api.bin',
      '--content-type', 'application/x-cairn-test', '--metadata', 'origin=awscli,Color=blue',
    ]);
    if (!ok(t, put, 's3api put-object')) return;
    t.equal(json(t, put, 'put-object')?.ETag, s3Md5Etag(data), 'put-object returns the MD5 ETag');

    const edge = 5 * MiB; // the first part boundary of the multipart big.bin
    const [h, edgeGet, results] = await Promise.all([
      head('api/obj.bin'),
      aws(['s3api', 'get-object', '--bucket', bucket, '--key', 'big.bin', '--range', `bytes=${edge - 7}-${edge + 8}`, 'edge.bin']),
      inParallel(ranges().map(([range, a, b]) => () => aws(['s3api', 'get-object', '--bucket', bucket, '--key', 'api/obj.bin', '--range', range, `range-${a}-${b}.bin`])), 2),
    ]);
    t.equal(h?.ContentLength, data.length);
    t.equal(h?.ContentType, 'application/x-cairn-test');
    t.equal(h?.ETag, s3Md5Etag(data));
    t.same(h?.Metadata, { origin: 'awscli', color: 'blue' }, 'user metadata (names lower-cased)');

    for (const [i, [range, a, b]] of ranges().entries()) {
      const out = `range-${a}-${b}.bin`;
      const r = results[i]!;
      if (!ok(t, r, `get-object --range ${range}`)) continue;
      const meta = json(t, r, 'get-object');
      t.equal(meta?.ContentRange, `bytes ${a}-${b}/${data.length}`, `${range}: Content-Range`);
      t.equal(meta?.ContentLength, b - a + 1, `${range}: Content-Length`);
      t.equal(sha256(await readFile(path.join(work, out))), sha256(data.subarray(a, b + 1)), `${range}: bytes match`);
    }
    if (ok(t, edgeGet, 'get-object --range across a part boundary of the multipart object')) {
      t.ok((await readFile(path.join(work, 'edge.bin'))).equals(big.subarray(edge - 7, edge + 9)), 'bytes match');
    }
  });

  await t.test('aws: s3api multipart upload by hand', async (t) => {
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB + 17), randomBytes(1234)];
    const key = 'mpu/by hand ☃.bin';
    for (const [i, p] of parts.entries()) await writeFile(path.join(work, `part${i + 1}`), p);
    const create = await aws([
      's3api', 'create-multipart-upload', '--bucket', bucket, '--key', key,
      '--content-type', 'application/x-parts', '--metadata', 'via=s3api',
    ]);
    if (!ok(t, create, 'create-multipart-upload')) return;
    const uploadId = json<{ UploadId?: string }>(t, create, 'create-multipart-upload')?.UploadId;
    if (!t.ok(uploadId, 'an UploadId')) return;

    const etags: string[] = [];
    const ups = await inParallel(parts.map((_, i) => () => aws(['s3api', 'upload-part', '--bucket', bucket, '--key', key, '--upload-id', uploadId!, '--part-number', String(i + 1), '--body', `part${i + 1}`])));
    for (const [i, p] of parts.entries()) {
      const up = ups[i]!;
      if (!ok(t, up, `upload-part ${i + 1}`)) return;
      const etag = json<{ ETag?: string }>(t, up, 'upload-part')?.ETag ?? '';
      t.equal(etag, s3Md5Etag(p), `part ${i + 1} ETag is its MD5`);
      etags.push(etag);
    }

    const [lp, lp2] = await Promise.all([
      aws(['s3api', 'list-parts', '--bucket', bucket, '--key', key, '--upload-id', uploadId!]),
      // Paging through list-parts (max-parts 2 → two server pages).
      aws(['s3api', 'list-parts', '--bucket', bucket, '--key', key, '--upload-id', uploadId!, '--page-size', '2']),
    ]);
    if (ok(t, lp, 'list-parts')) {
      const listed = json<{ Parts?: { PartNumber: number; ETag: string; Size: number }[] }>(t, lp, 'list-parts')?.Parts ?? [];
      t.same(
        listed.map((p) => [p.PartNumber, p.ETag, p.Size]),
        parts.map((p, i) => [i + 1, etags[i], p.length]),
        'list-parts shows every part with its ETag and size',
      );
    }
    if (ok(t, lp2, 'list-parts --page-size 2')) {
      const listed = json<{ Parts?: { PartNumber: number }[] }>(t, lp2, 'list-parts')?.Parts ?? [];
      t.same(listed.map((p) => p.PartNumber), [1, 2, 3], 'paged list-parts returns all parts');
    }

    const manifest = path.join(work, 'parts.json');
    await writeFile(manifest, JSON.stringify({ Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) }));
    const done = await aws(['s3api', 'complete-multipart-upload', '--bucket', bucket, '--key', key, '--upload-id', uploadId!, '--multipart-upload', `file://${manifest}`]);
    if (!ok(t, done, 'complete-multipart-upload')) return;
    const whole = Buffer.concat(parts);
    t.equal(json(t, done, 'complete')?.ETag, multipartEtag(parts), 'complete returns md5-of-md5s-3');

    const [h, get, gp] = await Promise.all([
      head(key),
      aws(['s3api', 'get-object', '--bucket', bucket, '--key', key, 'mpu.down']),
      aws(['s3api', 'get-object', '--bucket', bucket, '--key', key, '--part-number', '2', 'mpu.part2']),
    ]);
    t.equal(h?.ContentLength, whole.length);
    t.equal(h?.ETag, multipartEtag(parts));
    t.equal(h?.ContentType, 'application/x-parts', 'content type from create-multipart-upload');
    t.same(h?.Metadata, { via: 's3api' }, 'metadata from create-multipart-upload');
    if (ok(t, get, 'get-object of the completed upload')) {
      t.equal(await sha256File(path.join(work, 'mpu.down')), sha256(whole), 'bytes match (sha256)');
    }
    if (ok(t, gp, 'get-object --part-number 2')) {
      t.equal(await sha256File(path.join(work, 'mpu.part2')), sha256(parts[1]!), 'part 2 bytes');
    }

    // Error paths on a second upload: a wrong part ETag, then list-parts after abort.
    const c2 = await aws(['s3api', 'create-multipart-upload', '--bucket', bucket, '--key', 'mpu/aborted']);
    const id2 = c2.code === 0 ? json<{ UploadId?: string }>(t, c2, 'create')?.UploadId : undefined;
    if (!ok(t, c2, 'create a second upload') || !id2) return;
    const u2 = await aws(['s3api', 'upload-part', '--bucket', bucket, '--key', 'mpu/aborted', '--upload-id', id2, '--part-number', '1', '--body', 'part3']);
    ok(t, u2, 'upload-part to the second upload');
    await writeFile(manifest, JSON.stringify({ Parts: [{ ETag: '"00000000000000000000000000000000"', PartNumber: 1 }] }));
    await awsError(t, ['s3api', 'complete-multipart-upload', '--bucket', bucket, '--key', 'mpu/aborted', '--upload-id', id2, '--multipart-upload', `file://${manifest}`], { exit: 254, code: 'InvalidPart', status: 400 });
    const ab = await aws(['s3api', 'abort-multipart-upload', '--bucket', bucket, '--key', 'mpu/aborted', '--upload-id', id2]);
    ok(t, ab, 'abort-multipart-upload');
    await awsError(t, ['s3api', 'list-parts', '--bucket', bucket, '--key', 'mpu/aborted', '--upload-id', id2], { exit: 254, code: 'NoSuchUpload', status: 404 });
  });

  await t.test('aws: s3api list-objects-v2 paging with --max-items / --starting-token', async (t) => {
    const keys = Array.from({ length: 7 }, (_, i) => `page/k${i}`);
    await writeTree(path.join(work, 'page'), Object.fromEntries(keys.map((k) => [k.slice(5), Buffer.from(k)])));
    const cp = await aws(['s3', 'cp', 'page', url('page/'), '--recursive', '--no-progress']);
    if (!ok(t, cp, 's3 cp --recursive of 7 small files')) return;
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const args = ['s3api', 'list-objects-v2', '--bucket', bucket, '--prefix', 'page/', '--page-size', '2', '--max-items', '3'];
      if (token) args.push('--starting-token', token);
      const r = await aws(args);
      if (!ok(t, r, `list-objects-v2 page ${pages + 1}`)) return;
      const body = json<{ Contents?: { Key: string; Size: number }[]; NextToken?: string }>(t, r, 'list-objects-v2');
      const page = (body?.Contents ?? []).map((c) => c.Key);
      t.ok(page.length <= 3, `page ${pages + 1} holds at most 3 items (${page.length})`);
      seen.push(...page);
      token = body?.NextToken;
      pages++;
    } while (token && pages < 10);
    t.equal(pages, 3, 'three CLI pages of ≤3 items');
    t.same(seen, keys, 'all keys, in order, each once');
    // Delimiter listing: common prefixes and objects at the root.
    const d = await aws(['s3api', 'list-objects-v2', '--bucket', bucket, '--prefix', 'tree/', '--delimiter', '/']);
    if (ok(t, d, 'list-objects-v2 --prefix tree/ --delimiter /')) {
      const body = json<{ CommonPrefixes?: { Prefix: string }[]; Contents?: { Key: string }[] }>(t, d, 'list');
      t.same((body?.CommonPrefixes ?? []).map((p) => p.Prefix), ['tree/nested/', 'tree/special/', 'tree/with space/'], 'common prefixes');
      t.same((body?.Contents ?? []).map((c) => c.Key), ['tree/empty.txt', 'tree/top.txt'], 'objects at the prefix level');
    }
  });

  await t.test('aws: server-side s3 cp s3:// → s3:// (CopyObject)', async (t) => {
    const r = await aws(['s3', 'cp', url('dir/small.bin'), url('copies/small copy.bin'), '--no-progress']);
    if (!ok(t, r, 's3 cp s3→s3')) return;
    const down = await aws(['s3', 'cp', url('copies/small copy.bin'), 'copy.down', '--no-progress']);
    if (ok(t, down, 's3 cp down of the copy')) t.equal(await sha256File(path.join(work, 'copy.down')), sha256(small), 'copy has the same bytes');
  });

  await t.test('aws: S3 errors carry their code and status', async (t) => {
    const nothing = path.join(work, 'nothing');
    await awsErrors(t, [
      { args: ['s3api', 'get-object', '--bucket', bucket, '--key', 'no/such/key', nothing], want: { exit: 254, code: 'NoSuchKey', status: 404 } },
      { args: ['s3api', 'head-object', '--bucket', bucket, '--key', 'no/such/key'], want: { exit: 254, code: '404', status: 404 } },
      { args: ['s3api', 'get-object', '--bucket', 'no-such-bucket-here', '--key', 'k', nothing], want: { exit: 254, code: 'NoSuchBucket', status: 404 } },
      { args: ['s3api', 'get-object', '--bucket', bucket, '--key', 'dir/small.bin', '--range', `bytes=${small.length}-`, nothing], want: { exit: 254, code: 'InvalidRange', status: 416 } },
      { args: ['s3', 'rb', url()], want: { exit: 1, code: 'BucketNotEmpty', status: 409 } },
      { args: ['s3', 'cp', url('no/such/key'), nothing], want: { exit: 1, code: '404', status: 404 } },
      { args: ['s3api', 'list-objects-v2', '--bucket', bucket], want: { exit: 254, code: 'SignatureDoesNotMatch', status: 403 }, env: badEnv },
      { args: ['s3api', 'put-object', '--bucket', bucket, '--key', 'x', '--body', 'small.bin'], want: { exit: 254, code: 'InvalidAccessKeyId', status: 403 }, env: { ...env, AWS_ACCESS_KEY_ID: 'AKIDNOSUCHKEY' } },
    ]);
  });

  await t.test('aws: s3 rm, s3 rm --recursive, s3 rb', async (t) => {
    const one = await aws(['s3', 'rm', url('tree/top.txt')]);
    if (ok(t, one, 's3 rm')) t.match(one.stdout, `delete: ${url('tree/top.txt')}`);
    await awsError(t, ['s3api', 'head-object', '--bucket', bucket, '--key', 'tree/top.txt'], { exit: 254, code: '404', status: 404 });

    const sub = await aws(['s3', 'rm', url('tree/nested/'), '--recursive']);
    if (ok(t, sub, 's3 rm --recursive of a prefix')) {
      const deleted = [...sub.stdout.matchAll(/^delete: s3:\/\/\S+?\/(.+)$/gm)].map((m) => m[1]).sort();
      t.same(deleted, ['tree/nested/a/b/c/deep.bin', 'tree/nested/a/sibling.txt']);
    }
    const rest = await aws(['s3', 'ls', url('tree/'), '--recursive']);
    if (ok(t, rest, 's3 ls --recursive after rm')) {
      const keys = [...rest.stdout.matchAll(/^\S+ \S+\s+\d+ (.+)$/gm)].map((m) => m[1]).sort();
      t.same(keys, Object.keys(tree).filter((k) => k !== 'top.txt' && !k.startsWith('nested/')).map((k) => `tree/${k}`).sort());
    }

    const all = await aws(['s3', 'rm', url(), '--recursive']);
    ok(t, all, 's3 rm --recursive of the whole bucket');
    const rb = await aws(['s3', 'rb', url()]);
    if (ok(t, rb, 's3 rb of the emptied bucket')) t.match(rb.stdout, `remove_bucket: ${bucket}`);
    const ls = await aws(['s3', 'ls']);
    if (ok(t, ls, 's3 ls')) t.notMatch(ls.stdout, bucket, 'bucket gone');
  });
}

// ---------------------------------------------------------------------------------------------
// rclone

async function rcloneTests(t: Test, tc: TestCluster): Promise<void> {
  const endpoint = tc.cluster.endpoint;
  const config = await rcloneConfig(path.join(tmp, 'rclone'), { endpoint, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
  // A second remote with a wrong secret, for the auth error path.
  await writeFile(config, `${await readFile(config, 'utf8')}\n[wrongsecret]\ntype = s3\nprovider = Other\nenv_auth = false\naccess_key_id = ${ACCESS_KEY_ID}\nsecret_access_key = wrong\nendpoint = ${endpoint}\nregion = us-east-1\n`);
  // AWS_CA_BUNDLE (set on this machine) makes rclone 1.60 refuse plain-http endpoints; cleanEnv drops it.
  const env = cleanEnv({ HOME: path.join(tmp, 'rclone') });
  const work = path.join(tmp, 'rclone-work');
  await mkdir(work, { recursive: true });
  const bucket = 'cli-rclone';
  const remote = (p = ''): string => `cairn:${bucket}${p ? `/${p}` : ''}`;
  const rclone = (args: string[]): Promise<RunResult> =>
    run(RCLONE_BIN, ['--config', config, '--retries', '1', '--low-level-retries', '1', ...args], { env, cwd: work, timeoutMs: COMMAND_TIMEOUT_MS });
  const awsEnvForChecks = await awsEnv(path.join(tmp, 'aws-rclone'), { endpoint, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
  const headObject = async (key: string): Promise<Record<string, unknown> | undefined> => {
    const r = await run(AWS_BIN, ['--endpoint-url', endpoint, 's3api', 'head-object', '--bucket', bucket, '--key', key], { env: awsEnvForChecks, timeoutMs: COMMAND_TIMEOUT_MS });
    return r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  };

  const tree = makeTree();
  const src = path.join(work, 'src');
  await writeTree(src, tree);
  const expectedMd5 = (): string[] => Object.entries(tree).map(([k, v]) => `${md5hex(v)}  ${k}`).sort();
  const lines = (s: string): string[] => s.split('\n').map((l) => l.trimEnd()).filter(Boolean);

  /** rclone check: sizes and MD5 hashes (local MD5 vs ETag / X-Amz-Meta-Md5chksum) must agree; --download compares bytes. */
  async function check(t: Test, what: string, extra: string[] = [], localDir = src, remotePath = remote()): Promise<void> {
    const r = await rclone(['check', localDir, remotePath, '-v', ...extra]);
    if (!ok(t, r, `rclone check ${extra.join(' ')}(${what})`)) return;
    t.match(r.stderr, / 0 differences found/, `${what}: 0 differences`);
    t.match(r.stderr, / [1-9]\d* matching files/, `${what}: files matched`);
    if (!extra.includes('--download')) t.match(r.stderr, /Using md5 for hash comparisons/, `${what}: MD5s were compared`);
    t.notMatch(r.stderr, /No common hash found|hashes could not be checked/i, `${what}: no file skipped its hash`);
  }

  await t.test('rclone: mkdir, copy a directory up, lsf, ls, md5sum', async (t) => {
    if (!ok(t, await rclone(['mkdir', remote()]), 'rclone mkdir (CreateBucket)')) return;
    const up = await rclone(['copy', src, remote(), '-v']);
    if (!ok(t, up, 'rclone copy up')) return;
    t.equal([...up.stderr.matchAll(/: Copied \(new\)/g)].length, Object.keys(tree).length, 'every file copied');

    const lsf = await rclone(['lsf', '-R', '--files-only', remote()]);
    if (ok(t, lsf, 'rclone lsf -R')) t.same(lines(lsf.stdout).sort(), Object.keys(tree).sort(), 'lsf lists every file');
    const top = await rclone(['lsf', remote()]);
    if (ok(t, top, 'rclone lsf (one level)')) t.same(lines(top.stdout).sort(), ['empty.txt', 'nested/', 'special/', 'top.txt', 'with space/']);
    const ls = await rclone(['ls', remote()]);
    if (ok(t, ls, 'rclone ls')) {
      const sizes = lines(ls.stdout).map((l) => l.trim().match(/^(\d+) (.+)$/)).map((m) => [m?.[2], Number(m?.[1])]);
      t.same(sizes.sort(), Object.entries(tree).map(([k, v]) => [k, v.length]).sort(), 'ls shows every size');
    }
    const sums = await rclone(['md5sum', remote()]);
    if (ok(t, sums, 'rclone md5sum')) t.same(lines(sums.stdout).sort(), expectedMd5(), 'remote MD5s (ETags) match the local files');
    await check(t, 'after copy');
    await check(t, 'after copy', ['--download']);
  });

  await t.test('rclone: cat', async (t) => {
    const key = 'nested/a/b/c/deep.bin';
    const data = tree[key]!;
    const r = await rclone(['cat', remote(key)]);
    if (ok(t, r, 'rclone cat')) t.equal(sha256(r.stdoutBytes), sha256(data), 'cat bytes match (sha256)');
    const part = await rclone(['cat', remote(key), '--offset', '262140', '--count', '10000']);
    if (ok(t, part, 'rclone cat --offset --count (ranged GET)')) t.ok(part.stdoutBytes.equals(data.subarray(262140, 272140)), 'ranged bytes match');
    const text = await rclone(['cat', remote('with space/naïve café ☕ résumé.txt')]);
    if (ok(t, text, 'rclone cat of a unicode key')) t.equal(text.stdout, tree['with space/naïve café ☕ résumé.txt']!.toString());
  });

  await t.test('rclone: sync with a change and a deletion', async (t) => {
    // Same size, different bytes: only the checksum can tell.
    const changed = 'with space/日本語 ファイル.dat';
    tree[changed] = randomBytes(tree[changed]!.length);
    await writeFile(path.join(src, changed), tree[changed]!);
    const gone = 'special/a+b=c (1)~!.txt';
    delete tree[gone];
    await unlink(path.join(src, gone));
    const added = 'nested/new file.txt';
    tree[added] = Buffer.from('added before the sync\n');
    await writeFile(path.join(src, added), tree[added]!);

    const r = await rclone(['sync', src, remote(), '--checksum', '-v']);
    if (!ok(t, r, 'rclone sync --checksum')) return;
    const copied = [...r.stderr.matchAll(/INFO {2}: (.+): Copied \((new|replaced existing)\)/g)].map((m) => `${m[1]} (${m[2]})`).sort();
    t.same(copied, [`${added} (new)`, `${changed} (replaced existing)`].sort(), 'only the new and the changed file transferred');
    const deleted = [...r.stderr.matchAll(/INFO {2}: (.+): Deleted/g)].map((m) => m[1]);
    t.same(deleted, [gone], 'the removed file deleted');
    const lsf = await rclone(['lsf', '-R', '--files-only', remote()]);
    if (ok(t, lsf, 'rclone lsf -R after sync')) t.same(lines(lsf.stdout).sort(), Object.keys(tree).sort());
    const sums = await rclone(['md5sum', remote()]);
    if (ok(t, sums, 'rclone md5sum after sync')) t.same(lines(sums.stdout).sort(), expectedMd5());
    await check(t, 'after sync');
  });

  const big = randomBytes(BIG_SIZE);
  const bigDir = path.join(work, 'bigsrc');
  await writeTree(bigDir, { 'big.bin': big });

  await t.test('rclone: ~17 MB multipart upload (5M cutoff and chunks), check, md5 metadata', async (t) => {
    const up = await rclone(['copy', bigDir, remote('big'), '--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M', '-v']);
    if (!ok(t, up, 'rclone copy of ~17 MB as multipart')) return;
    const h = await headObject('big/big.bin');
    t.equal(h?.ContentLength, BIG_SIZE);
    t.match(String(h?.ETag), /^"[0-9a-f]{32}-4"$/, 'multipart ETag with 4 parts');
    t.equal(h?.ETag, multipartEtag(split(big, 5 * MiB)), 'ETag is md5-of-md5s of the 5 MiB parts');
    const meta = (h?.Metadata ?? {}) as Record<string, string>;
    t.equal(meta['md5chksum'], createHash('md5').update(big).digest('base64'), 'X-Amz-Meta-Md5chksum round-trips (base64 MD5 of the whole file)');
    t.ok(meta['mtime'], 'X-Amz-Meta-Mtime round-trips');
    const sums = await rclone(['md5sum', remote('big')]);
    if (ok(t, sums, 'rclone md5sum of the multipart object')) t.same(lines(sums.stdout), [`${md5hex(big)}  big.bin`], 'rclone reads the MD5 from metadata');
    await check(t, 'multipart object', [], bigDir, remote('big'));
    await check(t, 'multipart object', ['--download'], bigDir, remote('big'));
  });

  await t.test('rclone: copy everything back down and compare bytes', async (t) => {
    const dest = path.join(work, 'down');
    const r = await rclone(['copy', remote(), dest]);
    if (!ok(t, r, 'rclone copy down')) return;
    const want = new Map([...(await hashTree(src))]);
    want.set('big/big.bin', sha256(big));
    t.same([...(await hashTree(dest))], [...want].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)), 'every file identical (sha256)');
  });

  await t.test('rclone: S3 errors carry their code and status', async (t) => {
    const rm = await rclone(['rmdir', remote()]);
    t.not(rm.code, 0, 'rmdir of a non-empty bucket fails', { stderr: tail(rm.stderr) });
    t.match(rm.stderr, /BucketNotEmpty: The bucket you tried to delete is not empty\s+status code: 409/, 'BucketNotEmpty, 409');

    const bad = await run(RCLONE_BIN, ['--config', config, '--retries', '1', '--low-level-retries', '1', 'lsf', `wrongsecret:${bucket}`], { env, timeoutMs: COMMAND_TIMEOUT_MS });
    t.not(bad.code, 0, 'a wrong secret fails', { stderr: tail(bad.stderr) });
    t.match(bad.stderr, /SignatureDoesNotMatch: .*\s+status code: 403/, 'SignatureDoesNotMatch, 403');

    const nb = await rclone(['lsf', 'cairn:no-such-bucket-here', '--dump', 'headers,responses']);
    t.equal(nb.code, 3, 'lsf of a missing bucket exits 3 (directory not found)', { stderr: tail(nb.stderr) });
    t.match(nb.stderr, /directory not found/);
    const listing = rcloneExchanges(nb.stderr).find((x) => x.method === 'GET' && x.path.startsWith('/no-such-bucket-here'));
    t.equal(listing?.status, 404, 'the listing got 404');
    t.match(nb.stderr, /<Code>NoSuchBucket<\/Code>/, 'with code NoSuchBucket');

    const nk = await rclone(['cat', remote('no/such/key'), '--dump', 'headers']);
    const headMissing = rcloneExchanges(nk.stderr).find((x) => x.method === 'HEAD');
    t.same(headMissing, { method: 'HEAD', path: '/cli-rclone/no/such/key', status: 404 }, 'HEAD of a missing key got 404');
  });

  await t.test('rclone: purge', async (t) => {
    const r = await rclone(['purge', remote()]);
    if (!ok(t, r, 'rclone purge')) return;
    const ls = await rclone(['lsd', 'cairn:']);
    if (ok(t, ls, 'rclone lsd')) t.notMatch(ls.stdout, bucket, 'bucket gone');
  });
}

// ---------------------------------------------------------------------------------------------
// s3cmd

async function s3cmdTests(t: Test, tc: TestCluster): Promise<void> {
  const endpoint = tc.cluster.endpoint;
  const config = await s3cmdConfig(path.join(tmp, 's3cmd'), { endpoint, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
  const env = cleanEnv({ HOME: path.join(tmp, 's3cmd') });
  const work = path.join(tmp, 's3cmd-work');
  await mkdir(work, { recursive: true });
  const bucket = 'cli-s3cmd';
  const url = (key = ''): string => `s3://${bucket}/${key}`;
  const awsChecks = await awsEnv(path.join(tmp, 'aws-s3cmd'), { endpoint, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
  const s3cmd = (args: string[]): Promise<RunResult> => run(S3CMD_BIN, ['-c', config, '--no-progress', ...args], { env, cwd: work, timeoutMs: COMMAND_TIMEOUT_MS });
  const small = randomBytes(54_321);
  const big = randomBytes(BIG_SIZE);
  await writeFile(path.join(work, 'small.bin'), small);
  await writeFile(path.join(work, 'big.bin'), big);

  await t.test('s3cmd: mb, put (one part and multipart), get, ls, du, info', async (t) => {
    const mb = await s3cmd(['mb', url()]);
    if (!ok(t, mb, 's3cmd mb')) return;
    t.match(mb.stdout, `Bucket '${url()}' created`);
    for (const [name, bytes] of [['small.bin', small], ['big.bin', big]] as const) {
      const put = await s3cmd(['put', name, url(`up/${name}`)]);
      if (!ok(t, put, `s3cmd put ${name}`)) return;
      if (name === 'big.bin') {
        const head = await run(AWS_BIN, ['--endpoint-url', endpoint, 's3api', 'head-object', '--bucket', bucket, '--key', `up/${name}`], { env: awsChecks, timeoutMs: COMMAND_TIMEOUT_MS });
        if (ok(t, head, 'aws s3api head-object')) t.match(JSON.parse(head.stdout), { ETag: /-4"$/ }, 'uploaded in 4 parts of 5 MiB');
      }
      const got = await s3cmd(['get', '--force', url(`up/${name}`), `${name}.down`]);
      if (ok(t, got, `s3cmd get ${name} (s3cmd checks the MD5 itself)`)) t.equal(await sha256File(path.join(work, `${name}.down`)), sha256(bytes), `${name}: bytes match (sha256)`);
      t.notMatch(got.stderr, /MD5 signatures do not match|WARNING/, `${name}: no checksum warning`);
    }
    const ls = await s3cmd(['ls', url('up/')]);
    if (ok(t, ls, 's3cmd ls')) t.same([...ls.stdout.matchAll(/\s(\d+)\s+(s3:\S+)$/gm)].map((m) => [m[2], Number(m[1])]), [[url('up/big.bin'), BIG_SIZE], [url('up/small.bin'), small.length]]);
    const du = await s3cmd(['du', url()]);
    if (ok(t, du, 's3cmd du')) t.match(du.stdout, new RegExp(`^\\s*${BIG_SIZE + small.length}\\s+2 objects`, 'm'), 'du adds up every byte');
    const info = await s3cmd(['info', url('up/small.bin')]);
    if (ok(t, info, 's3cmd info')) {
      t.match(info.stdout, `MD5 sum:   ${md5hex(small)}`);
      t.match(info.stdout, /ACL:\s+\S+: FULL_CONTROL/, 'the owner has full control');
    }
  });

  await t.test('s3cmd: sync up and down, then nothing to do', async (t) => {
    const tree = makeTree();
    await writeTree(path.join(work, 'tree'), tree);
    if (!ok(t, await s3cmd(['sync', 'tree/', url('tree/')]), 's3cmd sync up')) return;
    const again = await s3cmd(['sync', 'tree/', url('tree/')]);
    if (ok(t, again, 's3cmd sync up again')) t.notMatch(again.stdout, /upload:/, 'nothing uploaded the second time');
    if (!ok(t, await s3cmd(['sync', url('tree/'), 'tree-down/']), 's3cmd sync down')) return;
    t.same(await hashTree(path.join(work, 'tree-down')), await hashTree(path.join(work, 'tree')), 'the tree came back byte for byte');
  });

  await t.test('s3cmd: cp, modify, mv, setacl, del, rb', async (t) => {
    if (!ok(t, await s3cmd(['cp', url('up/big.bin'), url('copy/big.bin')]), 's3cmd cp (a server-side copy)')) return;
    const copied = await s3cmd(['get', '--force', url('copy/big.bin'), 'copy.down']);
    if (ok(t, copied, 's3cmd get of the copy')) t.equal(await sha256File(path.join(work, 'copy.down')), sha256(big));
    if (ok(t, await s3cmd(['modify', '--add-header', 'x-amz-meta-stage:conformed', url('up/small.bin')]), 's3cmd modify (a copy onto itself)')) {
      const info = await s3cmd(['info', url('up/small.bin')]);
      if (ok(t, info, 's3cmd info after modify')) t.match(info.stdout, 'x-amz-meta-stage: conformed');
    }
    if (ok(t, await s3cmd(['mv', url('copy/big.bin'), url('moved/big.bin')]), 's3cmd mv')) {
      const ls = await s3cmd(['ls', '--recursive', url()]);
      if (ok(t, ls, 's3cmd ls --recursive')) {
        t.match(ls.stdout, url('moved/big.bin'));
        t.notMatch(ls.stdout, url('copy/big.bin'), 'the source of the move is gone');
      }
    }
    const publicAcl = await s3cmd(['setacl', '--acl-public', url('up/small.bin')]);
    t.not(publicAcl.code, 0, 's3cmd setacl --acl-public fails: ACLs are off, grant with a bucket policy');
    t.match(publicAcl.stderr, 'AccessControlListNotSupported');
    if (ok(t, await s3cmd(['del', url('up/small.bin')]), 's3cmd del')) {
      const info = await s3cmd(['info', url('up/small.bin')]);
      t.not(info.code, 0, 'deleted');
    }
    const rb = await s3cmd(['rb', '--recursive', '--force', url()]);
    if (ok(t, rb, 's3cmd rb --recursive')) t.match(rb.stdout, `Bucket '${url()}' removed`);
  });
}
