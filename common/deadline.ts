// Waiting with a limit: the services' timeouts on a single step (a body chunk, a disk read, a node's
// answer) all race the step against one timer that never outlives the race.

/**
 * `promise`, or a rejection with `onTimeout()`'s error once `ms` pass before it settles (`ms` <= 0:
 * no limit). The step itself is not cancelled: its owner decides what to do with it.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  if (ms <= 0) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
