// `m365sync:engine/storage`: the engine's checkpoints and the platform's records, in memory
// or in one JSON file.
//
// What the engine relies on (and any store must guarantee):
// - Scoping: a TenantStore only ever reads and writes the records of the tenant it was
//   opened for. Platform organizations are the platform's own, shared by all tenants.
// - Atomic batches: `commit` applies every change, checkpoint and the run log of a batch,
//   or none of them. Here: each write is recorded in an undo log and rolled back when any
//   part fails, and the JSON file is replaced through a temporary file and a rename, so
//   the file on disk holds either the state before the batch or the state after it.
// - `list-people-ids`: object ids in ascending byte-wise (UTF-8) order, after a cursor.
// - `find-people` by object id, or by email / user principal name key: exactly the
//   `email-key` / `upn-key` the person's last upsert carried (the engine's own
//   normalisation; the host normalises nothing and compares keys as they are).
// - A link (`upsert-person` of kind `link`) re-keys the record stored under
//   `previous-object-id` to the new object id, keeping the record (its platform id here).
// - `delete-person` deletes the person with everything stored about them: their mailbox,
//   usage rows and group memberships.
// - `replace-report` deletes the stored rows of one report (the mailbox report, or one
//   workload's usage over one period); the upserts that follow in the batch are its new
//   snapshot.
// - `find-direct-reports`: the stored people (any status) whose manager is that id.
//
// One process at a time may use a state file: there is no lock across processes.

import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

import { toJson } from './report.js';

// 2: every person holds the `emailKey`/`upnKey` its last upsert carried (WIT 0.4.0).
const FORMAT = 'm365sync-embed-node/2';
/** Format 1 held no keys, and a host cannot compute the engine's: such a file is refused. */
const FORMAT_WITHOUT_KEYS = 'm365sync-embed-node/1';
/** How many run logs each tenant keeps. */
const RUNS_KEPT = 50;
const MAX_ORGANIZATION_NAME = 256;

/** Byte-wise (UTF-8) comparison: the order of `list-people-ids`. */
export function compareBytes(a, b) {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function storageError(tag, message) {
  return { tag, val: message };
}

function emptyTenant() {
  return {
    people: {},
    checkpoints: {},
    subscriptions: {},
    groups: {},
    groupMembers: {},
    organization: null,
    domains: {},
    mailboxes: {},
    usage: {},
    decision: null,
    runs: [],
  };
}

/** A u64 (BigInt) as a JSON number when it fits, else as a string. */
function jsonNumber(value) {
  if (typeof value !== 'bigint') return value;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value.toString();
}

/** A WIT value without `undefined` fields and BigInts, fit for JSON. */
function plain(value) {
  return JSON.parse(JSON.stringify(value, (_, v) => jsonNumber(v)));
}

/** What kind of change this is, for error messages (never its contents). */
function changeName(change) {
  const v = change.val;
  switch (change.tag) {
    case 'upsert-person':
      return v.kind === 'link' && v.previousObjectId !== undefined
        ? `link of person ${v.stored.person.objectId} (stored as ${v.previousObjectId})`
        : `person ${v.stored.person.objectId}`;
    case 'delete-person': return `deletion of person ${v}`;
    case 'upsert-subscription': return `subscription ${v.skuId}`;
    case 'upsert-group': return `group ${v.objectId}`;
    case 'delete-group': return `deletion of group ${v}`;
    case 'group-members': return `members of group ${v.groupId}`;
    case 'upsert-organization': return `organization ${v.tenantId}`;
    case 'upsert-domain': return `domain ${v.name}`;
    case 'upsert-mailbox': return `mailbox of ${v.objectId}`;
    case 'upsert-usage': return `${v.workload} usage of ${v.objectId}`;
    case 'replace-report':
      return v.tag === 'usage'
        ? `replacement of the ${v.val.workload} usage report over ${v.val.periodDays} days`
        : 'replacement of the mailbox report';
    default: return `change ${change.tag}`;
  }
}

/** Writes that can be undone: the log of one batch. */
class UndoLog {
  #entries = [];

  set(object, key, value) {
    const had = Object.prototype.hasOwnProperty.call(object, key);
    this.#entries.push([object, key, had, object[key]]);
    object[key] = value;
  }

  delete(object, key) {
    if (!Object.prototype.hasOwnProperty.call(object, key)) return;
    this.#entries.push([object, key, true, object[key]]);
    delete object[key];
  }

  rollback() {
    for (let i = this.#entries.length - 1; i >= 0; i--) {
      const [object, key, had, old] = this.#entries[i];
      if (had) object[key] = old;
      else delete object[key];
    }
    this.#entries = [];
  }
}

/**
 * The platform's store: every tenant's records and the platform's organizations, in memory
 * (`path` null) or in a JSON file.
 */
export class PlatformStore {
  /** @param {string|null} path the JSON state file, or null to keep everything in memory */
  static open(path = null) {
    let doc = { format: FORMAT, organizations: [], tenants: {} };
    if (path && existsSync(path)) {
      let parsed;
      try {
        parsed = JSON.parse(readFileSync(path, 'utf8'));
      } catch (error) {
        throw new Error(`cannot read state file ${path}: ${error.message}`);
      }
      if (parsed?.format === FORMAT_WITHOUT_KEYS) {
        throw new Error(
          `state file ${path} was written for WIT 0.3 (format ${FORMAT_WITHOUT_KEYS}): its people ` +
            'have no match keys, so records of departed accounts could not be found by email or ' +
            'user principal name; move it away and run a full sync into a new one',
        );
      }
      if (parsed?.format !== FORMAT) {
        throw new Error(`state file ${path} is not an m365sync embed-node state file (format ${JSON.stringify(parsed?.format)})`);
      }
      doc = parsed;
    }
    return new PlatformStore(path, doc);
  }

  constructor(path, doc) {
    this.path = path;
    this.doc = doc;
  }

  /** The storage of one tenant: what a sandbox running that tenant is given. */
  forTenant(key) {
    return new TenantStore(this, key);
  }

  /** Write the whole state through a temporary file and a rename (atomic on POSIX). */
  persist() {
    if (!this.path) return;
    const dir = dirname(this.path);
    mkdirSync(dir, { recursive: true });
    const temp = join(dir, `.${basename(this.path)}.${process.pid}.tmp`);
    const text = JSON.stringify(this.doc);
    try {
      const fd = openSync(temp, 'w', 0o600);
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.path);
    } catch (error) {
      rmSync(temp, { force: true });
      throw error;
    }
    // Make the rename itself durable.
    try {
      const fd = openSync(dir, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch {
      // Not every platform can fsync a directory.
    }
  }
}

/** One tenant's view of the platform store: the `m365sync:engine/storage` import. */
export class TenantStore {
  #platform;
  #sortedIds = null;
  #byEmail = null;
  #byUpn = null;

  constructor(platform, key) {
    this.#platform = platform;
    this.key = key;
  }

  /** This tenant's records (read-only use; writes go through an UndoLog). */
  get tenant() {
    return this.#platform.doc.tenants[this.key] ?? emptyTenant();
  }

  #invalidate() {
    this.#sortedIds = null;
    this.#byEmail = null;
    this.#byUpn = null;
  }

  /** Run `write(undo)` and persist; on any failure undo everything and rethrow. */
  #transaction(what, write) {
    const undo = new UndoLog();
    try {
      write(undo);
    } catch (error) {
      undo.rollback();
      this.#invalidate();
      if (error && typeof error === 'object' && 'tag' in error) throw error;
      throw storageError('invalid', `${what}: ${error?.message ?? error}`);
    }
    try {
      this.#platform.persist();
    } catch (error) {
      undo.rollback();
      this.#invalidate();
      throw storageError('unavailable', `${what}: cannot write ${this.#platform.path}: ${error.code ?? error.message}`);
    }
    this.#invalidate();
  }

  #tenantForWrite(undo) {
    const tenants = this.#platform.doc.tenants;
    if (!Object.prototype.hasOwnProperty.call(tenants, this.key)) undo.set(tenants, this.key, emptyTenant());
    return tenants[this.key];
  }

  // ---- the import's functions ----

  getCheckpoint(key) {
    return this.tenant.checkpoints[key];
  }

  findPeople(keys) {
    const people = this.tenant.people;
    return keys.map((key) => {
      let id;
      switch (key.tag) {
        case 'object-id':
          id = key.val;
          break;
        case 'email':
          id = this.#index('email').get(key.val);
          break;
        case 'user-principal-name':
          id = this.#index('upn').get(key.val);
          break;
        default:
          throw storageError('invalid', `unknown person key ${key.tag}`);
      }
      const entry = id === undefined ? undefined : people[id];
      return entry === undefined ? undefined : entry.stored;
    });
  }

  /** Email (or UPN) key, as the upserts carried it → the lowest object id holding it. */
  #index(which) {
    if (which === 'email' && this.#byEmail) return this.#byEmail;
    if (which === 'upn' && this.#byUpn) return this.#byUpn;
    const index = new Map();
    for (const id of this.#ids()) {
      const entry = this.tenant.people[id];
      const key = which === 'email' ? entry.emailKey : entry.upnKey;
      // No key: no email key, or an empty upn-key (a UPN the engine has no key for).
      if (!key) continue;
      if (!index.has(key)) index.set(key, id);
    }
    if (which === 'email') this.#byEmail = index;
    else this.#byUpn = index;
    return index;
  }

  #ids() {
    if (!this.#sortedIds) this.#sortedIds = Object.keys(this.tenant.people).sort(compareBytes);
    return this.#sortedIds;
  }

  findDirectReports(managerId) {
    const people = this.tenant.people;
    return this.#ids()
      .map((id) => people[id].stored)
      .filter((stored) => stored.person.managerId === managerId);
  }

  listPeopleIds(after, limit) {
    const ids = this.#ids();
    let start = 0;
    if (after !== undefined) {
      // First id greater than `after`.
      let lo = 0;
      let hi = ids.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareBytes(ids[mid], after) <= 0) lo = mid + 1;
        else hi = mid;
      }
      start = lo;
    }
    return ids.slice(start, start + limit);
  }

  commit(batch) {
    this.#transaction('committing a batch', (undo) => {
      const t = this.#tenantForWrite(undo);
      for (const change of batch.changes) {
        try {
          applyChange(undo, t, change);
        } catch (error) {
          const message = error?.val ?? error?.message ?? String(error);
          throw storageError('invalid', `applying ${changeName(change)}: ${message}`);
        }
      }
      for (const checkpoint of batch.checkpoints) {
        if (checkpoint.value === undefined) undo.delete(t.checkpoints, checkpoint.key);
        else undo.set(t.checkpoints, checkpoint.key, checkpoint.value);
      }
      if (batch.run) {
        undo.set(t, 'runs', [...t.runs, toJson(batch.run)].slice(-RUNS_KEPT));
      }
    });
  }

  listOrganizations() {
    return [...this.#platform.doc.organizations].sort(
      (a, b) => compareBytes(a.name, b.name) || compareBytes(a.id, b.id),
    );
  }

  createOrganization(name) {
    const trimmed = name.trim();
    if (trimmed === '') throw storageError('invalid', 'organization name is empty');
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f-\u009f]/.test(trimmed)) {
      throw storageError('invalid', `organization name ${JSON.stringify(trimmed)} contains a control character`);
    }
    if ([...trimmed].length > MAX_ORGANIZATION_NAME) {
      throw storageError('invalid', `organization name ${JSON.stringify([...trimmed].slice(0, 40).join(''))}... is longer than ${MAX_ORGANIZATION_NAME} characters`);
    }
    const organization = { id: randomUUID(), name: trimmed };
    const doc = this.#platform.doc;
    this.#transaction('creating an organization', (undo) => {
      undo.set(doc, 'organizations', [...doc.organizations, organization]);
    });
    return organization;
  }

  getDecision(tenantKey) {
    if (tenantKey !== this.key) {
      throw storageError('invalid', `tenant ${JSON.stringify(this.key)} cannot read the decision of tenant ${JSON.stringify(tenantKey)}`);
    }
    return this.tenant.decision ?? undefined;
  }

  putDecision(decision) {
    if (decision.tenantKey !== this.key) {
      throw storageError('invalid', `a decision for tenant ${JSON.stringify(decision.tenantKey)} cannot be stored by tenant ${JSON.stringify(this.key)}`);
    }
    this.#transaction('storing the review decision', (undo) => {
      const t = this.#tenantForWrite(undo);
      undo.set(t, 'decision', plain(decision));
    });
  }

  /** The import object jco expects for `m365sync:engine/storage`. */
  imports() {
    return {
      getCheckpoint: (key) => this.getCheckpoint(key),
      findPeople: (keys) => this.findPeople(keys),
      findDirectReports: (managerId) => this.findDirectReports(managerId),
      listPeopleIds: (after, limit) => this.listPeopleIds(after, limit),
      commit: (batch) => this.commit(batch),
      listOrganizations: () => this.listOrganizations(),
      createOrganization: (name) => this.createOrganization(name),
      getDecision: (tenantKey) => this.getDecision(tenantKey),
      putDecision: (decision) => this.putDecision(decision),
    };
  }
}

function applyChange(undo, t, change) {
  const v = change.val;
  switch (change.tag) {
    case 'upsert-person': {
      const id = v.stored.person.objectId;
      if (!id) throw new Error('the person has no object id');
      if (typeof v.upnKey !== 'string') throw new Error('the person has no upn-key');
      const previous = v.previousObjectId;
      if (v.kind === 'link' && previous !== undefined && previous !== id && t.people[previous]) {
        // Re-key the record in place: it keeps its identity (its platform record id) and
        // takes the new object id. A record already under the new id gives way to it.
        const linked = t.people[previous];
        undo.delete(t.people, previous);
        undo.set(t.people, id, linked);
      }
      const existing = t.people[id];
      // The engine's keys, stored as they come: what `find-people` compares with.
      undo.set(t.people, id, {
        record: existing?.record ?? randomUUID(),
        stored: plain(v.stored),
        emailKey: v.emailKey,
        upnKey: v.upnKey,
      });
      break;
    }
    case 'delete-person': {
      // The person and everything stored about them.
      undo.delete(t.people, v);
      undo.delete(t.mailboxes, v);
      for (const key of Object.keys(t.usage)) {
        if (key.startsWith(`${v}|`)) undo.delete(t.usage, key);
      }
      for (const [group, members] of Object.entries(t.groupMembers)) {
        if (Object.prototype.hasOwnProperty.call(members, v)) {
          const rest = { ...members };
          delete rest[v];
          undo.set(t.groupMembers, group, rest);
        }
      }
      break;
    }
    case 'replace-report': {
      if (v.tag === 'mailboxes') {
        for (const key of Object.keys(t.mailboxes)) undo.delete(t.mailboxes, key);
      } else if (v.tag === 'usage') {
        const suffix = `|${v.val.workload}|${v.val.periodDays}`;
        for (const key of Object.keys(t.usage)) {
          if (key.endsWith(suffix)) undo.delete(t.usage, key);
        }
      } else {
        throw new Error(`unknown report scope ${v.tag}`);
      }
      break;
    }
    case 'upsert-subscription':
      undo.set(t.subscriptions, v.skuId, plain(v));
      break;
    case 'upsert-group':
      undo.set(t.groups, v.objectId, plain(v));
      break;
    case 'delete-group':
      undo.delete(t.groupMembers, v);
      undo.delete(t.groups, v);
      break;
    case 'group-members': {
      const members = { ...(t.groupMembers[v.groupId] ?? {}) };
      for (const id of v.added) members[id] = true;
      for (const id of v.removed) delete members[id];
      undo.set(t.groupMembers, v.groupId, members);
      break;
    }
    case 'upsert-organization':
      undo.set(t, 'organization', plain(v));
      break;
    case 'upsert-domain':
      undo.set(t.domains, v.name, plain(v));
      break;
    case 'upsert-mailbox':
      undo.set(t.mailboxes, v.objectId, plain(v));
      break;
    case 'upsert-usage': {
      const counts = Object.fromEntries(v.counts.map(([name, n]) => [name, jsonNumber(n)]));
      undo.set(t.usage, `${v.objectId}|${v.workload}|${v.periodDays}`, { ...plain({ ...v, counts: [] }), counts });
      break;
    }
    default:
      throw new Error(`unknown change ${change.tag}`);
  }
}
