// Durations in config are human strings ("30s", "10m", "250ms", "1h"); a bare number is milliseconds.
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match) throw new Error(`invalid duration "${text}" (expected e.g. 250ms, 30s, 10m, 1h)`);
  return Math.round(Number(match[1]) * UNITS[match[2] ?? 'ms']);
}
