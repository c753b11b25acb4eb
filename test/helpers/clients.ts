// Test helper: run real third-party S3 clients (Debian's awscli v2 and rclone) against a Cairn
// gateway. Every command runs with a clean environment (no AWS_* / RCLONE_* from the machine, in
// particular no AWS_CA_BUNDLE, which makes rclone refuse plain-http endpoints), its own config
// files in a temp dir, and a hard timeout after which the process is killed.
// CAIRN_TRACE_CLIENTS=1 prints every command with its exit code and duration on stderr.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, constants, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Debian's awscli v2: another (older) `aws` comes first on PATH on this machine. */
export const AWS_BIN = '/usr/bin/aws';
export const RCLONE_BIN = '/usr/bin/rclone';
export const S3CMD_BIN = '/usr/bin/s3cmd';

export interface RunResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout as raw bytes (for binary output such as `rclone cat`). */
  stdoutBytes: Buffer;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs `bin args...`, collects its output, kills it (SIGKILL) when it outlives `timeoutMs`. */
export function run(bin: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const command = [bin, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve) => {
    const child = spawn(bin, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const finish = (code: number | null, signal: NodeJS.Signals | null, extra = ''): void => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      if (process.env.CAIRN_TRACE_CLIENTS) process.stderr.write(`[${Date.now() - started} ms] exit ${code} ${command}\n`);
      resolve({
        command,
        code,
        signal,
        stdout: stdoutBytes.toString('utf8'),
        stdoutBytes,
        stderr: Buffer.concat(err).toString('utf8') + extra,
        timedOut,
        ms: Date.now() - started,
      });
    };
    child.once('error', (e) => finish(null, null, `\nspawn failed: ${e.message}`));
    child.once('close', (code, signal) => finish(code, signal));
  });
}

/** The machine's environment minus everything that could steer an AWS client or rclone. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(AWS_|RCLONE_|BOTO_)/i.test(k)) continue;
    if (/^(HTTPS?_PROXY|ALL_PROXY|NO_PROXY)$/i.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export interface ClientCredentials {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** Writes an awscli config (path style, 5 MiB multipart threshold/chunks) and returns the env for /usr/bin/aws. */
export async function awsEnv(dir: string, c: ClientCredentials): Promise<NodeJS.ProcessEnv> {
  await mkdir(dir, { recursive: true });
  const config = path.join(dir, 'aws-config');
  await writeFile(
    config,
    [
      '[default]',
      'region = us-east-1',
      'output = json',
      'cli_pager =',
      's3 =',
      '    addressing_style = path',
      '    multipart_threshold = 5MB',
      '    multipart_chunksize = 5MB',
      '',
    ].join('\n'),
  );
  return cleanEnv({
    AWS_ACCESS_KEY_ID: c.accessKeyId,
    AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: config,
    AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'aws-credentials-none'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
    AWS_MAX_ATTEMPTS: '1',
    AWS_RETRY_MODE: 'standard',
  });
}

/** Writes an rclone.conf with one remote `[cairn]` and returns its path. */
export async function rcloneConfig(dir: string, c: ClientCredentials): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'rclone.conf');
  await writeFile(
    file,
    [
      '[cairn]',
      'type = s3',
      'provider = Other',
      'env_auth = false',
      `access_key_id = ${c.accessKeyId}`,
      `secret_access_key = ${c.secretAccessKey}`,
      `endpoint = ${c.endpoint}`,
      'region = us-east-1',
      '',
    ].join('\n'),
  );
  return file;
}

/** Writes an s3cmd config (path style, SigV4, plain http, 5 MiB multipart chunks) and returns its path. */
export async function s3cmdConfig(dir: string, c: ClientCredentials): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 's3cfg');
  const host = new URL(c.endpoint).host;
  await writeFile(
    file,
    [
      '[default]',
      `access_key = ${c.accessKeyId}`,
      `secret_key = ${c.secretAccessKey}`,
      `host_base = ${host}`,
      // No %(bucket)s: path-style addressing.
      `host_bucket = ${host}`,
      'use_https = False',
      'signature_v2 = False',
      'bucket_location = us-east-1',
      'multipart_chunk_size_mb = 5',
      'progress_meter = False',
      '',
    ].join('\n'),
  );
  return file;
}

export async function isExecutable(file: string): Promise<boolean> {
  return access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function md5hex(data: Buffer | string): string {
  return createHash('md5').update(data).digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  return sha256(await readFile(file));
}

/** Writes `files` (relative path → content) under `root`, creating directories. */
export async function writeTree(root: string, files: Record<string, Buffer>): Promise<void> {
  for (const [rel, data] of Object.entries(files)) {
    const file = path.join(root, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, data);
  }
}

/** Relative path ('/'-separated) → sha256 of every regular file under `root`. */
export async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(path.join(dir, entry.name), rel);
      else if (entry.isFile()) out.set(rel, await sha256File(path.join(dir, entry.name)));
    }
  };
  await walk(root, '');
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The HTTP statuses urllib3 logged under `aws --debug` (`"GET /b/k HTTP/1.1" 404 …`). */
export function awsDebugStatuses(stderr: string): number[] {
  return [...stderr.matchAll(/"(?:GET|HEAD|PUT|POST|DELETE) \S+ HTTP\/1\.1" (\d{3})/g)].map((m) => Number(m[1]));
}
