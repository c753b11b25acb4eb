// Group sync: callers that ask for durability while a flush is running wait for the next one,
// which covers all of them: one fsync per group instead of one per caller. The storage nodes' pack
// logs share their fdatasyncs this way, and so do the bench floor's stores.
export class GroupSync {
  private waiting: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private running = false;

  constructor(private readonly flush: () => Promise<void>) {}

  /** Resolves once a flush that started after this call has finished. */
  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.waiting.length > 0) {
      const group = this.waiting;
      this.waiting = [];
      try {
        await this.flush();
        for (const w of group) w.resolve();
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
    this.running = false;
  }
}
