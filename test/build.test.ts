// `npm start` runs the build (dist/), not the sources: this builds into a scratch folder beside
// dist/, starts the launcher from it the way `npm start` does, and drives the cluster with the
// SDK, so a module that only works under tsx (a path found through import.meta.url, a worker that
// wants the loader) fails here rather than on a user's first start.
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { REPO_ROOT } from '../common/source-tree.js';
import { buildTree } from '../deploy/build.js';
import { s3ClientFor } from './helpers/cluster.js';
import { tempDir } from './helpers/temp-dir.js';

const STARTUP_MS = 60_000;

t.test('npm start runs the built tree: every service from dist, a large PUT and GET round-trip', async (t) => {
  // Inside the repository so that the build finds node_modules as dist/ does.
  const outDir = path.join(REPO_ROOT, `.build-test-${process.pid}`);
  t.teardown(() => rm(outDir, { recursive: true, force: true }));
  const { files } = await buildTree(outDir);
  t.ok(files > 50, `built ${files} modules`);

  const dataDir = await tempDir(t, 'cairn-build-');
  const launcher = spawn(process.execPath, [path.join(outDir, 'deploy', 'main.js'), '--port', '0', '--data-dir', dataDir, '--quiet', '1',
    '--access-key-id', 'build-test-key', '--secret-access-key', 'build-test-secret-0123456789'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => launcher.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (launcher.exitCode === null) launcher.kill('SIGTERM');
    await exited;
  });
  let stderr = '';
  launcher.stderr.on('data', (d: Buffer) => (stderr += d.toString()));

  const lines: string[] = [];
  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no endpoint within ${STARTUP_MS} ms; stderr: ${stderr}`)), STARTUP_MS);
    createInterface({ input: launcher.stdout }).on('line', (line) => {
      lines.push(line);
      const match = /^S3 endpoint:\s+(\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    launcher.once('exit', (code) => reject(new Error(`the launcher exited (${code}); stderr: ${stderr}`)));
  });

  // Every service process runs a built module with no TypeScript loader.
  const pids = lines.flatMap((l) => /\bpid (\d+)/.exec(l)?.[1] ?? []).map(Number);
  t.ok(pids.length >= 4, `the launcher lists its services (${pids.length})`);
  const argvs: string[][] = [];
  for (const pid of pids) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    argvs.push(argv);
    t.ok(argv.some((a) => a.startsWith(outDir) && a.endsWith('/main.js')), `pid ${pid} runs ${argv.find((a) => a.endsWith('main.js'))}`);
    t.notOk(argv.includes('tsx'), `pid ${pid} has no tsx loader`);
  }
  // The launcher's V8 flags reach the built gateway (deploy/cluster.ts says why it has each).
  const gatewayFlags = argvs.find((argv) => argv.some((a) => a.endsWith('/gateway/main.js')))?.filter((a) => a.startsWith('--')) ?? [];
  t.ok(gatewayFlags.includes('--no-allocation-site-pretenuring') && gatewayFlags.includes('--initial-old-space-size=64'), `the gateway runs with its V8 flags: ${gatewayFlags.join(' ')}`);
  const namespaceFlags = argvs.find((argv) => argv.some((a) => a.endsWith('/namespace/main.js')))?.filter((a) => a.startsWith('--')) ?? [];
  t.ok(namespaceFlags.includes('--initial-old-space-size=64'), `the namespace runs with its V8 flags: ${namespaceFlags.join(' ')}`);

  const s3 = s3ClientFor(endpoint, { accessKeyId: 'build-test-key', secretAccessKey: 'build-test-secret-0123456789' });
  t.teardown(() => s3.destroy());
  await s3.send(new CreateBucketCommand({ Bucket: 'built' }));
  // 3 MiB: large enough for the digest thread, whose worker loads a built module too.
  const body = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < body.length; i += 4) body.writeUInt32LE((i * 2654435761) >>> 0, i);
  const put = await s3.send(new PutObjectCommand({ Bucket: 'built', Key: 'three-mib', Body: body }));
  t.ok(put.ETag, 'PUT answered with an ETag');
  const got = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: 'built', Key: 'three-mib' }))).Body!.transformToByteArray());
  t.ok(got.equals(body), 'GET returns the bytes PUT stored');

  launcher.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM stops the cluster cleanly');
  for (const pid of pids) t.throws(() => process.kill(pid, 0), `service pid ${pid} is gone`);
});
