// What /proc says about the processes under test: peak RSS (VmHWM, which writing "5" to
// /proc/<pid>/clear_refs resets), CPU time, and bytes that reached the block layer (io write_bytes).
import { readFile, writeFile } from 'node:fs/promises';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

async function status(pid: number): Promise<string> {
  return readFile(`/proc/${pid}/status`, 'utf8');
}

function kb(text: string, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(text);
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Peak resident set size in bytes (since start or the last resetPeakRss). */
export async function peakRss(pid: number): Promise<number> {
  return kb(await status(pid), 'VmHWM');
}

export async function currentRss(pid: number): Promise<number> {
  return kb(await status(pid), 'VmRSS');
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0); false if the kernel or permissions refuse. */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** User + system CPU seconds the process has used so far (0 if it is gone). */
export async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name, which may itself hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14 and 15)
  } catch {
    return 0;
  }
}

/** CPU seconds of the whole machine so far: busy (everything but idle and iowait) and total, over all cores. */
export async function machineCpuSeconds(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

export interface IoCounters {
  /** Bytes the process caused to be sent to the storage layer. */
  writeBytes: number;
  /** Bytes passed to write(2) and friends. */
  wchar: number;
}

export async function io(pid: number): Promise<IoCounters> {
  try {
    const text = await readFile(`/proc/${pid}/io`, 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { writeBytes: field('write_bytes'), wchar: field('wchar') };
  } catch {
    return { writeBytes: 0, wchar: 0 };
  }
}

/** Sums of CPU seconds and I/O over a set of processes, sampled at two points in time. */
export class ProcessGroupMeter {
  private before: { cpu: number; io: IoCounters } | undefined;

  constructor(private readonly pids: () => number[]) {}

  async start(): Promise<void> {
    this.before = await this.sample();
  }

  async stop(): Promise<{ cpuSeconds: number; writeBytes: number; wchar: number }> {
    const after = await this.sample();
    const before = this.before ?? after;
    return {
      cpuSeconds: after.cpu - before.cpu,
      writeBytes: after.io.writeBytes - before.io.writeBytes,
      wchar: after.io.wchar - before.io.wchar,
    };
  }

  private async sample(): Promise<{ cpu: number; io: IoCounters }> {
    const pids = this.pids();
    const [cpus, ios] = await Promise.all([Promise.all(pids.map(cpuSeconds)), Promise.all(pids.map(io))]);
    return {
      cpu: cpus.reduce((a, b) => a + b, 0),
      io: ios.reduce((a, b) => ({ writeBytes: a.writeBytes + b.writeBytes, wchar: a.wchar + b.wchar }), { writeBytes: 0, wchar: 0 }),
    };
  }
}
