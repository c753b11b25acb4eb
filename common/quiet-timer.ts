// Calls back once something has gone unused for a while: pools use it to let their idle buffers go
// after a burst, instead of keeping them resident for good. One unref'd timer at a time, re-armed
// for the time left when there was activity meanwhile (not reset on every use: uses are hot paths).
export class QuietTimer {
  private lastActive = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly quietMs: number, private readonly onQuiet: () => void) {}

  /** Something was used now. */
  touch(): void {
    this.lastActive = Date.now();
  }

  /** Starts waiting for quiet, unless already waiting. */
  arm(): void {
    this.schedule(this.quietMs);
  }

  private schedule(delayMs: number): void {
    if (this.timer || !Number.isFinite(this.quietMs)) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const quietFor = Date.now() - this.lastActive;
      if (quietFor >= this.quietMs) this.onQuiet();
      else this.schedule(this.quietMs - quietFor);
    }, delayMs);
    this.timer.unref();
  }
}
