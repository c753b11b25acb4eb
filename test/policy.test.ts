// The pure bucket-policy module alone: parsing (and S3's MalformedPolicy / PolicyTooLarge answers),
// wildcard matching, and evaluation (explicit Deny over Allow, owner access, anonymous "*", pinned users).
import t, { type Test } from 'tap';
import {
  MAX_POLICY_BYTES,
  bucketArn,
  evaluatePolicy,
  globMatch,
  isAllowed,
  namedPrincipals,
  objectArn,
  parseBucketPolicy,
  type BucketPolicy,
} from '../gateway/auth/policy.js';

const BUCKET = 'photos';

function policy(...statements: unknown[]): string {
  return JSON.stringify({ Version: '2012-10-17', Statement: statements });
}

function allow(principal: unknown, action: unknown, resource: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { Effect: 'Allow', Principal: principal, Action: action, Resource: resource, ...extra };
}

function deny(principal: unknown, action: unknown, resource: unknown): Record<string, unknown> {
  return { Effect: 'Deny', Principal: principal, Action: action, Resource: resource };
}

const parse = (text: string): BucketPolicy => parseBucketPolicy(text, BUCKET);
const req = (userId: string | undefined, action: string, key?: string) => ({
  userId,
  action,
  resource: key === undefined ? bucketArn(BUCKET) : objectArn(BUCKET, key),
});

function malformed(t: Test, text: string, message: RegExp | string, what: string): void {
  t.throws(() => parse(text), { code: 'MalformedPolicy', status: 400, message }, what);
}

t.test('glob matching: * spans anything (slashes too), ? one character, nothing else is special', async (t) => {
  t.ok(globMatch('*', ''));
  t.ok(globMatch('arn:aws:s3:::photos/*', 'arn:aws:s3:::photos/a/b/c.jpg'));
  t.ok(globMatch('arn:aws:s3:::photos/*', 'arn:aws:s3:::photos/'));
  t.notOk(globMatch('arn:aws:s3:::photos/*', 'arn:aws:s3:::photos'), 'bucket/* is not the bucket itself');
  t.notOk(globMatch('arn:aws:s3:::photos/*', 'arn:aws:s3:::photos2/x'));
  t.ok(globMatch('s3:get*', 's3:getobject'));
  t.notOk(globMatch('s3:get*', 's3:putobject'));
  t.ok(globMatch('a?c', 'abc'));
  t.notOk(globMatch('a?c', 'ac'));
  t.ok(globMatch('*.jpg', 'x.y.jpg'));
  t.ok(globMatch('a*b*c', 'axxbyyc'));
  t.notOk(globMatch('a*b*c', 'axxbyy'));
  t.ok(globMatch('[a]+.(x)', '[a]+.(x)'), 'regex characters are literal');
  t.notOk(globMatch('[a]', 'a'));
  const started = Date.now();
  t.notOk(globMatch('*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(5000)), 'a pathological pattern');
  t.ok(Date.now() - started < 1000, 'is still fast');
});

t.test('parsing accepts the common S3 subset', async (t) => {
  const p = parse(
    JSON.stringify({
      Version: '2012-10-17',
      Id: 'p1',
      Statement: [
        { Sid: 'Public', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::photos/*' },
        { Sid: 'Bob', Effect: 'Allow', Principal: { AWS: ['bob', 'arn:aws:iam::cairn:user/carol'] }, Action: ['s3:ListBucket', 's3:Get*'], Resource: ['arn:aws:s3:::photos', 'arn:aws:s3:::photos/*'] },
        { Effect: 'Deny', Principal: { AWS: '*' }, Action: '*', Resource: 'arn:aws:s3:::photos/secret/*' },
      ],
    }),
  );
  t.equal(p.statements.length, 3);
  t.equal(p.statements[0]!.principals, '*');
  t.same(p.statements[1]!.principals, ['bob', 'carol'], 'user ids and user ARNs both name users');
  t.same(p.statements[1]!.actions, ['s3:listbucket', 's3:get*'], 'actions compare case-insensitively');
  t.equal(p.statements[2]!.principals, '*', '{"AWS": "*"} is everyone');
  t.same(p.statements[2]!.actions, ['s3:*'], '"*" is every S3 action');
  t.same(namedPrincipals(p), ['bob', 'carol']);
  t.equal(parse(JSON.stringify({ Statement: allow('*', 's3:GetObject', 'arn:aws:s3:::photos/*') })).statements.length, 1, 'no Version, one Statement object');
  t.ok(parse(policy(allow('*', 'S3:GETOBJECT', 'arn:aws:s3:::pho?os/*'))), 'case of actions; wildcards in the bucket part');
  t.ok(parse(policy(allow('*', 's3:GetObjectVersion', '*'))), 'AWS actions Cairn never checks still load; Resource "*"');
});

t.test('malformed policies are refused with MalformedPolicy', async (t) => {
  malformed(t, '{"Version": "2012-10-17", "Statement": [', 'This policy contains invalid Json', 'bad JSON');
  malformed(t, '[]', /first byte must be/, 'not an object');
  malformed(t, '"x"', /first byte must be/, 'a string');
  malformed(t, JSON.stringify({ Version: '2012-10-17' }), 'Missing required field Statement', 'no Statement');
  malformed(t, JSON.stringify({ Statement: [] }), /Statement is empty/, 'empty Statement');
  malformed(t, JSON.stringify({ Version: '2020-01-01', Statement: [allow('*', 's3:GetObject', 'arn:aws:s3:::photos/*')] }), /Version/, 'unknown Version');
  malformed(t, JSON.stringify({ Statement: [allow('*', 's3:GetObject', 'arn:aws:s3:::photos/*')], Extra: 1 }), 'Unknown field Extra', 'unknown top-level field');
  malformed(t, `{"__proto__": {"x": 1}, "Statement": ${JSON.stringify([allow('*', 's3:GetObject', 'arn:aws:s3:::photos/*')])}}`, 'Unknown field __proto__', '__proto__ is just an unknown field');
  malformed(t, policy(allow('*', 's3:GetObject', 'arn:aws:s3:::photos/*', { Foo: 1 })), 'Unknown field Foo', 'unknown statement field');
  for (const field of ['Condition', 'NotPrincipal', 'NotAction', 'NotResource']) {
    malformed(t, policy(allow('*', 's3:GetObject', 'arn:aws:s3:::photos/*', { [field]: {} })), new RegExp(`unsupported field: ${field}`), `${field} is unsupported, not ignored`);
  }
  malformed(t, policy({ Effect: 'Maybe', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::photos/*' }), 'Invalid effect: Maybe', 'bad Effect');
  malformed(t, policy({ Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::photos/*' }), 'Missing required field Effect', 'no Effect');
  malformed(t, policy({ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::photos/*' }), 'Missing required field Principal', 'no Principal');
  malformed(t, policy({ Effect: 'Allow', Principal: '*', Resource: 'arn:aws:s3:::photos/*' }), 'Missing required field Action', 'no Action');
  malformed(t, policy({ Effect: 'Allow', Principal: '*', Action: 's3:GetObject' }), 'Missing required field Resource', 'no Resource');
  malformed(t, policy(allow('*', 's3:Frobnicate', 'arn:aws:s3:::photos/*')), 'Policy has invalid action', 'unknown action');
  malformed(t, policy(allow('*', 'iam:*', 'arn:aws:s3:::photos/*')), 'Policy has invalid action', 'another service');
  malformed(t, policy(allow('*', [], 'arn:aws:s3:::photos/*')), /invalid Action/, 'empty Action list');
  malformed(t, policy(allow('*', [1], 'arn:aws:s3:::photos/*')), /invalid Action/, 'non-string action');
  malformed(t, policy(allow('*', 's3:GetObject', 'arn:aws:s3:::other/*')), 'Policy has invalid resource', 'another bucket');
  malformed(t, policy(allow('*', 's3:GetObject', 'photos/*')), 'Policy has invalid resource', 'not an ARN');
  malformed(t, policy(allow('*', 's3:GetObject', 'arn:aws:s3:::/x')), 'Policy has invalid resource', 'empty bucket part');
  malformed(t, policy(allow('*', 's3:GetObject', 'arn:aws:s3:::photos/${aws:username}/*')), /policy variables/, 'policy variables');
  malformed(t, policy(allow('alice', 's3:GetObject', 'arn:aws:s3:::photos/*')), 'Invalid principal in policy', 'a bare user id is not a principal');
  malformed(t, policy(allow({ Service: 'x' }, 's3:GetObject', 'arn:aws:s3:::photos/*')), /Invalid principal in policy/, 'Service principal');
  malformed(t, policy(allow({ AWS: 'arn:aws:iam::123456789012:root' }, 's3:GetObject', 'arn:aws:s3:::photos/*')), 'Invalid principal in policy', 'another account');
  malformed(t, policy(allow({ AWS: 'bad user!' }, 's3:GetObject', 'arn:aws:s3:::photos/*')), 'Invalid principal in policy', 'bad characters');
  malformed(t, policy(allow({}, 's3:GetObject', 'arn:aws:s3:::photos/*')), 'Invalid principal in policy', 'empty principal');
  malformed(
    t,
    policy(allow('*', 's3:GetObject', 'arn:aws:s3:::photos/*', { Sid: 'same' }), allow('*', 's3:ListBucket', 'arn:aws:s3:::photos', { Sid: 'same' })),
    /must be unique/,
    'duplicate Sid',
  );
  malformed(t, JSON.stringify({ Statement: ['x'] }), /must be a JSON object/, 'statement not an object');
});

t.test('a policy over 20 KB is PolicyTooLarge', async (t) => {
  const big = policy(allow('*', 's3:GetObject', 'arn:aws:s3:::photos/*', { Sid: 'x'.repeat(MAX_POLICY_BYTES) }));
  t.throws(() => parse(big), { code: 'PolicyTooLarge', status: 400 });
  const fits = policy(allow('*', 's3:GetObject', 'arn:aws:s3:::photos/*', { Sid: 'x'.repeat(MAX_POLICY_BYTES - 200) }));
  t.ok(Buffer.byteLength(fits) <= MAX_POLICY_BYTES);
  t.ok(parse(fits), 'just under the limit is fine');
});

t.test('evaluation: principals, actions, resources', async (t) => {
  const p = parse(
    policy(
      allow({ AWS: 'bob' }, 's3:GetObject', 'arn:aws:s3:::photos/*'),
      allow({ AWS: ['arn:aws:iam::cairn:user/carol'] }, ['s3:List*'], 'arn:aws:s3:::photos'),
      allow('*', 's3:GetObject', 'arn:aws:s3:::photos/public/?.jpg'),
    ),
  );
  t.equal(evaluatePolicy(p, req('bob', 's3:GetObject', 'a/b')), 'allow');
  t.equal(evaluatePolicy(p, req('bob', 's3:PutObject', 'a/b')), 'none', 'action not granted');
  t.equal(evaluatePolicy(p, req('bob', 's3:ListBucket')), 'none', 'bucket ARN is not bucket/*');
  t.equal(evaluatePolicy(p, req('carol', 's3:ListBucket')), 'allow');
  t.equal(evaluatePolicy(p, req('carol', 's3:ListBucketMultipartUploads')), 'allow', 'wildcard action');
  t.equal(evaluatePolicy(p, req('carol', 's3:GetObject', 'x')), 'none');
  t.equal(evaluatePolicy(p, req(undefined, 's3:GetObject', 'public/a.jpg')), 'allow', 'anonymous matches "*"');
  t.equal(evaluatePolicy(p, req(undefined, 's3:GetObject', 'public/ab.jpg')), 'none', '? is one character');
  t.equal(evaluatePolicy(p, req('dave', 's3:GetObject', 'public/a.jpg')), 'allow', 'any user matches "*"');
  t.equal(evaluatePolicy(p, req(undefined, 's3:GetObject', 'a/b')), 'none', 'anonymous is not bob');
  t.equal(evaluatePolicy(undefined, req('bob', 's3:GetObject', 'a')), 'none', 'no policy');
});

t.test('a named user is pinned: someone made later under the same id is not named, for Allow or Deny', async (t) => {
  const parsed = parse(
    policy(
      allow({ AWS: ['bob', 'carol'] }, 's3:GetObject', 'arn:aws:s3:::photos/*'),
      deny({ AWS: 'bob' }, 's3:GetObject', 'arn:aws:s3:::photos/secret/*'),
    ),
  );
  const p: BucketPolicy = { ...parsed, pins: { bob: 'AIDABOBTHEFIRST000000' } };
  const as = (userId: string, userPin: string | undefined, key: string) => ({ ...req(userId, 's3:GetObject', key), userPin });
  t.equal(evaluatePolicy(p, as('bob', 'AIDABOBTHEFIRST000000', 'a')), 'allow', 'the bob the policy named');
  t.equal(evaluatePolicy(p, as('bob', 'AIDABOBTHEFIRST000000', 'secret/a')), 'deny');
  t.equal(evaluatePolicy(p, as('bob', 'AIDABOBTHESECOND00000', 'a')), 'none', 'a later bob gets no Allow');
  t.equal(evaluatePolicy(p, as('bob', 'AIDABOBTHESECOND00000', 'secret/a')), 'none', 'nor the Deny: the policy names someone else');
  t.equal(evaluatePolicy(p, as('bob', undefined, 'a')), 'none', 'a caller without a pin is not a pinned user');
  t.equal(evaluatePolicy(p, as('carol', 'AIDAANYONE00000000000', 'a')), 'allow', 'a user without a pin (policy put before pins) is matched by name');
  t.equal(evaluatePolicy(parsed, as('bob', 'AIDABOBTHESECOND00000', 'a')), 'allow', 'no pins at all: by name');
  // Users named like Object's own properties, pins as the bucket record's JSON brings them.
  const odd = parse(policy(allow({ AWS: ['__proto__', 'constructor'] }, 's3:GetObject', 'arn:aws:s3:::photos/*')));
  const oddPins: BucketPolicy = { ...odd, pins: JSON.parse('{"__proto__":"AIDAPROTO000000000000"}') as Record<string, string> };
  t.equal(evaluatePolicy(oddPins, as('__proto__', 'AIDAPROTO000000000000', 'a')), 'allow');
  t.equal(evaluatePolicy(oddPins, as('__proto__', 'AIDAOTHER000000000000', 'a')), 'none');
  t.equal(evaluatePolicy(oddPins, as('constructor', 'AIDAANY00000000000000', 'a')), 'allow', 'no pin of its own: by name, not by a prototype property');
});

t.test('explicit Deny beats Allow, also for the owner; the owner needs no Allow', async (t) => {
  const p = parse(
    policy(
      allow({ AWS: ['bob', 'alice'] }, 's3:*', ['arn:aws:s3:::photos', 'arn:aws:s3:::photos/*']),
      deny({ AWS: 'bob' }, ['s3:PutObject', 's3:DeleteObject'], 'arn:aws:s3:::photos/*'),
      deny('*', 's3:GetObject', 'arn:aws:s3:::photos/secret/*'),
    ),
  );
  t.equal(evaluatePolicy(p, req('bob', 's3:GetObject', 'a')), 'allow');
  t.equal(evaluatePolicy(p, req('bob', 's3:PutObject', 'a')), 'deny');
  t.notOk(isAllowed(p, 'alice', req('bob', 's3:DeleteObject', 'a')), 'deny wins over the s3:* allow');
  t.ok(isAllowed(p, 'alice', req('bob', 's3:ListBucket')));
  t.notOk(isAllowed(p, 'alice', req('alice', 's3:GetObject', 'secret/x')), 'an explicit Deny applies to the owner too');
  t.ok(isAllowed(p, 'alice', req('alice', 's3:PutObject', 'x')), 'the owner');
  t.ok(isAllowed(undefined, 'alice', req('alice', 's3:DeleteObject', 'x')), 'the owner without any policy');
  t.notOk(isAllowed(undefined, 'alice', req('bob', 's3:GetObject', 'x')), 'anyone else without a policy');
  t.notOk(isAllowed(undefined, 'alice', req(undefined, 's3:GetObject', 'x')), 'anonymous without a policy');
  t.notOk(isAllowed(p, 'alice', req(undefined, 's3:GetObject', 'secret/x')));
});
