// Pure: non-ASCII user metadata as S3 handles it. HTTP header values are bytes (Node hands them
// over as latin1 strings); S3 stores metadata as Unicode, decoding RFC 2047 encoded-words
// (=?UTF-8?B?…?=, =?UTF-8?Q?…?=) and raw UTF-8 on the way in, and returns any value that is not
// pure US-ASCII as one RFC 2047 encoded-word, so responses stay mail-safe.

const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A header value as received (latin1 string of the wire bytes) → the Unicode text to store. */
export function decodeHeaderText(raw: string): string {
  let text = raw;
  if (/[\u0080-\u00ff]/.test(text)) {
    try {
      text = UTF8.decode(Buffer.from(text, 'latin1'));
    } catch {
      // Not UTF-8: keep the bytes as latin1 characters, which is what they are.
    }
  }
  if (!text.includes('=?')) return text;
  // Whitespace between adjacent encoded-words is not part of the text (RFC 2047 §6.2).
  return text.replace(/(\?=)\s+(?==\?)/g, '$1').replace(ENCODED_WORD, (word, charset: string, encoding: string, data: string) => {
    const bytes = encoding.toUpperCase() === 'B' ? Buffer.from(data, 'base64') : quotedPrintableWord(data);
    try {
      return new TextDecoder(charset.toLowerCase(), { fatal: true }).decode(bytes);
    } catch {
      return word; // unknown charset or bad bytes: leave the word as it came
    }
  });
}

function quotedPrintableWord(data: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const ch = data[i]!;
    if (ch === '_') bytes.push(0x20);
    else if (ch === '=' && /^[0-9A-Fa-f]{2}$/.test(data.slice(i + 1, i + 3))) {
      bytes.push(parseInt(data.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(ch.charCodeAt(0) & 0xff);
  }
  return Buffer.from(bytes);
}

/** Stored Unicode text → a header value: as is when US-ASCII, else one UTF-8 B encoded-word. */
export function encodeHeaderText(text: string): string {
  if (!/[^\u0000-\u007f]/.test(text)) return text;
  return `=?UTF-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=`;
}
