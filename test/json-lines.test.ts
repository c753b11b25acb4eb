import t from 'tap';
import { decodeBlobLines, decodeJsonLines, encodeBlobLines, encodeJsonLines, JsonLinesError } from '../common/json-lines.js';

t.test('JSON lines: every item on a line of its own, read back as written', async (t) => {
  const items = [
    { key: 'a\nb', text: 'line breaks inside strings are escaped' },
    'zażółć gęślą jaźń 🪨',
    { lone: '\ud800 and \udfff' },
    [1, 2.5, -0, null, true],
    { data: Buffer.alloc(200_000, 7).toString('base64') },
    0,
  ];
  const bytes = encodeJsonLines(items);
  const text = bytes.toString('utf8');
  t.equal(text.split('\n').length, items.length + 1, 'one newline per item, the last one too');
  t.ok(text.endsWith('\n'));
  t.same(decodeJsonLines(bytes), JSON.parse(JSON.stringify(items)), 'read back as JSON would');
  t.equal(bytes.length, items.reduce((n: number, item) => n + Buffer.byteLength(JSON.stringify(item)) + 1, 0), 'exactly the bytes of the texts');
  t.same(decodeJsonLines(Buffer.from('{"a":1}\n[2]')), [{ a: 1 }, [2]], 'the last line may lack its newline');
  t.same(decodeJsonLines(new Uint8Array(Buffer.from('7\n'))), [7], 'a plain Uint8Array');
  t.same(decodeJsonLines(Buffer.alloc(0)), [], 'nothing is no items');
  t.same(encodeJsonLines([]).length, 0);
});

t.test('JSON lines: a line that is not JSON is named', async (t) => {
  for (const [body, line] of [['{"a":1}\n{"a":', 2], ['\n{"a":1}\n', 1], ['{"a":1}\n\n{"a":1}\n', 2], ['{"a":1} {"b":2}\n', 1], ['{"a":1}\r\n[\n', 2]] as const) {
    t.throws(() => decodeJsonLines(Buffer.from(body)), new JsonLinesError(line), JSON.stringify(body));
  }
  t.throws(() => encodeJsonLines([1, undefined]), /item 1 has no JSON form/);
});

t.test('blob lines: each item a JSON line and its raw bytes, read back as written', async (t) => {
  const newlines = Buffer.from('\n12 {"x":1}\n \n');
  const big = Buffer.alloc(70_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
  const items = [
    { value: { key: 'a\nb', text: 'zażółć 🪨' } },
    { value: { record: 1 }, blob: newlines },
    { value: [1, null], blob: big },
    { value: 'no bytes' },
    { value: 0, blob: Buffer.from([0x20]) },
  ];
  const bytes = encodeBlobLines(items);
  const heads = items.map((item) => `${item.blob?.length ?? 0} ${JSON.stringify(item.value)}\n`);
  t.equal(bytes.length, heads.reduce((n, h, i) => n + Buffer.byteLength(h) + (items[i]!.blob?.length ?? 0), 0), 'exactly the lines and the blobs');
  t.equal(bytes.subarray(0, Buffer.byteLength(heads[0]!)).toString(), heads[0], 'a line is its blob length, a space, the JSON text');
  const back = decodeBlobLines(bytes);
  t.same(back.map((item) => item.value), items.map((item) => JSON.parse(JSON.stringify(item.value))), 'the values read back as JSON would');
  t.same(back.map((item) => (item.blob ? Buffer.from(item.blob) : undefined)), items.map((item) => item.blob), 'every blob whole, newlines and spaces in it too');
  t.equal(back[2]!.blob!.buffer, bytes.buffer, 'a blob is a view of the body, not a copy');
  t.same(decodeBlobLines(Buffer.alloc(0)), [], 'nothing is no items');
  t.same(decodeBlobLines(new Uint8Array(Buffer.from('0 7\n'))), [{ value: 7 }], 'a plain Uint8Array');
});

t.test('blob lines: a body that is not blob lines names its item', async (t) => {
  for (const [body, message] of [
    ['{"a":1}\n', 'item 1 has no blob length and JSON line'],
    ['0 {"a":1}', 'item 1 has no blob length and JSON line'],
    ['0 1\n01 2\nx', 'item 2 has no blob length and JSON line'],
    ['-1 {}\n', 'item 1 has no blob length and JSON line'],
    ['12345678901 {}\n', 'item 1 has no blob length and JSON line'],
    ['0 1\n4 {}\nabc', "item 2's blob runs past the end of the body"],
    ['0 1\n0 {"a":\n', 'item 2 is not a JSON text'],
  ] as const) {
    t.throws(() => decodeBlobLines(Buffer.from(body)), { name: 'JsonLinesError', message }, JSON.stringify(body));
  }
  t.throws(() => encodeBlobLines([{ value: 1 }, { value: undefined }]), /item 1 has no JSON form/);
});
