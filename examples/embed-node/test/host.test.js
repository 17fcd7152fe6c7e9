// Unit tests of the example host's own imports (no component needed):
//   node --test test/
import assert from 'node:assert/strict';
import { X509Certificate, constants, createHash, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Allowlist } from '../src/allowlist.js';
import {
  ASSERTION_LIFETIME_SECS, TenantCredentials, base64url, credentialKind, tokenEndpoint,
} from '../src/credentials.js';
import { fixed, syncErrorText, toText } from '../src/report.js';
import { DEFAULT_REMOVAL_GUARD, checkCompatible } from '../src/session.js';
import { TenantSecrets } from '../src/secrets.js';
import { PlatformStore, compareBytes } from '../src/storage.js';

function person(objectId, upn, mail) {
  return {
    person: {
      objectId,
      userPrincipalName: upn,
      mail,
      accountEnabled: true,
      userType: 'Member',
      licences: [],
      proxyAddresses: [],
    },
    status: 'active',
    fingerprint: `fp-${objectId}`,
  };
}

/**
 * An upsert as the engine sends it. Its keys default to the test person's addresses as they
 * are (the tests give them in lower case already): the engine computes the real ones.
 */
function upsert(stored, kind = 'create', previousObjectId = undefined, keys = {}) {
  const emailKey = 'emailKey' in keys ? keys.emailKey : stored.person.mail;
  const upnKey = 'upnKey' in keys ? keys.upnKey : stored.person.userPrincipalName;
  return { tag: 'upsert-person', val: { stored, kind, changedFields: [], previousObjectId, emailKey, upnKey } };
}

function tempState() {
  return join(mkdtempSync(join(tmpdir(), 'embed-node-')), 'state.json');
}

test('a batch is applied whole or not at all, in memory and on disk', () => {
  const path = tempState();
  const store = PlatformStore.open(path).forTenant('a');
  store.commit({ changes: [upsert(person('1', 'one@x.com', 'one@x.com'))], checkpoints: [{ key: 'k', value: 'v1' }] });
  const before = readFileSync(path, 'utf8');
  assert.throws(
    () => store.commit({
      changes: [upsert(person('2', 'two@x.com', 'two@x.com')), { tag: 'delete-person', val: '1' }, upsert(person('', 'bad@x.com'))],
      checkpoints: [{ key: 'k', value: 'v2' }],
    }),
    (error) => error.tag === 'invalid' && /applying person : the person has no object id/.test(error.val),
  );
  assert.equal(readFileSync(path, 'utf8'), before, 'the file is untouched');
  assert.deepEqual(store.listPeopleIds(undefined, 10), ['1']);
  assert.equal(store.getCheckpoint('k'), 'v1');
  // A store that cannot write (its directory is a file) fails unavailable and keeps nothing.
  const blocked = join(path, 'state.json');
  const broken = PlatformStore.open(blocked).forTenant('a');
  assert.throws(() => broken.commit({ changes: [upsert(person('3', 'three@x.com'))], checkpoints: [] }),
    (error) => error.tag === 'unavailable');
  assert.deepEqual(broken.listPeopleIds(undefined, 10), []);
  // Reopened, the file holds what was committed.
  const reopened = PlatformStore.open(path).forTenant('a');
  assert.equal(reopened.findPeople([{ tag: 'object-id', val: '1' }])[0].fingerprint, 'fp-1');
});

test('each tenant sees only its own records and decision; organizations are shared', () => {
  const platform = PlatformStore.open(null);
  const a = platform.forTenant('a');
  const b = platform.forTenant('b');
  a.commit({ changes: [upsert(person('1', 'one@x.com', 'one@x.com'))], checkpoints: [{ key: 'k', value: 'a' }] });
  assert.deepEqual(b.listPeopleIds(undefined, 10), []);
  assert.deepEqual(b.findPeople([{ tag: 'email', val: 'one@x.com' }]), [undefined]);
  assert.equal(b.getCheckpoint('k'), undefined);
  assert.throws(() => b.getDecision('a'), (e) => e.tag === 'invalid');
  assert.throws(() => b.putDecision({ tenantKey: 'a', action: { tag: 'ignore' }, decidedAt: 'now' }), (e) => e.tag === 'invalid');
  a.putDecision({ tenantKey: 'a', action: { tag: 'accept', val: 'org-1' }, decidedAt: 'now' });
  assert.deepEqual(a.getDecision('a').action, { tag: 'accept', val: 'org-1' });
  assert.equal(b.getDecision('b'), undefined);
  const created = a.createOrganization('  Contoso Ltd ');
  assert.equal(created.name, 'Contoso Ltd');
  assert.deepEqual(b.listOrganizations(), [created]);
  assert.throws(() => a.createOrganization(' '), (e) => e.tag === 'invalid');
});

test('ids are listed in byte-wise order after the cursor', () => {
  const store = PlatformStore.open(null).forTenant('a');
  const ids = ['b', 'a', 'B', '\uFF21', '\u{1F600}', 'ab'];
  store.commit({ changes: ids.map((id) => upsert(person(id, `${id}@x.com`))), checkpoints: [] });
  const sorted = [...ids].sort(compareBytes);
  // UTF-16 order would put U+1F600 (surrogates D83D..) before U+FF21; UTF-8 puts it after.
  assert.deepEqual(sorted, ['B', 'a', 'ab', 'b', '\uFF21', '\u{1F600}']);
  assert.deepEqual(store.listPeopleIds(undefined, 3), ['B', 'a', 'ab']);
  assert.deepEqual(store.listPeopleIds('ab', 10), ['b', '\uFF21', '\u{1F600}']);
  assert.deepEqual(store.listPeopleIds('\u{1F600}', 10), []);
});

test('WIT 0.4: people are found by object id and by exactly the keys their upsert carried', () => {
  const path = tempState();
  const store = PlatformStore.open(path).forTenant('a');
  const keys = { emailKey: 'jane.doe@contoso.com', upnKey: 'jane@contoso.onmicrosoft.com' };
  store.commit({
    changes: [
      upsert(person('1', ' Jane@Contoso.onmicrosoft.com.', 'MAILTO:Jane.Doe@Contoso.com'), 'create', undefined, keys),
      // No email key (the engine's none), and an empty upn-key (a UPN it has no key for).
      upsert(person('2', 'no-at-sign', 'no-at-sign'), 'create', undefined, { emailKey: undefined, upnKey: '' }),
    ],
    checkpoints: [],
  });
  const ids = (s) => s.findPeople([
    { tag: 'email', val: 'jane.doe@contoso.com' },
    { tag: 'user-principal-name', val: 'jane@contoso.onmicrosoft.com' },
    { tag: 'object-id', val: '1' },
    // The host normalises nothing: other spellings, and the raw fields, find no one.
    { tag: 'email', val: 'Jane.Doe@Contoso.com' },
    { tag: 'email', val: 'MAILTO:Jane.Doe@Contoso.com' },
    { tag: 'user-principal-name', val: ' Jane@Contoso.onmicrosoft.com.' },
    { tag: 'email', val: 'jane@contoso.onmicrosoft.com' },
    { tag: 'email', val: 'no-at-sign' },
    { tag: 'user-principal-name', val: 'no-at-sign' },
    { tag: 'user-principal-name', val: '' },
  ]).map((p) => p?.person.objectId);
  const want = ['1', '1', '1', undefined, undefined, undefined, undefined, undefined, undefined, undefined];
  assert.deepEqual(ids(store), want);
  // The keys are kept in the state file.
  assert.deepEqual(ids(PlatformStore.open(path).forTenant('a')), want);

  // Written again with other keys (a renamed account): found by the new ones only.
  store.commit({
    changes: [upsert(person('1', 'j@contoso.com', 'j@contoso.com'), 'update', undefined, { emailKey: 'j@contoso.com', upnKey: 'j@contoso.com' })],
    checkpoints: [],
  });
  assert.deepEqual(
    store.findPeople([{ tag: 'email', val: 'jane.doe@contoso.com' }, { tag: 'email', val: 'j@contoso.com' }]).map((p) => p?.person.objectId),
    [undefined, '1'],
  );
  // An upsert without a upn-key (a WIT 0.3 engine's) is refused, not stored unfindable.
  const old = upsert(person('3', 'x@contoso.com'));
  delete old.val.upnKey;
  assert.throws(() => store.commit({ changes: [old], checkpoints: [] }), (e) => e.tag === 'invalid' && /no upn-key/.test(e.val));
});

test('WIT 0.4: a state file written for 0.3 (people without keys) is refused', () => {
  const path = tempState();
  writeFileSync(path, JSON.stringify({ format: 'm365sync-embed-node/1', organizations: [], tenants: {} }));
  assert.throws(() => PlatformStore.open(path), /written for WIT 0\.3 .*no match keys/);
});

test('a link re-keys the stored record and keeps its identity', () => {
  const path = tempState();
  const store = PlatformStore.open(path).forTenant('a');
  store.commit({ changes: [upsert(person('old', 'jane@x.com', 'jane@x.com'))], checkpoints: [] });
  const record = JSON.parse(readFileSync(path, 'utf8')).tenants.a.people.old.record;
  store.commit({ changes: [upsert(person('new', 'jane2@x.com', 'jane@x.com'), 'link', 'old')], checkpoints: [] });
  assert.deepEqual(store.listPeopleIds(undefined, 10), ['new']);
  const people = JSON.parse(readFileSync(path, 'utf8')).tenants.a.people;
  assert.equal(people.new.record, record);
  assert.equal(people.old, undefined);
  // The record carries the link's keys now.
  assert.deepEqual([people.new.emailKey, people.new.upnKey], ['jane@x.com', 'jane2@x.com']);
  assert.deepEqual(
    store.findPeople([{ tag: 'user-principal-name', val: 'jane@x.com' }, { tag: 'user-principal-name', val: 'jane2@x.com' }])
      .map((p) => p?.person.objectId),
    [undefined, 'new'],
  );
});

test('other data sets, checkpoints cleared, the run log kept', () => {
  const store = PlatformStore.open(null).forTenant('a');
  store.commit({
    changes: [
      { tag: 'upsert-group', val: { objectId: 'g', displayName: 'G', kind: 'security' } },
      { tag: 'group-members', val: { groupId: 'g', added: ['1', '2'], removed: [] } },
      { tag: 'group-members', val: { groupId: 'g', added: [], removed: ['1'] } },
      { tag: 'upsert-mailbox', val: { objectId: '1', storageUsedBytes: 10n, itemCount: 2n, quotaStatus: 'ok', reportRefreshed: 'd' } },
      { tag: 'upsert-usage', val: { objectId: '1', workload: 'teams', periodDays: 30, counts: [['chat', 3n]], reportRefreshed: 'd' } },
    ],
    checkpoints: [{ key: 'k', value: 'v' }],
  });
  store.commit({ changes: [{ tag: 'delete-group', val: 'g' }], checkpoints: [{ key: 'k' }] });
  assert.equal(store.getCheckpoint('k'), undefined);
  assert.deepEqual(store.tenant.groups, {});
  assert.deepEqual(store.tenant.groupMembers, {});
  assert.equal(store.tenant.mailboxes['1'].storageUsedBytes, 10);
  assert.deepEqual(store.tenant.usage['1|teams|30'].counts, { chat: 3 });
});

test('the allowlist: api origins take anything, download hosts credential-free GETs only', () => {
  const list = new Allowlist({ api: ['https://graph.microsoft.com', 'http://127.0.0.1:8080'], downloads: ['https://reports.office.com'] });
  assert.equal(list.refusal('https', 'GRAPH.microsoft.com', 'GET', true), null);
  assert.equal(list.refusal('https', 'graph.microsoft.com:443', 'POST', true), null);
  assert.equal(list.refusal('http', '127.0.0.1:8080', 'POST', false), null);
  assert.equal(list.refusal('http', '127.0.0.1:8081', 'GET', false), '127.0.0.1:8081');
  assert.equal(list.refusal('http', 'graph.microsoft.com', 'GET', true), 'graph.microsoft.com');
  assert.equal(list.refusal('https', 'reports.office.com', 'GET', false), null);
  assert.match(list.refusal('https', 'reports.office.com', 'GET', true), /never sent credentials/);
  assert.match(list.refusal('https', 'reports.office.com', 'POST', false), /only GET/);
  assert.throws(() => new Allowlist({ api: ['https://graph.microsoft.com/v1.0'] }), /base URL/);
});

test('secrets: one name, errors name the source and never the value', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embed-node-'));
  const file = join(dir, 'secret');
  writeFileSync(file, 's3cr3t-value-1234\n');
  const secrets = new TenantSecrets({ file });
  assert.equal(secrets.get('client-secret'), 's3cr3t-value-1234');
  assert.equal(secrets.redact('token s3cr3t-value-1234 end'), 'token [redacted] end');
  assert.throws(() => secrets.get('other'), (e) => e.tag === 'not-found');
  const unset = new TenantSecrets({ env: 'M365SYNC_EMBED_NODE_TEST_UNSET' });
  assert.throws(() => unset.get('client-secret'), (e) => e.tag === 'not-found' && e.val.includes('M365SYNC_EMBED_NODE_TEST_UNSET'));
  const missing = new TenantSecrets({ file: join(dir, 'nope') });
  assert.throws(() => missing.get('client-secret'), (e) => e.tag === 'unreadable' && e.val.includes('nope') && !existsSync(join(dir, 'nope')));
});

test('the text report has the Rust host\'s layout', () => {
  const text = toText({
    tenantKey: 'contoso', mode: 'full', startedAt: '2024-01-01T00:00:00Z', elapsedMs: 12n,
    requests: 3, retries: 0, retryWaitMs: 0n, dryRun: false, warnings: [], conflicts: [],
    dataSets: [{
      dataSet: 'users', pages: 1, read: 5n, written: 4n, created: 4n, updated: 0n, unchanged: 0n,
      linked: 0n, removed: 0n, conflicts: 0n, filteredOut: [{ reason: 'guest', count: 1n }],
    }],
    organization: { tenantKey: 'contoso', tenantName: 'Contoso "Ltd"', state: 'suggested', suggestions: [{ organization: { id: 'o1', name: 'Contoso' }, score: 0.875 }] },
  });
  assert.equal(text, [
    'Sync of tenant contoso (full run) started 2024-01-01T00:00:00Z',
    '  12 ms, 3 HTTP requests, 0 retries (0 ms waited)',
    '  data set        pages     read  written  created  updated  unchanged  linked  removed conflicts',
    '  users               1        5        4        4        0          0       0        0         0',
    '    left out by guest: 1',
    '  organization match:',
    '    tenant contoso "Contoso \\"Ltd\\"": suggested',
    `      1. ${'"Contoso"'.padEnd(40)} ${'o1'.padEnd(38)} score 0.88`,
    '',
  ].join('\n'));
});

test('scores are printed as Rust prints them: exact ties to even', () => {
  assert.deepEqual([0.875, 0.125, 0.25, 0.7, 0.005, 1].map((x) => fixed(x, 2)), ['0.88', '0.12', '0.25', '0.70', '0.01', '1.00']);
  assert.equal(fixed(Math.fround(0.835), 2), '0.83'); // f32 0.835 is 0.834999978...
});

test('WIT 0.3: a deleted person takes their mailbox, usage and memberships along', () => {
  const store = PlatformStore.open(null).forTenant('a');
  const usage = (objectId, workload, periodDays) => ({
    tag: 'upsert-usage',
    val: { objectId, workload, periodDays, counts: [['send', 1n]], reportRefreshed: '2024-05-01' },
  });
  store.commit({
    changes: [
      upsert(person('1', 'one@x.com')),
      upsert(person('2', 'two@x.com')),
      { tag: 'upsert-mailbox', val: { objectId: '1', storageUsedBytes: 1n, itemCount: 1n, quotaStatus: 'under-limit', reportRefreshed: 'd' } },
      { tag: 'upsert-mailbox', val: { objectId: '2', storageUsedBytes: 1n, itemCount: 1n, quotaStatus: 'under-limit', reportRefreshed: 'd' } },
      usage('1', 'teams', 7), usage('1', 'exchange', 7), usage('2', 'teams', 7),
      { tag: 'upsert-group', val: { objectId: 'g', displayName: 'G', kind: 'security' } },
      { tag: 'group-members', val: { groupId: 'g', added: ['1', '2'], removed: [] } },
    ],
    checkpoints: [],
  });
  store.commit({ changes: [{ tag: 'delete-person', val: '1' }], checkpoints: [] });
  const t = store.tenant;
  assert.deepEqual(Object.keys(t.people), ['2']);
  assert.deepEqual(Object.keys(t.mailboxes), ['2']);
  assert.deepEqual(Object.keys(t.usage), ['2|teams|7']);
  assert.deepEqual(t.groupMembers.g, { 2: true });

  // A report replaced: only its own scope's rows go, then the new snapshot lands.
  store.commit({ changes: [usage('2', 'teams', 30), usage('2', 'exchange', 7)], checkpoints: [] });
  store.commit({
    changes: [{ tag: 'replace-report', val: { tag: 'usage', val: { workload: 'teams', periodDays: 7 } } }],
    checkpoints: [],
  });
  assert.deepEqual(Object.keys(store.tenant.usage).sort(), ['2|exchange|7', '2|teams|30']);
  store.commit({ changes: [{ tag: 'replace-report', val: { tag: 'mailboxes' } }], checkpoints: [] });
  assert.deepEqual(store.tenant.mailboxes, {});
});

test('WIT 0.3: direct reports are the stored people whose manager is that id', () => {
  const store = PlatformStore.open(null).forTenant('a');
  const managed = (id, managerId) => {
    const p = person(id, `${id}@x.com`);
    p.person.managerId = managerId;
    return p;
  };
  store.commit({
    changes: [upsert(managed('1', undefined)), upsert(managed('2', '1')), upsert(managed('3', '1')), upsert(managed('4', '2'))],
    checkpoints: [],
  });
  assert.deepEqual(store.findDirectReports('1').map((s) => s.person.objectId), ['2', '3']);
  assert.deepEqual(store.findDirectReports('9'), []);
  assert.equal(typeof store.imports().findDirectReports, 'function');
});

test('WIT 0.6: only 0.6.x components run, with the default removal guard', () => {
  const info = (witVersion) => ({ witVersion, features: { users: true } });
  assert.doesNotThrow(() => checkCompatible(info('0.6.0'), { users: true }));
  assert.doesNotThrow(() => checkCompatible(info('0.6.7'), { users: true }));
  for (const other of ['0.5.0', '0.7.0', '0.2.4', '1.6.0']) {
    assert.throws(() => checkCompatible(info(other), { users: true }), /supports 0\.6\.x only/);
  }
  assert.deepEqual(DEFAULT_REMOVAL_GUARD, { maxPercent: 10, maxCount: 500, allow: false });
});

test('WIT 0.3: the new sync errors read as words', () => {
  assert.match(syncErrorText({ tag: 'mass-removal', val: { wouldRemove: 60n, stored: 100n, allowed: 10n, message: 'too many' } }),
    /removal guard: too many \(would remove 60 of 100 stored people; at most 10 allowed\)/);
  assert.equal(syncErrorText({ tag: 'cancelled', val: 'signal' }), 'cancelled: signal');
  assert.equal(syncErrorText({ tag: 'tenant-mismatch', val: 'other directory' }), 'tenant mismatch: other directory');
});

// WIT 0.6: client assertions (`m365sync:engine/credentials`).

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'tests', 'fixtures', 'credentials');
const fixture = (name) => join(FIXTURES, name);
const CLIENT_ID = '11111111-2222-3333-4444-555555555555';
const AUDIENCE = tokenEndpoint('https://login.microsoftonline.com/', 'contoso.onmicrosoft.com');

function decode(jwt) {
  const [header, claims, signature] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(header, 'base64url')),
    claims: JSON.parse(Buffer.from(claims, 'base64url')),
    signed: Buffer.from(`${header}.${claims}`),
    signature: Buffer.from(signature, 'base64url'),
  };
}

/** PS256 (RFC 7518, 3.5): RSASSA-PSS, SHA-256, a salt as long as the hash. */
function verifies(jwt, certificateFile) {
  const { signed, signature } = decode(jwt);
  const certificate = new X509Certificate(readFileSync(certificateFile));
  return verify('sha256', signed, {
    key: certificate.publicKey,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: 32,
  }, signature);
}

function certificateCredentials(overrides = {}) {
  return new TenantCredentials({
    certificate: { key_file: fixture('app.key.pem'), certificate_file: fixture('app.cert.pem'), ...overrides },
  }, { clientId: CLIENT_ID, audience: AUDIENCE, tenantKey: 'contoso' });
}

test('WIT 0.6: a certificate assertion is a PS256 JWT the certificate verifies', () => {
  assert.equal(AUDIENCE, 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token');
  const credentials = certificateCredentials();
  const before = Math.floor(Date.now() / 1000);
  const jwt = credentials.clientAssertion(AUDIENCE);
  const after = Math.floor(Date.now() / 1000);
  const { header, claims } = decode(jwt);
  const der = new X509Certificate(readFileSync(fixture('app.cert.pem'))).raw;
  assert.deepEqual(header, {
    alg: 'PS256',
    typ: 'JWT',
    'x5t#S256': base64url(createHash('sha256').update(der).digest()),
  });
  assert.equal(claims.aud, AUDIENCE);
  assert.equal(claims.iss, CLIENT_ID);
  assert.equal(claims.sub, CLIENT_ID);
  assert.match(claims.jti, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(claims.nbf >= before && claims.nbf <= after, `nbf ${claims.nbf}`);
  assert.equal(claims.iat, claims.nbf);
  assert.equal(claims.exp - claims.nbf, ASSERTION_LIFETIME_SECS);
  assert.ok(ASSERTION_LIFETIME_SECS >= 300 && ASSERTION_LIFETIME_SECS <= 600);
  assert.ok(verifies(jwt, fixture('app.cert.pem')), 'the app certificate verifies the signature');
  assert.ok(!verifies(jwt, fixture('other.cert.pem')), 'another certificate does not');
  // PSS is randomised and every assertion has its own jti.
  const again = credentials.clientAssertion(AUDIENCE);
  assert.notEqual(decode(again).claims.jti, claims.jti);
  assert.notEqual(again, jwt);
  assert.ok(verifies(again, fixture('app.cert.pem')));
  // A log line that contained one is scrubbed.
  assert.equal(credentials.redact(`sent ${jwt} and ${again}`), 'sent [redacted] and [redacted]');
});

test('WIT 0.6: assertion errors name the file and never a key or a token', () => {
  const never = (e) => !/BEGIN|PRIVATE|MII/.test(e.val);
  // Only the tenant's own token endpoint.
  assert.throws(() => certificateCredentials().clientAssertion('https://evil.example/token'),
    (e) => e.tag === 'unreadable' && e.val.includes('https://evil.example/token') && e.val.includes(AUDIENCE));
  // A key that is not the certificate's.
  assert.throws(() => certificateCredentials({ certificate_file: fixture('other.cert.pem') }).clientAssertion(AUDIENCE),
    (e) => e.tag === 'unreadable' && e.val.includes('app.key.pem') && e.val.includes('other.cert.pem') && never(e));
  // Files that are missing, or not what they should be.
  assert.throws(() => certificateCredentials({ key_file: fixture('nope.pem') }).clientAssertion(AUDIENCE),
    (e) => e.tag === 'unreadable' && e.val.includes('nope.pem') && e.val.includes('ENOENT'));
  assert.throws(() => certificateCredentials({ key_file: fixture('app.cert.pem') }).clientAssertion(AUDIENCE),
    (e) => e.tag === 'unreadable' && /not a PEM private key/.test(e.val) && never(e));
  assert.throws(() => certificateCredentials({ certificate_file: fixture('app.key.pem') }).clientAssertion(AUDIENCE),
    (e) => e.tag === 'unreadable' && /not a PEM X.509 certificate/.test(e.val) && never(e));
  // Nothing configured.
  const none = new TenantCredentials({}, { clientId: CLIENT_ID, audience: AUDIENCE, tenantKey: 'contoso' });
  assert.throws(() => none.clientAssertion(AUDIENCE),
    (e) => e.tag === 'not-configured' && e.val.includes('contoso'));
  assert.equal(credentialKind({}), 'client-secret');
  assert.equal(credentialKind(null), 'client-secret');
  assert.equal(credentialKind({ federated_token_file: '/t' }), 'client-assertion');
  assert.equal(credentialKind({ certificate: { key_file: 'k', certificate_file: 'c' } }), 'client-assertion');
});

test('WIT 0.6: a federated token is read again for every request, trimmed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embed-node-'));
  const file = join(dir, 'token');
  const credentials = new TenantCredentials({ federated_token_file: file }, { clientId: CLIENT_ID, audience: AUDIENCE });
  assert.throws(() => credentials.clientAssertion(AUDIENCE),
    (e) => e.tag === 'unreadable' && e.val.includes(file) && e.val.includes('ENOENT'));
  writeFileSync(file, 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcCJ9.first\n');
  assert.equal(credentials.clientAssertion(AUDIENCE), 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcCJ9.first');
  writeFileSync(file, '  eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcCJ9.renewed  ');
  assert.equal(credentials.clientAssertion(AUDIENCE), 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcCJ9.renewed');
  assert.equal(credentials.redact('x eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcCJ9.renewed y'), 'x [redacted] y');
  writeFileSync(file, ' \n');
  assert.throws(() => credentials.clientAssertion(AUDIENCE), (e) => e.tag === 'unreadable' && /is empty/.test(e.val));
  assert.throws(() => credentials.clientAssertion(`${AUDIENCE}/x`), (e) => e.tag === 'unreadable');
});

test('WIT 0.6: a refused assertion reads as words', () => {
  assert.equal(
    syncErrorText({ tag: 'auth', val: { failure: 'invalid-assertion', aadsts: 700027, message: 'upload the certificate' } }),
    'sign-in failed: client assertion refused (AADSTS700027): upload the certificate',
  );
});
