// A small, strict-enough XML element parser for S3 request bodies. It never expands
// entities beyond the five predefined ones and numeric references, refuses DTDs and
// processing instructions, and caps size, depth and node count, so hostile input costs
// linear time and bounded memory. Every failure is MalformedXML.
import { S3Error } from './errors.js';
import { parseChecksumAlgorithm, type ChecksumAlgorithm } from './checksums.js';

export interface XmlElement {
  /** Local name: a namespace prefix ("s3:Delete") is dropped. */
  readonly name: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly children: readonly XmlElement[];
  /** Concatenated character data directly inside this element (entities decoded). */
  readonly text: string;
}

export interface XmlParseOptions {
  readonly maxBytes?: number;
  readonly maxDepth?: number;
  readonly maxNodes?: number;
}

const DEFAULTS = { maxBytes: 4 * 1024 * 1024, maxDepth: 32, maxNodes: 200_000 };

function malformed(reason: string): S3Error {
  // The reason stays internal (S3 has one fixed message for every variant).
  return new S3Error('MalformedXML', undefined, undefined, { cause: new Error(reason) });
}

const NAME = /[A-Za-z_:][A-Za-z0-9_:.-]*/y;
const WHITESPACE = /[ \t\r\n]*/y;
// Raw C0 controls other than tab/CR/LF are not XML characters.
const BAD_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

interface MutableElement {
  name: string;
  attributes: Record<string, string>;
  children: MutableElement[];
  text: string;
}

class Parser {
  private pos = 0;
  private nodes = 0;

  constructor(
    private readonly src: string,
    private readonly limits: Required<XmlParseOptions>,
  ) {}

  parseDocument(): XmlElement {
    this.skipProlog();
    if (!this.src.startsWith('<', this.pos)) throw malformed('no root element');
    const root = this.parseElement(1);
    this.skipMisc();
    if (this.pos !== this.src.length) throw malformed('content after the root element');
    return root;
  }

  private skipProlog(): void {
    if (this.src.charCodeAt(0) === 0xfeff) this.pos = 1;
    this.skipWhitespace();
    if (this.src.startsWith('<?xml', this.pos)) {
      const end = this.src.indexOf('?>', this.pos);
      if (end < 0) throw malformed('unterminated XML declaration');
      this.pos = end + 2;
    }
    this.skipMisc();
  }

  /** Whitespace and comments; anything else that starts with "<?" or "<!" is refused. */
  private skipMisc(): void {
    for (;;) {
      this.skipWhitespace();
      if (this.src.startsWith('<!--', this.pos)) this.skipComment();
      else if (this.src.startsWith('<?', this.pos)) throw malformed('processing instruction');
      else if (this.src.startsWith('<!', this.pos)) throw malformed('DTD or declaration');
      else return;
    }
  }

  private skipWhitespace(): void {
    WHITESPACE.lastIndex = this.pos;
    WHITESPACE.test(this.src);
    this.pos = WHITESPACE.lastIndex;
  }

  private skipComment(): void {
    const end = this.src.indexOf('-->', this.pos + 4);
    if (end < 0) throw malformed('unterminated comment');
    this.pos = end + 3;
  }

  private readName(): string {
    NAME.lastIndex = this.pos;
    const match = NAME.exec(this.src);
    if (match === null) throw malformed(`expected a name at ${this.pos}`);
    this.pos = NAME.lastIndex;
    return match[0];
  }

  private parseElement(depth: number): MutableElement {
    if (depth > this.limits.maxDepth) throw malformed('too deep');
    if (++this.nodes > this.limits.maxNodes) throw malformed('too many elements');
    this.pos++; // '<'
    const qname = this.readName();
    const element: MutableElement = { name: localName(qname), attributes: {}, children: [], text: '' };
    if (this.parseAttributes(element)) return element;
    this.parseContent(element, depth);
    this.expectEndTag(qname);
    return element;
  }

  /** Returns true for a self-closing tag. */
  private parseAttributes(element: MutableElement): boolean {
    for (;;) {
      const before = this.pos;
      this.skipWhitespace();
      if (this.src.startsWith('/>', this.pos)) {
        this.pos += 2;
        return true;
      }
      if (this.src.startsWith('>', this.pos)) {
        this.pos += 1;
        return false;
      }
      if (this.pos === before) throw malformed('expected whitespace before an attribute');
      const name = this.readName();
      this.skipWhitespace();
      if (this.src[this.pos] !== '=') throw malformed('attribute without a value');
      this.pos++;
      this.skipWhitespace();
      if (Object.hasOwn(element.attributes, name)) throw malformed('duplicate attribute');
      element.attributes[name] = this.readAttributeValue();
    }
  }

  private readAttributeValue(): string {
    const quote = this.src[this.pos];
    if (quote !== '"' && quote !== "'") throw malformed('unquoted attribute');
    const end = this.src.indexOf(quote, this.pos + 1);
    if (end < 0) throw malformed('unterminated attribute');
    const raw = this.src.slice(this.pos + 1, end);
    if (raw.includes('<')) throw malformed("'<' in an attribute");
    this.pos = end + 1;
    return decodeText(raw);
  }

  private parseContent(element: MutableElement, depth: number): void {
    for (;;) {
      const lt = this.src.indexOf('<', this.pos);
      if (lt < 0) throw malformed(`unclosed <${element.name}>`);
      if (lt > this.pos) element.text += decodeText(this.src.slice(this.pos, lt));
      this.pos = lt;
      if (this.src.startsWith('</', lt)) return;
      if (this.src.startsWith('<!--', lt)) this.skipComment();
      else if (this.src.startsWith('<![CDATA[', lt)) element.text += this.readCdata();
      else if (this.src.startsWith('<!', lt) || this.src.startsWith('<?', lt)) throw malformed('markup declaration');
      else element.children.push(this.parseElement(depth + 1));
    }
  }

  private readCdata(): string {
    const start = this.pos + 9;
    const end = this.src.indexOf(']]>', start);
    if (end < 0) throw malformed('unterminated CDATA');
    this.pos = end + 3;
    return this.src.slice(start, end);
  }

  private expectEndTag(qname: string): void {
    this.pos += 2; // '</'
    const name = this.readName();
    if (name !== qname) throw malformed(`</${name}> closes <${qname}>`);
    this.skipWhitespace();
    if (this.src[this.pos] !== '>') throw malformed('bad end tag');
    this.pos++;
  }
}

function localName(qname: string): string {
  const colon = qname.lastIndexOf(':');
  return colon < 0 ? qname : qname.slice(colon + 1);
}

const PREDEFINED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const MAX_ENTITY_NAME = 10;

function decodeText(raw: string): string {
  let out = '';
  let from = 0;
  for (;;) {
    const amp = raw.indexOf('&', from);
    if (amp < 0) return out + raw.slice(from);
    const semi = raw.indexOf(';', amp);
    if (semi < 0 || semi - amp - 1 > MAX_ENTITY_NAME) throw malformed('bare &');
    out += raw.slice(from, amp) + decodeEntity(raw.slice(amp + 1, semi));
    from = semi + 1;
  }
}

function decodeEntity(name: string): string {
  const predefined = PREDEFINED[name];
  if (predefined !== undefined) return predefined;
  const numeric = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(name);
  if (numeric === null) throw malformed(`entity &${name};`);
  const code = numeric[1] !== undefined ? parseInt(numeric[1], 16) : parseInt(numeric[2]!, 10);
  // NUL, surrogates and out-of-range code points cannot appear in any document.
  if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) throw malformed('bad character reference');
  return String.fromCodePoint(code);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parse a request body; throws S3Error MalformedXML on anything that is not well-formed. */
export function parseXml(input: string | Uint8Array, options: XmlParseOptions = {}): XmlElement {
  const limits = { ...DEFAULTS, ...options };
  const byteLength = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
  if (byteLength > limits.maxBytes) throw malformed('body too large');
  let text: string;
  try {
    text = typeof input === 'string' ? input : UTF8.decode(input);
  } catch {
    throw malformed('not UTF-8');
  }
  if (BAD_CHAR.test(text)) throw malformed('control character');
  return new Parser(text, limits).parseDocument();
}

// ---------------------------------------------------------------------------------------------
// The three request bodies S3 parses.

function expectRoot(root: XmlElement, name: string): void {
  if (root.name !== name) throw malformed(`root is <${root.name}>, expected <${name}>`);
}

function childrenNamed(element: XmlElement, name: string): XmlElement[] {
  return element.children.filter((c) => c.name === name);
}

function onlyChild(element: XmlElement, name: string): XmlElement | undefined {
  const found = childrenNamed(element, name);
  if (found.length > 1) throw malformed(`more than one <${name}>`);
  return found[0];
}

export interface CreateBucketConfiguration {
  readonly locationConstraint: string | undefined;
}

export function parseCreateBucketConfiguration(input: string | Uint8Array): CreateBucketConfiguration {
  const root = parseXml(input, { maxBytes: 64 * 1024 });
  expectRoot(root, 'CreateBucketConfiguration');
  return { locationConstraint: onlyChild(root, 'LocationConstraint')?.text.trim() };
}

export interface CompletedPart {
  readonly partNumber: number;
  /** As sent (entities decoded), usually with its quotes. */
  readonly etag: string;
  readonly checksums: Readonly<Partial<Record<ChecksumAlgorithm, string>>>;
}

const MAX_PARTS = 10_000;

export function parseCompleteMultipartUpload(input: string | Uint8Array): readonly CompletedPart[] {
  const root = parseXml(input);
  expectRoot(root, 'CompleteMultipartUpload');
  const parts = childrenNamed(root, 'Part');
  if (parts.length === 0 || parts.length > MAX_PARTS) throw malformed('part count');
  return parts.map(parsePart);
}

function parsePart(part: XmlElement): CompletedPart {
  const numberText = onlyChild(part, 'PartNumber')?.text.trim();
  const etag = onlyChild(part, 'ETag')?.text.trim();
  if (numberText === undefined || etag === undefined || !/^[0-9]{1,5}$/.test(numberText)) {
    throw malformed('part without PartNumber or ETag');
  }
  const checksums: Partial<Record<ChecksumAlgorithm, string>> = {};
  for (const child of part.children) {
    const algorithm = child.name.startsWith('Checksum') ? parseChecksumAlgorithm(child.name.slice(8)) : undefined;
    if (algorithm !== undefined) checksums[algorithm] = child.text.trim();
  }
  return { partNumber: Number(numberText), etag, checksums };
}

export interface DeleteRequest {
  readonly quiet: boolean;
  readonly objects: readonly { readonly key: string; readonly versionId?: string }[];
}

const MAX_DELETE_OBJECTS = 1000;

export function parseDeleteRequest(input: string | Uint8Array): DeleteRequest {
  const root = parseXml(input);
  expectRoot(root, 'Delete');
  const quietText = onlyChild(root, 'Quiet')?.text.trim().toLowerCase();
  if (quietText !== undefined && quietText !== 'true' && quietText !== 'false') throw malformed('Quiet');
  const objects = childrenNamed(root, 'Object').map((o) => {
    const key = onlyChild(o, 'Key');
    if (key === undefined) throw malformed('Object without Key');
    const versionId = onlyChild(o, 'VersionId')?.text;
    return versionId === undefined ? { key: key.text } : { key: key.text, versionId };
  });
  if (objects.length === 0 || objects.length > MAX_DELETE_OBJECTS) throw malformed('object count');
  return { quiet: quietText === 'true', objects };
}

/** PutObjectTagging's body: <Tagging><TagSet><Tag><Key/><Value/></Tag>…</TagSet></Tagging>, texts as sent (not trimmed); S3's tag rules are checked after (s3/tagging.ts). */
export function parseTagging(input: string | Uint8Array): { key: string; value: string }[] {
  const root = parseXml(input, { maxBytes: 64 * 1024 });
  expectRoot(root, 'Tagging');
  const tagSet = onlyChild(root, 'TagSet');
  if (tagSet === undefined) throw malformed('Tagging without TagSet');
  return childrenNamed(tagSet, 'Tag').map((tag) => {
    const key = onlyChild(tag, 'Key');
    const value = onlyChild(tag, 'Value');
    if (key === undefined || value === undefined) throw malformed('Tag without Key or Value');
    return { key: key.text, value: value.text };
  });
}

/** One grant of a PutBucketAcl / PutObjectAcl document: its grantee (by ID, URI or email) and permission. */
export interface AclGrant {
  readonly granteeId: string | undefined;
  readonly granteeUri: string | undefined;
  readonly granteeEmail: string | undefined;
  readonly permission: string;
}

/** An AccessControlPolicy document; any shape S3 would not take is MalformedACLError, as S3 answers it. */
export function parseAccessControlPolicy(input: string | Uint8Array): readonly AclGrant[] {
  let root: XmlElement;
  try {
    root = parseXml(input, { maxBytes: 64 * 1024 });
  } catch {
    throw new S3Error('MalformedACLError');
  }
  const list = root.name === 'AccessControlPolicy' ? childrenNamed(root, 'AccessControlList') : [];
  if (list.length !== 1) throw new S3Error('MalformedACLError');
  return childrenNamed(list[0]!, 'Grant').map((grant) => {
    const grantees = childrenNamed(grant, 'Grantee');
    const permissions = childrenNamed(grant, 'Permission');
    if (grantees.length !== 1 || permissions.length !== 1) throw new S3Error('MalformedACLError');
    const text = (name: string): string | undefined => childrenNamed(grantees[0]!, name)[0]?.text.trim();
    return { granteeId: text('ID'), granteeUri: text('URI'), granteeEmail: text('EmailAddress'), permission: permissions[0]!.text.trim() };
  });
}
