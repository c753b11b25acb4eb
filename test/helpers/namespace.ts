// An in-process namespace service for tests: the store the test built, served on an ephemeral
// loopback port with a signed client, stopped (once) by the test's teardown and its temp dir removed.
import { rm } from 'node:fs/promises';
import type { Test } from 'tap';
import { close, listen } from '../../common/http.js';
import { createLogger } from '../../common/log.js';
import { NamespaceClient } from '../../namespace/client.js';
import { createNamespaceServer } from '../../namespace/server.js';
import type { NamespaceStore } from '../../namespace/store.js';
import { TEST_SECRET } from './internal.js';

const quiet = createLogger('namespace', 'error');

export interface ServedNamespace {
  client: NamespaceClient;
  url: string;
  /** Closes client, server and store (idempotent); teardown calls it too. */
  stop: () => Promise<void>;
}

/** Serves `store`; `removeDir` is deleted at teardown (the caller's temp dir, absent when it is reused). */
export async function serveNamespace(tt: Test, store: NamespaceStore, removeDir?: string): Promise<ServedNamespace> {
  const server = createNamespaceServer(store, { log: quiet, secret: TEST_SECRET });
  const url = await listen(server, '127.0.0.1', 0);
  const client = new NamespaceClient(url, { secret: TEST_SECRET });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await client.close();
      await close(server);
      await store.close();
    })());
  tt.teardown(async () => {
    await stop();
    if (removeDir) await rm(removeDir, { recursive: true, force: true });
  });
  return { client, url, stop };
}
