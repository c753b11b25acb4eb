// Polling for a condition in tests against real processes: the check may throw while the system
// settles (a node restarting, a service not up yet); the last error is reported on timeout.

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns something other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<R>(what: string, check: () => Promise<R | undefined | false>, timeoutMs = 30_000, everyMs = 250): Promise<R> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const result = await check();
      if (result !== undefined && result !== false) return result;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}
