import t from 'tap';
import { decodeJsonLines, encodeJsonLines, JsonLinesError } from '../common/json-lines.js';

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
