// Which disks one storage process serves. Each disk is a storage node of its own (its own node id,
// data dir, port and heartbeat), so the rest of the cluster, placement and repair see no
// difference; sharing one process saves a machine the CPU of one Node.js runtime per disk
// (its JIT, GC and event loop contend for the same cores).

export interface DiskSpec {
  /** Undefined: the id stored in the data dir, or a new one on first start. */
  nodeId: string | undefined;
  dataDir: string;
}

/** Parses `--disks node-1=/data/d1,node-2=/data/d2`; every entry needs both a node id and a dir, each unique. */
export function parseDiskList(text: string): DiskSpec[] {
  const entries = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (entries.length === 0) throw new Error('--disks is empty (expected node-1=/data/d1,node-2=/data/d2)');
  const disks = entries.map((entry) => {
    const eq = entry.indexOf('=');
    const nodeId = entry.slice(0, eq).trim();
    const dataDir = entry.slice(eq + 1).trim();
    if (eq < 0 || !nodeId || !dataDir) throw new Error(`--disks entry "${entry}" is not <node-id>=<data-dir>`);
    return { nodeId, dataDir };
  });
  for (const key of ['nodeId', 'dataDir'] as const) {
    const seen = new Set<string>();
    for (const disk of disks) {
      if (seen.has(disk[key])) throw new Error(`--disks names ${key === 'nodeId' ? 'node id' : 'data dir'} "${disk[key]}" twice`);
      seen.add(disk[key]);
    }
  }
  return disks;
}

/** The port each disk's server binds: 0 stays 0 (each picks a free one); a fixed base counts up from it. */
export function diskPorts(basePort: number, disks: number): number[] {
  if (basePort !== 0 && basePort + disks - 1 > 65535) throw new Error(`--port ${basePort} leaves no room for ${disks} disks`);
  return Array.from({ length: disks }, (_, i) => (basePort === 0 ? 0 : basePort + i));
}
