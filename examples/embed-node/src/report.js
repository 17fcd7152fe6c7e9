// The sync report as text for people and as JSON for scripts: a close mirror of the Rust
// host's host/src/report.rs (`to_text`, `to_json`), so both hosts print the same thing.
//
// jco hands WIT values over as JavaScript values: records as objects with camelCase keys,
// enums as their WIT names, u64 as BigInt, option<T> as T or undefined.

/** `{:<width}` / `{:>width}` of Rust's format!, counting characters (not UTF-16 units). */
function padEnd(value, width) {
  const s = String(value);
  const n = [...s].length;
  return n >= width ? s : s + ' '.repeat(width - n);
}

function padStart(value, width) {
  const s = String(value);
  const n = [...s].length;
  return n >= width ? s : ' '.repeat(width - n) + s;
}

/** Rust's `{:?}` of a string: quoted, with backslash escapes. */
export function debugString(s) {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code === 0) out += '\\0';
    else if (code < 0x20 || (code >= 0x7f && code < 0xa0)) out += `\\u{${code.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

/**
 * Rust's `{:.N}` of a float: like toFixed, but an exact tie rounds to the even digit
 * (Rust prints 0.125 as "0.12" where toFixed gives "0.13").
 */
export function fixed(value, digits) {
  const rounded = value.toFixed(digits);
  const long = value.toFixed(Math.min(100, digits + 60));
  const cut = long.indexOf('.') + 1 + digits;
  if (!/^50*$/.test(long.slice(cut))) return rounded;
  const truncated = long.slice(0, cut);
  return Number(truncated.at(-1)) % 2 === 0 ? truncated : rounded;
}

/** A u64 (BigInt) or u32 as a JSON number. */
function num(value) {
  return typeof value === 'bigint' ? Number(value) : value;
}

/** Rust's serde_json (without `preserve_order`) writes object keys sorted: so do we. */
export function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    const sorted = {};
    for (const key of Object.keys(value).sort()) sorted[key] = sortKeys(value[key]);
    return sorted;
  }
  return value;
}

function dataSetJson(d) {
  const filtered = {};
  for (const r of d.filteredOut) filtered[r.reason] = num(r.count);
  return {
    data_set: d.dataSet,
    pages: d.pages,
    read: num(d.read),
    written: num(d.written),
    created: num(d.created),
    updated: num(d.updated),
    unchanged: num(d.unchanged),
    linked: num(d.linked),
    removed: num(d.removed),
    conflicts: num(d.conflicts),
    filtered_out: filtered,
  };
}

/** A tenant's organization match as JSON (report.rs `organization_json`). */
export function organizationJson(m) {
  return {
    tenant: m.tenantKey,
    tenant_name: m.tenantName,
    state: m.state,
    organization: m.organization ? { id: m.organization.id, name: m.organization.name } : null,
    suggestions: m.suggestions.map((s) => ({
      id: s.organization.id,
      name: s.organization.name,
      score: Math.round(s.score * 1000) / 1000,
    })),
  };
}

/** The report as a JSON value with stable snake_case keys (report.rs `to_json`). */
export function toJson(report) {
  return sortKeys({
    tenant: report.tenantKey,
    mode: report.mode,
    started_at: report.startedAt,
    elapsed_ms: num(report.elapsedMs),
    requests: report.requests,
    retries: report.retries,
    retry_wait_ms: num(report.retryWaitMs),
    dry_run: report.dryRun,
    data_sets: report.dataSets.map(dataSetJson),
    warnings: report.warnings.map((w) => ({ code: w.code, message: w.message })),
    conflicts: report.conflicts.map((c) => ({
      key: c.key,
      object_ids: c.objectIds,
      message: c.message,
    })),
    organization: report.organization ? organizationJson(report.organization) : null,
  });
}

/** A tenant's organization match as a few lines of text (report.rs `organization_text`). */
export function organizationText(m, indent) {
  let out = '';
  const name = m.tenantName === '' ? '(no organization name synced yet)' : debugString(m.tenantName);
  out += `${indent}tenant ${m.tenantKey} ${name}: ${m.state}`;
  if (m.organization) out += ` to ${debugString(m.organization.name)} (${m.organization.id})\n`;
  else out += '\n';
  m.suggestions.forEach((s, rank) => {
    out +=
      `${indent}  ${rank + 1}. ${padEnd(debugString(s.organization.name), 40)} ` +
      `${padEnd(s.organization.id, 38)} score ${fixed(s.score, 2)}\n`;
  });
  return out;
}

function row(cells) {
  const [name, ...numbers] = cells;
  const widths = [6, 8, 8, 8, 8, 10, 7, 8, 9];
  return `  ${padEnd(name, 14)} ${numbers.map((n, i) => padStart(n, widths[i])).join(' ')}\n`;
}

/** The report as a few aligned lines of text (report.rs `to_text`). */
export function toText(report) {
  let out = '';
  out +=
    `Sync of tenant ${report.tenantKey} (${report.mode} run` +
    `${report.dryRun ? ', dry run: nothing written' : ''}) started ${report.startedAt}\n`;
  out +=
    `  ${report.elapsedMs} ms, ${report.requests} HTTP requests, ${report.retries} retries ` +
    `(${report.retryWaitMs} ms waited)\n`;
  out += row([
    'data set', 'pages', 'read', 'written', 'created', 'updated', 'unchanged', 'linked',
    'removed', 'conflicts',
  ]);
  for (const d of report.dataSets) {
    out += row([
      d.dataSet, d.pages, d.read, d.written, d.created, d.updated, d.unchanged, d.linked,
      d.removed, d.conflicts,
    ]);
    for (const filtered of d.filteredOut) {
      out += `    left out by ${filtered.reason}: ${filtered.count}\n`;
    }
  }
  for (const warning of report.warnings) {
    out += `  warning [${warning.code}]: ${warning.message}\n`;
  }
  for (const conflict of report.conflicts) {
    out += `  conflict on ${conflict.key}: accounts ${conflict.objectIds.join(', ')}: ${conflict.message}\n`;
  }
  if (report.organization) {
    out += `  organization match:\n${organizationText(report.organization, '    ')}`;
  }
  return out;
}

const AUTH_FAILURES = {
  'invalid-secret': 'invalid client secret',
  'expired-secret': 'expired client secret',
  'app-not-found': 'application not found',
  'tenant-not-found': 'tenant not found',
  'consent-missing': 'admin consent missing',
  'invalid-assertion': 'client assertion refused',
  other: 'sign-in failed',
};

/** The engine's `sync-error` in words an admin can act on (host/src/error.rs). */
export function syncErrorText(error) {
  const v = error.val;
  switch (error.tag) {
    case 'auth': {
      const kind = AUTH_FAILURES[v.failure] ?? 'sign-in failed';
      return v.aadsts !== undefined
        ? `sign-in failed: ${kind} (AADSTS${v.aadsts}): ${v.message}`
        : `sign-in failed: ${kind}: ${v.message}`;
    }
    case 'permission':
      return `permission ${v.permission} is missing (needed by feature ${v.feature}): ${v.message}`;
    case 'host-denied':
      return `the sandbox refused a request to ${v}: that host is not on this tenant's allowlist`;
    case 'http': {
      let s = `Graph request to ${v.url} failed`;
      if (v.status !== undefined) s += ` with HTTP ${v.status}`;
      if (v.graphCode !== undefined) s += ` (${v.graphCode})`;
      return `${s}: ${v.message}`;
    }
    case 'bad-response':
      return `Graph answered ${v.url} with a response that cannot be read: ${v.message}`;
    case 'secret':
      return `secret unavailable: ${v}`;
    case 'storage':
      return `storage failed: ${v}`;
    case 'invalid-request':
      return `invalid request: ${v}`;
    case 'unsupported':
      return `not supported: ${v}`;
    case 'mass-removal':
      return `stopped by the removal guard: ${v.message} (would remove ${v.wouldRemove} of ${v.stored} stored people; at most ${v.allowed} allowed)`;
    case 'tenant-mismatch':
      return `tenant mismatch: ${v}`;
    case 'cancelled':
      return `cancelled: ${v}`;
    default:
      return `engine error ${error.tag}: ${JSON.stringify(v)}`;
  }
}
