// The embedding runtime: the transpiled component's core modules compiled once, and a
// fresh instance (a sandbox) per call, with its own imports: outgoing HTTP through the
// allowlist, one tenant's secrets and client assertions, that tenant's storage, and a log
// sink.
//
// jco (`--instantiation async`) generates `instantiate(getCoreModule, imports,
// instantiateCore)`; everything of an instance (its memories, its resource tables) lives
// inside that call, so instances are independent. Imports must be synchronous. A `result`
// error comes back as a thrown ComponentError whose `payload` is the WIT error value; any
// other exception is a trap, after which the instance is dead ("cannot enter component
// instance"): take a new one.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import * as wasi from '@bytecodealliance/preview2-shim';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';

import { syncErrorText } from './report.js';

/** Why a call failed: the engine's own error (`kind` names its case), or the sandbox's. */
export class RunError extends Error {
  /**
   * @param {string} kind a sync-error case ("auth", "http", ...) or "memory-limit",
   *   "deadline", "crashed"
   * @param {string} message
   * @param {object} [engineError] the WIT `sync-error` value, when the engine returned one
   * @param {object} [report] the WIT `sync-report` of what a failed sync did until it failed
   *   (`sync-failure.report`), for the host's sync log
   */
  constructor(kind, message, engineError, report) {
    super(message);
    this.kind = kind;
    this.engineError = engineError;
    this.report = report;
  }
}

/** Thrown from inside an import to stop a run that broke its limits (traps the instance). */
class LimitBroken extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

/** Limits applied to every call. Node itself enforces none on a component. */
export const DEFAULT_LIMITS = {
  /** Linear memory a sandbox may use, checked whenever the component calls the host. */
  memoryBytes: 256 * 1024 * 1024,
  /** Wall-clock budget of one call, checked whenever the component calls the host. */
  timeoutMs: 30 * 60 * 1000,
};

export class EngineRuntime {
  #instantiate;
  #modules;

  /**
   * Load a component transpiled by `jco transpile --instantiation async --name engine`.
   * @param {string} dir the transpiled output (engine.js and its .core*.wasm files)
   */
  static async load(dir, limits = DEFAULT_LIMITS) {
    const generated = await import(pathToFileURL(join(dir, 'engine.js')).href);
    const modules = new Map();
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.wasm'))) {
      modules.set(file, await WebAssembly.compile(readFileSync(join(dir, file))));
    }
    return new EngineRuntime(generated.instantiate, modules, limits);
  }

  constructor(instantiate, modules, limits) {
    this.#instantiate = instantiate;
    this.#modules = modules;
    this.limits = limits;
  }

  /**
   * A new sandbox for one call: a fresh instance with these capabilities.
   * @param {object} capabilities
   * @param {import('./allowlist.js').Allowlist|null} capabilities.allowlist null: no HTTP
   * @param {import('./secrets.js').TenantSecrets|null} capabilities.secrets
   * @param {import('./credentials.js').TenantCredentials|null} capabilities.credentials
   * @param {import('./storage.js').TenantStore|null} capabilities.store
   * @param {{ log(level, message), progress(phase, done, total) }} capabilities.sink
   * @param {string} capabilities.tenantKey
   */
  async #sandbox({ allowlist = null, secrets = null, credentials = null, store = null, sink = quietSink, tenantKey = '(none)' }, limits) {
    const memories = [];
    const deadline = Date.now() + limits.timeoutMs;
    const check = () => {
      for (const memory of memories) {
        if (memory.buffer.byteLength > limits.memoryBytes) {
          throw new LimitBroken('memory-limit', `tenant ${tenantKey}: the component uses ${memory.buffer.byteLength} bytes of memory, over its limit of ${limits.memoryBytes} bytes`);
        }
      }
      if (Date.now() > deadline) {
        throw new LimitBroken('deadline', `tenant ${tenantKey}: the run took longer than its budget of ${limits.timeoutMs / 1000} s`);
      }
    };
    const guarded = (fn) => (...args) => {
      check();
      return fn(...args);
    };

    // WASI as the shim provides it, but with no environment variables, arguments, files or
    // sockets of the host process: the component needs none of them.
    const shim = new WASIShim({
      sandbox: { env: {}, args: ['m365sync-engine'], preopens: {}, enableNetwork: false },
    });
    const imports = shim.getImportObject();
    const denied = (refusal) => sink.log('warn', `refused a request the allowlist does not permit: ${refusal}`);
    const http = allowlist
      ? allowlist.outgoingHandler(wasi.http.outgoingHandler, denied)
      : { handle: () => { throw { tag: 'HTTP-request-denied' }; } };
    imports['wasi:http/outgoing-handler'] = { handle: guarded(http.handle) };
    imports['m365sync:engine/types'] = {};
    imports['m365sync:engine/secrets'] = {
      get: guarded((name) => {
        if (!secrets) throw { tag: 'not-found', val: `no secrets are available to this call (${name})` };
        return secrets.get(name);
      }),
    };
    imports['m365sync:engine/credentials'] = {
      clientAssertion: guarded((audience) => {
        if (!credentials) throw { tag: 'not-configured', val: 'no client assertions are available to this call' };
        return credentials.clientAssertion(audience);
      }),
    };
    const redact = (message) => {
      let out = secrets ? secrets.redact(message) : message;
      if (credentials) out = credentials.redact(out);
      return out;
    };
    const storage = store ? store.imports() : noStorage();
    imports['m365sync:engine/storage'] = Object.fromEntries(
      Object.entries(storage).map(([name, fn]) => [name, guarded(fn)]),
    );
    imports['m365sync:engine/log'] = {
      log: guarded((level, message) => sink.log(level, redact(message))),
      progress: guarded((phase, done, total) => sink.progress(phase, done, total)),
    };

    const root = await this.#instantiate(
      (name) => {
        const module = this.#modules.get(name);
        if (!module) throw new Error(`the transpiled component has no ${name}`);
        return module;
      },
      imports,
      async (module, coreImports) => {
        const instance = await WebAssembly.instantiate(module, coreImports);
        for (const value of Object.values(instance.exports)) {
          if (value instanceof WebAssembly.Memory) memories.push(value);
        }
        return instance;
      },
    );
    return { engine: root.engine, tenantKey };
  }

  /** Run `call(engine)` in a new sandbox and translate how it ended. */
  async #call(name, capabilities, call, limits = this.limits) {
    const sandbox = await this.#sandbox(capabilities, limits);
    try {
      return call(sandbox.engine);
    } catch (error) {
      if (error && Object.prototype.hasOwnProperty.call(error, 'payload')) {
        // `sync` fails with a `sync-failure` ({ error, report }); the other calls with a
        // plain `sync-error`.
        const failure = error.payload?.error?.tag ? error.payload : { error: error.payload, report: undefined };
        if (failure.error?.tag) {
          throw new RunError(failure.error.tag, `tenant ${sandbox.tenantKey}: ${syncErrorText(failure.error)}`, failure.error, failure.report);
        }
      }
      if (error instanceof LimitBroken) throw new RunError(error.kind, error.message);
      // A trap (or an exception thrown by an import): this instance is dead; the next call
      // gets a new one.
      throw new RunError('crashed', `tenant ${sandbox.tenantKey}: the engine crashed in ${name}: ${error?.message ?? error}`);
    }
  }

  /** The component's versions and implemented features (`info`). */
  info() {
    return this.#call('info', {}, (engine) => engine.info());
  }

  /** The permissions the features need (`required-permissions`). */
  requiredPermissions(features) {
    return this.#call('required-permissions', {}, (engine) => engine.requiredPermissions(features));
  }

  /** The field map a run uses (`field-map`). */
  fieldMap(overrides) {
    return this.#call('field-map', {}, (engine) => engine.fieldMap(overrides));
  }

  /** Sign in and compare granted roles with what the features need (`check-permissions`). */
  checkPermissions(run, sink) {
    return this.#call('check-permissions', capabilitiesOf(run, null, sink), (engine) =>
      engine.checkPermissions(run.tenant, run.options.features));
  }

  /** One sync of one tenant into `store` (`sync`). */
  sync(run, store, sink, limits = this.limits) {
    return this.#call('sync', capabilitiesOf(run, store, sink), (engine) =>
      engine.sync({ tenant: run.tenant, options: run.options }), limits);
  }

  /** What a sync would do, account by account, committing nothing (`preview`). */
  preview(run, store, sink) {
    return this.#call('preview', capabilitiesOf(run, store, sink), (engine) =>
      engine.preview({ tenant: run.tenant, options: run.options }));
  }

  /** The tenant's organization match (`review-organization`). */
  reviewOrganization(run, store, sink) {
    return this.#call('review-organization', capabilitiesOf(run, store, sink), (engine) =>
      engine.reviewOrganization(run.tenant));
  }

  /** Apply a review decision (`decide-organization`). */
  decideOrganization(run, action, store, sink) {
    return this.#call('decide-organization', capabilitiesOf(run, store, sink), (engine) =>
      engine.decideOrganization(run.tenant, action));
  }

  /** The partner tenant's delegated admin relationships (`partner-relationships`, WIT 0.6). */
  partnerRelationships(run, sink) {
    return this.#call('partner-relationships', capabilitiesOf(run, null, sink), (engine) =>
      engine.partnerRelationships(run.tenant));
  }

  /** The credentials of the tenant's own app registration (`app-credentials`, WIT 0.6). */
  appCredentials(run, sink) {
    return this.#call('app-credentials', capabilitiesOf(run, null, sink), (engine) =>
      engine.appCredentials(run.tenant));
  }
}

function capabilitiesOf(run, store, sink) {
  return {
    allowlist: run.allowlist,
    secrets: run.secrets,
    credentials: run.credentials ?? null,
    store,
    sink: sink ?? quietSink,
    tenantKey: run.tenant.key,
  };
}

const quietSink = { log() {}, progress() {} };

/** Storage for calls that need none: every call is refused. */
function noStorage() {
  const refuse = () => {
    throw { tag: 'unavailable', val: 'this call has no storage' };
  };
  return {
    getCheckpoint: refuse,
    findPeople: refuse,
    findDirectReports: refuse,
    listPeopleIds: refuse,
    commit: refuse,
    listOrganizations: refuse,
    createOrganization: refuse,
    getDecision: refuse,
    putDecision: refuse,
  };
}
