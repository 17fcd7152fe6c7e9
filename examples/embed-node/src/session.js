// One session of the example host, run inside a worker thread (see main.js): load the
// transpiled engine, check it is compatible, then run the requested syncs of one tenant,
// each in a fresh sandbox, telling the main thread what happens through `emit`.

import { Allowlist } from './allowlist.js';
import { TenantCredentials, credentialKind, tokenEndpoint } from './credentials.js';
import { EngineRuntime, RunError } from './engine.js';
import { TenantSecrets } from './secrets.js';
import { PlatformStore } from './storage.js';

/** The WIT package versions this host was written against (0.x: a new minor breaks). */
const SUPPORTED_WIT = /^0\.6\.\d+$/;

/**
 * The removal guard every run gets (Microsoft Entra Connect's "prevent accidental deletes"
 * defaults): a run that would remove more than 10 % of the stored people, or more than 500,
 * stops before committing those removals and fails with `mass-removal`.
 */
export const DEFAULT_REMOVAL_GUARD = Object.freeze({ maxPercent: 10, maxCount: 500, allow: false });

/** Why the session could not start (bad state file, incompatible component...). */
export class SetupError extends Error {}

/** Refuse a component this host was not written for, before running anything. */
export function checkCompatible(info, features) {
  if (!SUPPORTED_WIT.test(info.witVersion)) {
    throw new SetupError(
      `the component implements m365sync:engine@${info.witVersion}; this host supports 0.6.x only`,
    );
  }
  const missing = Object.keys(features).filter((f) => features[f] && !info.features[f]);
  if (missing.length) {
    throw new SetupError(`the component does not implement the features ${missing.join(', ')}`);
  }
}

/** The engine's log lines and progress on stderr, by verbosity. */
function stderrSink(tenantKey, verbosity) {
  const shown = { error: 0, warn: 0, info: 1, debug: 2, trace: 3 };
  return {
    log(level, message) {
      if (shown[level] <= verbosity) process.stderr.write(`[${tenantKey}] ${level}: ${message}\n`);
    },
    progress(phase, done, total) {
      if (verbosity >= 2) {
        process.stderr.write(`[${tenantKey}] progress ${phase}: ${done}${total === undefined ? '' : ` of ${total}`}\n`);
      }
    },
  };
}

/**
 * @param {object} config what main.js parsed (plain data: it crosses to the worker)
 * @param {(message: object) => void} emit
 */
export async function runSession(config, emit) {
  let runtime;
  let store;
  let allowlist;
  try {
    runtime = await EngineRuntime.load(config.generatedDir, config.limits);
    const info = await runtime.info();
    emit({ type: 'info', info });
    checkCompatible(info, config.features);
    allowlist = new Allowlist({ api: [config.endpoints.login, config.endpoints.graph], downloads: config.downloads });
    // The store is scoped to this tenant: the sandbox sees no other tenant's records.
    store = PlatformStore.open(config.state).forTenant(config.tenantKey);
  } catch (error) {
    emit({ type: 'setup-error', message: error?.message ?? String(error) });
    return;
  }

  const run = {
    tenant: {
      key: config.tenantKey,
      tenantId: config.tenantId,
      clientId: config.clientId,
      cloud: config.cloud,
      endpoints: config.endpoints,
      // How the app signs in: its client secret, or a client assertion this host makes.
      credential: credentialKind(config.assertion),
    },
    options: {
      mode: 'full',
      features: config.features,
      filter: { domains: ['*'], licensedOnly: false, enabledOnly: false, includeGuests: true, attributes: [] },
      matchKey: 'email',
      removal: 'keep',
      removalGuard: { ...DEFAULT_REMOVAL_GUARD },
      fieldMap: [],
      usagePeriods: new Uint16Array(config.periods),
      dryRun: false,
    },
    allowlist,
    // This tenant's secrets only: it reads this tenant's source and nothing else.
    secrets: new TenantSecrets(config.secret ?? {}),
    // This tenant's client assertions, for its own token endpoint only.
    credentials: new TenantCredentials(config.assertion, {
      clientId: config.clientId,
      audience: tokenEndpoint(config.endpoints.login, config.tenantId),
      tenantKey: config.tenantKey,
    }),
  };
  const sink = stderrSink(config.tenantKey, config.verbosity);

  for (const mode of config.modes) {
    run.options.mode = mode;
    emit({ type: 'start', mode });
    try {
      // One sandbox (a fresh instance) per run.
      const report = await runtime.sync(run, store, sink);
      emit({ type: 'report', report });
    } catch (error) {
      if (!(error instanceof RunError)) throw error;
      // A failed sync still says what it did until then: its report goes to the sync log.
      emit({ type: 'failed', kind: error.kind, message: error.message, report: error.report });
      return;
    }
  }
}
