// Byte sizes and rates in config are human strings: "200MB", "50MB/s", "1.5GiB", "4096". Decimal
// units are powers of 1000 and binary ones (KiB, MiB...) powers of 1024, as disk vendors and
// operators use them; a bare number is bytes.
const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Parses a size (or a rate: a trailing "/s" is allowed). Throws on anything else, zero and negatives included. */
export function parseByteSize(text: string, what = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*(?:\/\s*s)?\s*$/i.exec(text);
  const bytes = match ? Math.floor(Number(match[1]) * UNITS[(match[2] ?? 'b').toLowerCase()]) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new Error(`invalid ${what} "${text}" (expected e.g. 200MB, 50MB/s, 1GiB)`);
  return bytes;
}
