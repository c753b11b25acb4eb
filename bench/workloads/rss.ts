// Memory of the S3 front process (Cairn's gateway; s3rver for comparison): peak RSS (VmHWM,
// reset through /proc/<pid>/clear_refs at the start of each phase, each phase on a freshly
// restarted process) while one large object streams in and out; while Cairn alone streams a 10 GiB
// object in and out (the issue states its bound for that size; a single PUT stops at 5 GiB, so it
// goes up as a multipart upload, one part at a time, and comes back as one GET); while 1,000 uploads
// are open at once, each having sent its headers (Content-Length far ahead of what arrives) and
// trickling its body a few KiB at a time; and while hundreds of GETs of that large object are open
// whose clients read the status line and then stop reading (a server that reads ahead for each of
// them without a common limit holds it all).
import net from 'node:net';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { target, ratioOf, type Row } from '../report.js';
import { encodePath, Signer } from '../s3/sigv4.js';
import { MiB, KiB, sleep } from '../stats.js';
import type { System } from '../systems.js';
import { ensureBucket, getPattern, PeakRss, putPattern, sdk } from './common.js';
import { BUCKET, type BenchContext, type WorkloadResult } from './context.js';
import { fmtSize, multipartUpload } from './multipart.js';

const DECLARED_LENGTH = 8 * MiB;
const TRICKLE_BYTES = 4 * KiB;
const TRICKLE_EVERY_MS = 250;
const CONNECT_BATCH = 100;
/**
 * How long the peak is still watched once the clients have gone: a gateway tearing down a thousand
 * cut requests works on them for about a second, and what it allocates meanwhile is memory those
 * connections cost too (read at 500 ms, the trickling phase missed a rise of up to ~55 MiB after it).
 */
const AFTERMATH_MS = 3000;

interface PausedResult {
  peakBytes: number;
  opened: number;
  statuses: Record<string, number>;
}

interface IdleResult {
  peakBytes: number;
  opened: number;
  answeredEarly: number;
  statuses: Record<string, number>;
  bytesSent: number;
}

export async function gatewayMemory(ctx: BenchContext): Promise<WorkloadResult> {
  const { objectSize, hugeObjectSize, hugePartSize, idleUploads, trickleMs, pausedDownloads, pauseMs } = ctx.cfg.rss;
  const streaming = new Map<string, number>();
  let hugePeak: number | undefined;
  const idle = new Map<string, IdleResult>();
  const paused = new Map<string, PausedResult>();
  let resetWorked = true;
  // Every phase starts on a fresh process, so its peak is what that phase costs: not what earlier
  // workloads or phases left resident (a heap grown, memory the allocator did not hand back).
  const fresh = async (system: System): Promise<void> => {
    if (system === ctx.cairn) await ctx.cairn.restartGateway();
    else if (system === ctx.peer) await ctx.peer.restart();
  };
  for (const system of ctx.systems) {
    await fresh(system);
    await ensureBucket(system);
    // A: one large object, PUT then GET (verified), single stream.
    const s3 = sdk(system, 2);
    const key = `rss/stream-${objectSize}`;
    try {
      const peak = await PeakRss.start(system.frontPid());
      await putPattern(s3, ctx.pattern, key, objectSize, ctx.signal);
      await getPattern(s3, ctx.pattern, key, objectSize, ctx.signal);
      const { bytes, sinceStart } = await peak.read();
      resetWorked &&= !sinceStart;
      streaming.set(system.name, bytes);
    } finally {
      s3.destroy();
    }
    if (system === ctx.cairn) {
      await fresh(system);
      hugePeak = await hugeStreamPeak(ctx, system, hugeObjectSize, hugePartSize);
      ctx.log(`  ${system.name}: peak RSS streaming ${fmtSize(hugeObjectSize)}: ${(hugePeak / MiB).toFixed(0)} MiB`);
    }
    // B: many open, trickling uploads.
    await fresh(system);
    const r = await idleUploadsPeak(ctx, system, idleUploads, trickleMs);
    idle.set(system.name, r);
    ctx.log(`  ${system.name}: peak RSS streaming ${fmtSize(objectSize)}: ${(streaming.get(system.name)! / MiB).toFixed(0)} MiB; with ${r.opened} trickling uploads: ${(r.peakBytes / MiB).toFixed(0)} MiB${r.answeredEarly ? ` (${r.answeredEarly} answered early: ${JSON.stringify(r.statuses)})` : ''}`);
    // C: many GETs of the large object whose clients stop reading.
    await fresh(system);
    const p = await pausedDownloadsPeak(ctx, system, key, pausedDownloads, pauseMs);
    paused.set(system.name, p);
    ctx.log(`  ${system.name}: peak RSS with ${p.opened} GETs of ${fmtSize(objectSize)} that stopped reading: ${(p.peakBytes / MiB).toFixed(0)} MiB (statuses ${JSON.stringify(p.statuses)})`);
  }
  const mib = (v: number | undefined): number | null => (v === undefined || !Number.isFinite(v) ? null : v / MiB);
  const cs = mib(streaming.get('cairn'));
  const ps = mib(streaming.get('s3rver'));
  const ci = mib(idle.get('cairn')?.peakBytes);
  const pi = mib(idle.get('s3rver')?.peakBytes);
  const c = idle.get('cairn');
  const cp = mib(paused.get('cairn')?.peakBytes);
  const pp = mib(paused.get('s3rver')?.peakBytes);
  const rows: Row[] = [
    {
      id: 'rss.stream',
      workload: `gateway peak RSS, streaming ${fmtSize(objectSize)} PUT + GET`,
      unit: 'MiB',
      cairn: cs,
      peer: ps,
      ratio: ratioOf(cs, ps),
      target: target.atMost(cs, 256, 'MiB'),
      note: `VmHWM of a freshly restarted gateway / s3rver process${resetWorked ? ', reset at the start of the phase' : ' since its start (clear_refs refused)'}`,
    },
    {
      id: 'rss.huge',
      workload: `gateway peak RSS, streaming ${fmtSize(hugeObjectSize)} PUT + GET`,
      unit: 'MiB',
      cairn: mib(hugePeak),
      peer: null,
      ratio: null,
      target: target.atMost(mib(hugePeak), 256, 'MiB'),
      note: `Cairn only: a multipart upload in ${fmtSize(hugePartSize)} parts, one at a time, then one GET of the whole object (verified); a freshly restarted gateway`,
    },
    {
      id: 'rss.idle',
      workload: `gateway peak RSS, ${idleUploads} trickling uploads`,
      unit: 'MiB',
      cairn: ci,
      peer: pi,
      ratio: ratioOf(ci, pi),
      target: target.atMost(ci, 256, 'MiB'),
      note: `each: headers with Content-Length ${DECLARED_LENGTH / MiB} MiB, then ${TRICKLE_BYTES / KiB} KiB every ${TRICKLE_EVERY_MS} ms for ${(trickleMs / 1000).toFixed(0)} s${c?.answeredEarly ? `; Cairn answered ${c.answeredEarly} early: ${JSON.stringify(c.statuses)}` : ''}`,
    },
    {
      id: 'rss.paused',
      workload: `gateway peak RSS, ${pausedDownloads} GETs of ${fmtSize(objectSize)} that stop reading`,
      unit: 'MiB',
      cairn: cp,
      peer: pp,
      ratio: ratioOf(cp, pp),
      target: target.atMost(cp, 256, 'MiB'),
      note: `each client reads the status line, then nothing for ${(pauseMs / 1000).toFixed(0)} s; statuses seen by Cairn's clients ${JSON.stringify(paused.get('cairn')?.statuses ?? {})}`,
    },
  ];
  return { rows, details: { objectSize, hugeObjectSize, hugePartSize, hugeStreamPeakBytes: hugePeak ?? null, streamingPeakBytes: Object.fromEntries(streaming), idle: Object.fromEntries(idle), paused: Object.fromEntries(paused) } };
}

/**
 * Peak RSS while `size` bytes go up as a multipart upload (one part at a time: one stream, as a
 * client copying a file would send it) and come back as one GET, every byte verified. The object is
 * deleted after: nothing reads it again. Its shards (1.5× its size) go after the repair service's
 * gc grace, or with the bench's data dir at the end of the run.
 */
async function hugeStreamPeak(ctx: BenchContext, system: System, size: number, partSize: number): Promise<number> {
  const s3 = sdk(system, 2);
  const key = `rss/huge-${size}`;
  try {
    const peak = await PeakRss.start(system.frontPid());
    const budgetMs = ctx.cfg.rss.budgetMs;
    const upload = await multipartUpload(s3, ctx.pattern, key, size, partSize, 1, budgetMs, ctx.signal);
    const got = performance.now();
    await getPattern(s3, ctx.pattern, key, size, ctx.signal);
    const getSeconds = (performance.now() - got) / 1000;
    const bytes = (await peak.read()).bytes;
    ctx.log(`  ${system.name}: ${fmtSize(size)} up in ${upload.seconds.toFixed(1)} s (${upload.parts} parts), down in ${getSeconds.toFixed(1)} s`);
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }), { abortSignal: ctx.signal });
    return bytes;
  } finally {
    s3.destroy();
  }
}

async function idleUploadsPeak(ctx: BenchContext, system: System, count: number, trickleMs: number): Promise<IdleResult> {
  const url = new URL(system.endpoint);
  const signer = new Signer(system.creds);
  const peak = await PeakRss.start(system.frontPid());
  const sockets: net.Socket[] = [];
  const statuses: Record<string, number> = {};
  let answeredEarly = 0;
  let bytesSent = 0;
  const chunk = Buffer.alloc(TRICKLE_BYTES, 0x61);
  try {
    for (let at = 0; at < count && !ctx.signal.aborted; at += CONNECT_BATCH) {
      const batch = Array.from({ length: Math.min(CONNECT_BATCH, count - at) }, (_, j) => openUpload(url, signer, `rss/idle/${at + j}`));
      for (const s of await Promise.all(batch)) {
        sockets.push(s);
        let answered = false;
        s.on('data', (d: Buffer) => {
          if (answered) return;
          answered = true;
          answeredEarly++;
          const status = /^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1] ?? 'other';
          statuses[status] = (statuses[status] ?? 0) + 1;
        });
        s.on('error', () => undefined);
      }
    }
    const end = performance.now() + trickleMs;
    while (performance.now() < end && !ctx.signal.aborted) {
      for (const s of sockets) {
        if (!s.destroyed && s.writable) {
          s.write(chunk);
          bytesSent += chunk.length;
        }
      }
      await sleep(TRICKLE_EVERY_MS, ctx.signal);
    }
  } finally {
    for (const s of sockets) s.destroy();
  }
  await sleep(AFTERMATH_MS);
  return { peakBytes: (await peak.read()).bytes, opened: sockets.length, answeredEarly, statuses, bytesSent };
}

async function pausedDownloadsPeak(ctx: BenchContext, system: System, key: string, count: number, pauseMs: number): Promise<PausedResult> {
  const url = new URL(system.endpoint);
  const signer = new Signer(system.creds);
  const peak = await PeakRss.start(system.frontPid());
  const sockets: net.Socket[] = [];
  const statuses: Record<string, number> = {};
  try {
    for (let at = 0; at < count && !ctx.signal.aborted; at += CONNECT_BATCH) {
      const batch = Array.from({ length: Math.min(CONNECT_BATCH, count - at) }, () => openDownload(url, signer, key));
      for (const s of await Promise.all(batch)) {
        sockets.push(s);
        s.on('error', () => undefined);
        // The status line, then nothing more: the server's writes back up.
        s.once('data', (d: Buffer) => {
          s.pause();
          const status = /^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1] ?? 'other';
          statuses[status] = (statuses[status] ?? 0) + 1;
        });
      }
    }
    await sleep(pauseMs, ctx.signal);
  } finally {
    for (const s of sockets) s.destroy();
  }
  await sleep(AFTERMATH_MS);
  return { peakBytes: (await peak.read()).bytes, opened: sockets.length, statuses };
}

/** A raw connection that has sent a signed request head (and no body) for `key`. */
async function openRequest(url: URL, signer: Signer, method: 'GET' | 'PUT', key: string, headers: Record<string, string> = {}): Promise<net.Socket> {
  const path = encodePath(BUCKET, key);
  const auth = signer.sign(method, url.host, path, '', headers);
  const all = { host: url.host, ...headers, ...auth };
  const head = `${method} ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  const socket = net.connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.setNoDelay(true);
  socket.write(head);
  return socket;
}

const openDownload = (url: URL, signer: Signer, key: string): Promise<net.Socket> => openRequest(url, signer, 'GET', key);

const openUpload = (url: URL, signer: Signer, key: string): Promise<net.Socket> =>
  openRequest(url, signer, 'PUT', key, { 'content-length': String(DECLARED_LENGTH), 'content-type': 'application/octet-stream' });
