// Pure: bucket policies — parsing a PutBucketPolicy document (with S3's MalformedPolicy answers)
// and evaluating it for one request. No I/O here; gateway/authorize.ts fetches the bucket and calls in.
//
// The subset Cairn evaluates: Version, Id, Statement (one object or a list) of Sid, Effect
// (Allow | Deny), Principal ("*", {"AWS": "*" | id | [ids]}, where an id is a Cairn user id or
// "arn:aws:iam::cairn:user/<user id>"), Action ("s3:GetObject", "s3:*", "s3:Get*", "*"; case-
// insensitive) and Resource ("arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*"; `*` and `?` wildcards).
// NotPrincipal, NotAction, NotResource, Condition and policy variables are refused as unsupported
// (MalformedPolicy) rather than ignored: ignoring a Condition would grant more than was written.
//
// Semantics (AWS's, for principals of the bucket owner's account): an explicit Deny that matches
// wins; otherwise the owner is allowed, and anyone else only where an Allow matches.
import { S3Error } from '../s3/errors.js';

/** AWS's limit on a bucket policy document. */
export const MAX_POLICY_BYTES = 20 * 1024;
/** The account name in Cairn's principal ARNs: arn:aws:iam::cairn:user/<user id>. */
export const POLICY_ACCOUNT = 'cairn';
const USER_ARN_PREFIX = `arn:aws:iam::${POLICY_ACCOUNT}:user/`;
const S3_ARN_PREFIX = 'arn:aws:s3:::';
const USER_ID = /^[A-Za-z0-9+=,.@_-]{1,64}$/;
const VERSIONS = ['2012-10-17', '2008-10-17'];
const POLICY_FIELDS = ['Version', 'Id', 'Statement'];
const STATEMENT_FIELDS = ['Sid', 'Effect', 'Principal', 'Action', 'Resource'];
const UNSUPPORTED_FIELDS = ['NotPrincipal', 'NotAction', 'NotResource', 'Condition'];

/**
 * S3 actions a policy may name. Cairn's operations check only the ones in OPERATION_ACCESS
 * (operations/index.ts); the others are accepted, so a policy written for AWS still loads, and
 * never match anything Cairn does.
 */
export const KNOWN_ACTIONS: readonly string[] = [
  'AbortMultipartUpload', 'BypassGovernanceRetention', 'CreateBucket', 'DeleteBucket', 'DeleteBucketPolicy',
  'DeleteBucketWebsite', 'DeleteObject', 'DeleteObjectTagging', 'DeleteObjectVersion', 'DeleteObjectVersionTagging',
  'GetAccelerateConfiguration', 'GetAnalyticsConfiguration', 'GetBucketAcl', 'GetBucketCORS', 'GetBucketLocation',
  'GetBucketLogging', 'GetBucketNotification', 'GetBucketObjectLockConfiguration', 'GetBucketOwnershipControls',
  'GetBucketPolicy', 'GetBucketPolicyStatus', 'GetBucketPublicAccessBlock', 'GetBucketRequestPayment',
  'GetBucketTagging', 'GetBucketVersioning', 'GetBucketWebsite', 'GetEncryptionConfiguration',
  'GetIntelligentTieringConfiguration', 'GetInventoryConfiguration', 'GetLifecycleConfiguration',
  'GetMetricsConfiguration', 'GetObject', 'GetObjectAcl', 'GetObjectAttributes', 'GetObjectLegalHold',
  'GetObjectRetention', 'GetObjectTagging', 'GetObjectTorrent', 'GetObjectVersion', 'GetObjectVersionAcl',
  'GetObjectVersionAttributes', 'GetObjectVersionTagging', 'GetObjectVersionTorrent', 'GetReplicationConfiguration',
  'ListAllMyBuckets', 'ListBucket', 'ListBucketMultipartUploads', 'ListBucketVersions', 'ListMultipartUploadParts',
  'ObjectOwnerOverrideToBucketOwner', 'PutAccelerateConfiguration', 'PutAnalyticsConfiguration', 'PutBucketAcl',
  'PutBucketCORS', 'PutBucketLogging', 'PutBucketNotification', 'PutBucketObjectLockConfiguration',
  'PutBucketOwnershipControls', 'PutBucketPolicy', 'PutBucketPublicAccessBlock', 'PutBucketRequestPayment',
  'PutBucketTagging', 'PutBucketVersioning', 'PutBucketWebsite', 'PutEncryptionConfiguration',
  'PutIntelligentTieringConfiguration', 'PutInventoryConfiguration', 'PutLifecycleConfiguration',
  'PutMetricsConfiguration', 'PutObject', 'PutObjectAcl', 'PutObjectLegalHold', 'PutObjectRetention',
  'PutObjectTagging', 'PutObjectVersionAcl', 'PutObjectVersionTagging', 'PutReplicationConfiguration',
  'ReplicateDelete', 'ReplicateObject', 'ReplicateTags', 'RestoreObject',
].map((a) => `s3:${a}`);
const KNOWN = new Set(KNOWN_ACTIONS.map((a) => a.toLowerCase()));

export type Effect = 'Allow' | 'Deny';

export interface PolicyStatement {
  readonly sid?: string;
  readonly effect: Effect;
  /** '*' (everyone, anonymous included) or user ids. */
  readonly principals: '*' | readonly string[];
  /** Lower-cased patterns ("s3:get*"). */
  readonly actions: readonly string[];
  /** ARN patterns, case-sensitive. */
  readonly resources: readonly string[];
}

export interface BucketPolicy {
  readonly statements: readonly PolicyStatement[];
  /**
   * Who each user the policy names was when it was put (user id → pin, identities.ts userPin):
   * a user deleted and made again under that id is someone else, whom the policy does not name
   * (AWS pins principals to unique ids alike). An id without a pin (a policy put before pins) is
   * matched by name.
   */
  readonly pins?: Readonly<Record<string, string>>;
}

/** Who asks: a user id (and which user by that id: their pin), or undefined for an anonymous (unsigned) request. */
export interface AccessRequest {
  readonly userId: string | undefined;
  readonly userPin?: string;
  /** "s3:GetObject" */
  readonly action: string;
  /** bucketArn(...) or objectArn(...) */
  readonly resource: string;
}

export type Verdict = 'allow' | 'deny' | 'none';

export const bucketArn = (bucket: string): string => `${S3_ARN_PREFIX}${bucket}`;
export const objectArn = (bucket: string, key: string): string => `${S3_ARN_PREFIX}${bucket}/${key}`;

// ---------------------------------------------------------------------------------------------
// Parsing

function malformed(message: string): S3Error {
  return new S3Error('MalformedPolicy', message);
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Own fields only: a JSON "__proto__" key is a field like any other (and an unknown one). */
const has = (obj: Record<string, unknown>, name: string): boolean => Object.prototype.hasOwnProperty.call(obj, name);

function checkFields(obj: Record<string, unknown>, allowed: readonly string[]): void {
  for (const name of Object.keys(obj)) {
    if (UNSUPPORTED_FIELDS.includes(name)) throw malformed(`Policy has an unsupported field: ${name} is not evaluated by Cairn`);
    if (!allowed.includes(name)) throw malformed(`Unknown field ${name}`);
  }
}

/** A string or a non-empty list of strings. */
function stringList(value: unknown, field: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || !list.every((v): v is string => typeof v === 'string')) {
    throw malformed(`Policy has an invalid ${field}: it must be a string or a list of strings`);
  }
  return list;
}

function noVariables(value: string, field: string): void {
  if (value.includes('${')) throw malformed(`Policy has an unsupported field: policy variables in ${field} are not evaluated by Cairn`);
}

/**
 * The policy document of PutBucketPolicy for `bucket`, checked. Throws S3Error PolicyTooLarge
 * above 20 KB, MalformedPolicy for anything else wrong (bad JSON, unknown or unsupported fields,
 * an invalid action, principal or resource, a resource outside the bucket, duplicate Sids).
 */
export function parseBucketPolicy(text: string, bucket: string): BucketPolicy {
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) throw new S3Error('PolicyTooLarge');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw malformed('This policy contains invalid Json');
  }
  if (!isObject(doc)) throw malformed('Policies must be valid JSON and the first byte must be \'{\'');
  checkFields(doc, POLICY_FIELDS);
  if (has(doc, 'Version') && !VERSIONS.includes(doc.Version as string)) {
    throw malformed(`Policy has an invalid Version: ${JSON.stringify(doc.Version)} (use 2012-10-17)`);
  }
  if (has(doc, 'Id') && typeof doc.Id !== 'string') throw malformed('Policy has an invalid Id: it must be a string');
  if (!has(doc, 'Statement')) throw malformed('Missing required field Statement');
  const raw = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
  if (raw.length === 0) throw malformed('Could not parse the policy: Statement is empty!');
  const statements = raw.map((s) => parseStatement(s, bucket));
  const sids = statements.flatMap((s) => (s.sid === undefined || s.sid === '' ? [] : [s.sid]));
  if (new Set(sids).size !== sids.length) throw malformed('Statement IDs (SID) in a single policy must be unique');
  return { statements };
}

function parseStatement(value: unknown, bucket: string): PolicyStatement {
  if (!isObject(value)) throw malformed('Policy has an invalid Statement: each statement must be a JSON object');
  checkFields(value, STATEMENT_FIELDS);
  if (has(value, 'Sid') && typeof value.Sid !== 'string') throw malformed('Policy has an invalid Sid: it must be a string');
  if (!has(value, 'Effect')) throw malformed('Missing required field Effect');
  if (value.Effect !== 'Allow' && value.Effect !== 'Deny') throw malformed(`Invalid effect: ${String(value.Effect)}`);
  if (!has(value, 'Principal')) throw malformed('Missing required field Principal');
  if (!has(value, 'Action')) throw malformed('Missing required field Action');
  if (!has(value, 'Resource')) throw malformed('Missing required field Resource');
  return {
    ...(has(value, 'Sid') ? { sid: value.Sid as string } : {}),
    effect: value.Effect,
    principals: parsePrincipal(value.Principal),
    actions: stringList(value.Action, 'Action').map(parseAction),
    resources: stringList(value.Resource, 'Resource').map((r) => parseResource(r, bucket)),
  };
}

function parsePrincipal(value: unknown): '*' | string[] {
  if (value === '*') return '*';
  if (!isObject(value)) throw malformed('Invalid principal in policy');
  for (const name of Object.keys(value)) {
    if (name !== 'AWS') throw malformed(`Invalid principal in policy: ${name} principals are not supported by Cairn`);
  }
  if (!has(value, 'AWS')) throw malformed('Invalid principal in policy');
  const entries = stringList(value.AWS, 'Principal');
  if (entries.includes('*')) return '*';
  return [...new Set(entries.map(principalUserId))];
}

/** "alice" or "arn:aws:iam::cairn:user/alice" → "alice". */
function principalUserId(entry: string): string {
  const id = entry.startsWith(USER_ARN_PREFIX) ? entry.slice(USER_ARN_PREFIX.length) : entry;
  if (!USER_ID.test(id)) throw malformed('Invalid principal in policy');
  return id;
}

function parseAction(action: string): string {
  const lower = action.toLowerCase();
  if (lower === '*') return 's3:*';
  if (!lower.startsWith('s3:')) throw malformed('Policy has invalid action');
  if (!/[*?]/.test(lower) && !KNOWN.has(lower)) throw malformed('Policy has invalid action');
  return lower;
}

/** Every resource must lie in this bucket, as S3 requires of a bucket policy. */
function parseResource(resource: string, bucket: string): string {
  noVariables(resource, 'Resource');
  if (resource === '*') return resource;
  if (!resource.startsWith(S3_ARN_PREFIX)) throw malformed('Policy has invalid resource');
  const path = resource.slice(S3_ARN_PREFIX.length);
  const slash = path.indexOf('/');
  const bucketPattern = slash === -1 ? path : path.slice(0, slash);
  if (bucketPattern === '' || !globMatch(bucketPattern, bucket)) throw malformed('Policy has invalid resource');
  return resource;
}

/** The user ids a policy names (to check they exist when it is stored). */
export function namedPrincipals(policy: BucketPolicy): string[] {
  const ids = new Set<string>();
  for (const s of policy.statements) if (s.principals !== '*') for (const id of s.principals) ids.add(id);
  return [...ids];
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/**
 * `*` matches any run of characters (including none and "/"), `?` exactly one. Backtracks only to
 * the last `*`: at worst pattern length × value length steps, never exponential.
 */
export function globMatch(pattern: string, value: string): boolean {
  let p = 0;
  let v = 0;
  let star = -1;
  let mark = 0;
  while (v < value.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === value[v])) {
      p++;
      v++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = v;
    } else if (star !== -1) {
      p = star + 1;
      v = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

function statementMatches(s: PolicyStatement, req: AccessRequest, pins: BucketPolicy['pins']): boolean {
  if (s.principals !== '*' && !namesCaller(s.principals, req, pins)) return false;
  const action = req.action.toLowerCase();
  if (!s.actions.some((pattern) => globMatch(pattern, action))) return false;
  return s.resources.some((pattern) => globMatch(pattern, req.resource));
}

function namesCaller(principals: readonly string[], req: AccessRequest, pins: BucketPolicy['pins']): boolean {
  if (req.userId === undefined || !principals.includes(req.userId)) return false;
  // Own keys only: a user may be called "constructor" or "__proto__".
  const pin = pins !== undefined && Object.hasOwn(pins, req.userId) ? pins[req.userId] : undefined;
  return pin === undefined || pin === req.userPin;
}

/** 'deny' when a Deny statement matches, else 'allow' when an Allow does, else 'none'. */
export function evaluatePolicy(policy: BucketPolicy | undefined, req: AccessRequest): Verdict {
  if (policy === undefined) return 'none';
  let verdict: Verdict = 'none';
  for (const s of policy.statements) {
    if (!statementMatches(s, req, policy.pins)) continue;
    if (s.effect === 'Deny') return 'deny';
    verdict = 'allow';
  }
  return verdict;
}

/**
 * The decision for a request on a bucket owned by `owner` (the root user is decided before this:
 * it may do everything). An explicit Deny wins, then the owner's own access, then an Allow.
 */
export function isAllowed(policy: BucketPolicy | undefined, owner: string, req: AccessRequest): boolean {
  const verdict = evaluatePolicy(policy, req);
  if (verdict === 'deny') return false;
  return (req.userId !== undefined && req.userId === owner) || verdict === 'allow';
}
