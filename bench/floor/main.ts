// Child-process entry of the floor (see floor.ts): one role per process, as Cairn runs its services.
//   main.js sinks <dir> | index <dir> | front <sink ports, comma-separated> <index port>
// Prints `FLOOR_READY {"ports":[…]}` once it serves; stops on SIGTERM or when its parent goes away.
import { announceReady } from '../child-main.js';
import { startFront } from './front.js';
import { startIndex } from './index-store.js';
import { startSinks } from './sinks.js';

const SINKS = 6;
const [role, a, b] = process.argv.slice(2);

async function start(): Promise<{ ports: number[]; close: () => Promise<void> }> {
  if (role === 'sinks' && a) {
    const sinks = await startSinks(a, SINKS);
    return { ports: sinks.map((s) => s.port), close: async () => void (await Promise.all(sinks.map((s) => s.close()))) };
  }
  if (role === 'index' && a) {
    const index = await startIndex(a);
    return { ports: [index.port], close: index.close };
  }
  if (role === 'front' && a && b) {
    const front = await startFront(a.split(',').map(Number), Number(b));
    return { ports: [front.port], close: front.close };
  }
  console.error('usage: main.js sinks <dir> | index <dir> | front <sink ports> <index port>');
  process.exit(2);
}

const running = await start();
announceReady('FLOOR_READY', { ports: running.ports }, running.close);
