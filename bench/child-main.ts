// The child side of a bench helper process (child.ts is the parent's): say it is ready in the line
// spawnReady waits for, then stop on SIGTERM / SIGINT, or when the parent goes away (the bench may
// be SIGKILLed, and a helper must never outlive it).
export function announceReady(prefix: string, payload: unknown, close: () => Promise<void>): void {
  process.stdout.write(`${prefix} ${JSON.stringify(payload)}\n`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    setTimeout(() => process.exit(0), 2000).unref();
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop();
  }, 1000).unref();
}
