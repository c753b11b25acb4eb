// Child-process entry of the floor (see floor.ts): one role per process, as Cairn runs its services.
//   main.js sinks <dir> | index <dir> | front <sink ports, comma-separated> <index port>
// Prints `FLOOR_READY {"ports":[…]}` once it serves; stops on SIGTERM or when its parent goes away.
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
process.stdout.write(`FLOOR_READY ${JSON.stringify({ ports: running.ports })}\n`);
let stopping = false;
const stop = (): void => {
  if (stopping) process.exit(1);
  stopping = true;
  setTimeout(() => process.exit(0), 2000).unref();
  running.close().then(() => process.exit(0), () => process.exit(1));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The bench may be SIGKILLed: never outlive it.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop();
}, 1000).unref();
