// The machine's raw limits, measured in the same run as everything else so that ratios can be
// read against what the hardware can do at that moment: sequential disk write with fsync (on the
// filesystem the clusters use), loopback TCP between two processes, and one core's native
// Reed-Solomon encode and CRC32C throughput.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { crc32c } from '@node-rs/crc32';
import { StripeCodec } from '../erasure/codec.js';
import { onCleanup, trackDir, trackProcess } from './cleanup.js';
import type { Row } from './report.js';
import { MB, MiB, KiB } from './stats.js';
import { benchTempDir } from './systems.js';
import type { BenchContext, WorkloadResult } from './workloads/context.js';

export interface MachineLimits {
  /** MB/s (10^6 B/s). */
  diskWriteFsync: number;
  loopbackTcp: number;
  rsEncode1Core: number;
  crc32c1Core: number;
}

export async function measureMachine(ctx: BenchContext): Promise<WorkloadResult & { limits: MachineLimits }> {
  const { machine } = ctx.cfg;
  const disk = await diskWrite(machine.diskBytes, machine.budgetMs);
  ctx.log(`  disk sequential write + fsync: ${disk.mbps.toFixed(0)} MB/s (${(disk.bytes / MiB).toFixed(0)} MiB)`);
  const tcp = await loopbackTcp(machine.tcpBytes, machine.budgetMs);
  ctx.log(`  loopback TCP: ${tcp.mbps.toFixed(0)} MB/s (${(tcp.bytes / MiB).toFixed(0)} MiB)`);
  const rs = await rsEncode(machine.rsBytes, machine.budgetMs);
  ctx.log(`  RS(4,2) encode, 256 KiB blocks, one core: ${rs.mbps.toFixed(0)} MB/s of data`);
  const crc = crcThroughput(machine.crcBytes, machine.budgetMs);
  ctx.log(`  CRC32C, 256 KiB blocks, one core: ${crc.mbps.toFixed(0)} MB/s`);
  const limits: MachineLimits = { diskWriteFsync: disk.mbps, loopbackTcp: tcp.mbps, rsEncode1Core: rs.mbps, crc32c1Core: crc.mbps };
  const row = (id: string, workload: string, value: number, note: string): Row => ({ id, workload, unit: 'MB/s', cairn: value, peer: null, baseline: '', ratio: null, note });
  return {
    limits,
    rows: [
      row('machine.disk', 'machine: disk seq. write + fsync', disk.mbps, `${(disk.bytes / MiB).toFixed(0)} MiB in 4 MiB writes, one fsync, in ${path.dirname(path.dirname(disk.file))}`),
      row('machine.tcp', 'machine: loopback TCP', tcp.mbps, `${(tcp.bytes / MiB).toFixed(0)} MiB, one connection between two processes`),
      row('machine.rs', 'machine: RS(4,2) encode, 1 core', rs.mbps, 'data bytes/s, one stripe (4 × 256 KiB) at a time, @ronomon/reed-solomon'),
      row('machine.crc', 'machine: CRC32C, 1 core', crc.mbps, '256 KiB blocks, @node-rs/crc32'),
    ],
    details: { ...limits, diskBytes: disk.bytes, tcpBytes: tcp.bytes, rsBytes: rs.bytes, crcBytes: crc.bytes },
  };
}

async function diskWrite(total: number, budgetMs: number): Promise<{ mbps: number; bytes: number; file: string }> {
  const dir = await benchTempDir('disk');
  const done = onCleanup(`remove ${dir}`, trackDir(dir));
  const file = path.join(dir, 'seq.bin');
  const chunk = randomBytes(4 * MiB);
  try {
    const fh = await open(file, 'w');
    const t0 = performance.now();
    let written = 0;
    try {
      while (written < total && performance.now() - t0 < budgetMs) {
        await fh.write(chunk, 0, chunk.length, written);
        written += chunk.length;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    const seconds = (performance.now() - t0) / 1000;
    return { mbps: written / MB / seconds, bytes: written, file };
  } finally {
    await rm(file, { force: true });
    await done();
  }
}

/** A sink in another process; this process sends as fast as the socket drains. */
const SINK = `
const net = require('node:net');
const server = net.createServer((s) => {
  let n = 0;
  s.on('data', (d) => { n += d.length; });
  s.on('end', () => s.end(String(n) + '\\n'));
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
setInterval(() => { if (process.ppid === 1) process.exit(0); }, 1000).unref();
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
`;

async function loopbackTcp(total: number, budgetMs: number): Promise<{ mbps: number; bytes: number }> {
  const child = spawn(process.execPath, ['-e', SINK], { stdio: ['pipe', 'pipe', 'inherit'] });
  trackProcess(child);
  const stop = onCleanup('stop TCP sink', () => {
    child.kill('SIGKILL');
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`TCP sink exited (${code})`)));
      createInterface({ input: child.stdout! }).once('line', (line) => resolve(Number(line)));
    });
    const chunk = randomBytes(MiB);
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const t0 = performance.now();
    let sent = 0;
    const received = new Promise<number>((resolve, reject) => {
      let reply = '';
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      socket.once('end', () => resolve(Number(reply.trim())));
      socket.once('error', reject);
    });
    while (sent < total && performance.now() - t0 < budgetMs) {
      sent += chunk.length;
      if (!socket.write(chunk)) await new Promise<void>((resolve) => socket.once('drain', resolve));
    }
    socket.end();
    const got = await received;
    const seconds = (performance.now() - t0) / 1000;
    socket.destroy();
    if (got !== sent) throw new Error(`TCP sink received ${got} of ${sent} bytes`);
    return { mbps: sent / MB / seconds, bytes: sent };
  } finally {
    await stop();
  }
}

async function rsEncode(total: number, budgetMs: number): Promise<{ mbps: number; bytes: number }> {
  const block = 256 * KiB;
  const codec = new StripeCodec({ k: 4, m: 2, blockSize: block });
  // Several stripes' worth of input so the loop does not just re-read one cached stripe.
  const stripes = Array.from({ length: 16 }, () => randomBytes(4 * block));
  const parity = Buffer.alloc(2 * block);
  await codec.encode(stripes[0]!, parity, block); // warm-up
  const t0 = performance.now();
  let bytes = 0;
  // One call at a time: the addon runs each call on one libuv thread, so this is one core.
  for (let i = 0; bytes < total && performance.now() - t0 < budgetMs; i++) {
    await codec.encode(stripes[i % stripes.length]!, parity, block);
    bytes += 4 * block;
  }
  return { mbps: bytes / MB / ((performance.now() - t0) / 1000), bytes };
}

function crcThroughput(total: number, budgetMs: number): { mbps: number; bytes: number } {
  const block = 256 * KiB;
  const input = randomBytes(64 * MiB);
  let crc = crc32c(input.subarray(0, block)); // warm-up
  const t0 = performance.now();
  let bytes = 0;
  for (let at = 0; bytes < total && performance.now() - t0 < budgetMs; at = (at + block) % input.length) {
    crc = crc32c(input.subarray(at, at + block), crc);
    bytes += block;
  }
  if (crc === -1) console.log(''); // keep the loop observable
  return { mbps: bytes / MB / ((performance.now() - t0) / 1000), bytes };
}
