#!/usr/bin/env node
// A second host for the m365sync engine, in Node.js: the same component the Rust host
// runs, transpiled by jco, with outgoing HTTP from preview2-shim behind an allowlist, and
// the engine's secrets, storage and log imports written here in JavaScript.
//
// It runs a full and then an incremental sync of one tenant (or one of them, --mode) and
// prints the report as the Rust host does (--json: the reports as a JSON array).
//
//   node main.js --login http://127.0.0.1:PORT --graph http://127.0.0.1:PORT2 \
//     --download http://127.0.0.2:PORT3 --tenant-id ID --client-id ID \
//     --secret-env M365SYNC_CLIENT_SECRET --state state.json
//
// Instead of a client secret the app can sign in with a client assertion this host makes:
// --certificate FILE --certificate-key FILE (a JWT signed with the app's certificate key),
// or --federated-token-file FILE (workload identity federation).
//
// The session runs in a worker thread: Node enforces no CPU or memory limit on a
// component, so this thread terminates the worker when a run overruns its budget.
//
// Exit codes: 0 success, 1 a run failed, 2 bad arguments, setup or an incompatible component.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

import { toJson, toText } from './src/report.js';
import { ensureTranspiled } from './transpile.js';

const CLOUDS = {
  global: { login: 'https://login.microsoftonline.com', graph: 'https://graph.microsoft.com', downloads: ['https://reports.office.com'] },
  'us-gov': { login: 'https://login.microsoftonline.us', graph: 'https://graph.microsoft.us', downloads: [] },
  'us-gov-dod': { login: 'https://login.microsoftonline.us', graph: 'https://dod-graph.microsoft.us', downloads: [] },
  china: { login: 'https://login.chinacloudapi.cn', graph: 'https://microsoftgraph.chinacloudapi.cn', downloads: [] },
};

const FEATURES = {
  users: 'users',
  managers: 'managers',
  'sign-in-activity': 'signInActivity',
  groups: 'groups',
  licences: 'licences',
  organization: 'organization',
  mailboxes: 'mailboxes',
  'usage-reports': 'usageReports',
};

const USAGE = `Usage: node main.js [options]

Runs a full and then an incremental sync of one tenant through the m365sync engine
component, and prints each run's report.

  --login URL          identity platform base URL (default: the cloud's)
  --graph URL          Microsoft Graph base URL (default: the cloud's)
  --download URL       a report download host, for credential-free GETs (repeatable;
                       default: the cloud's, https://reports.office.com for global)
  --cloud NAME         global (default), us-gov, us-gov-dod, china
  --tenant-id ID       directory (tenant) id or a verified domain (required)
  --client-id ID       application (client) id (required)
  --secret-env NAME    environment variable holding the client secret
                       (default M365SYNC_CLIENT_SECRET)
  --secret-file PATH   file holding the client secret (instead of --secret-env)
  --certificate PATH   the app's certificate (PEM), registered on the app: sign in with
                       client assertions signed with its key instead of a secret
  --certificate-key PATH
                       the certificate's private key (PEM, PKCS#8); read by this host
                       only, for each token request
  --federated-token-file PATH
                       sign in with the token in this file (workload identity
                       federation), read again for each token request
  --state FILE         JSON state file (default: keep everything in memory)
  --tenant-key KEY     the host's name for the tenant (default "example")
  --mode MODE          both (default: full, then incremental), full, incremental
  --features LIST      comma-separated: users (default), managers, sign-in-activity,
                       groups, licences, organization, mailboxes, usage-reports
  --usage-period DAYS  usage report period: 7, 30 (default), 90, 180 (repeatable)
  --component PATH     the engine component (.wasm) to transpile and run
                       (default: $M365SYNC_COMPONENT, else the Rust build's)
  --generated DIR      where the transpiled component goes (default: generated/);
                       with --no-transpile, a directory jco already wrote
  --no-transpile       use --generated as it is (jco transpile --instantiation async
                       --name engine), without checking it against the component
  --timeout-secs N     wall-clock budget of one run (default 1800)
  --memory-mib N       linear memory budget of one run (default 256)
  --json               print the reports as a JSON array instead of text
  -v, --verbose        the engine's log on stderr (-v info, -vv debug, with progress)
  -h, --help           this text
`;

class UsageError extends Error {}

/** Where the client secret is: none when the app signs in with a client assertion. */
function secretSource(values, assertion) {
  if (assertion) return null;
  if (values['secret-file']) return { file: values['secret-file'] };
  return { env: values['secret-env'] ?? 'M365SYNC_CLIENT_SECRET' };
}

function parse(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      login: { type: 'string' },
      graph: { type: 'string' },
      download: { type: 'string', multiple: true },
      cloud: { type: 'string', default: 'global' },
      'tenant-id': { type: 'string' },
      'client-id': { type: 'string' },
      'secret-env': { type: 'string' },
      'secret-file': { type: 'string' },
      certificate: { type: 'string' },
      'certificate-key': { type: 'string' },
      'federated-token-file': { type: 'string' },
      state: { type: 'string' },
      'tenant-key': { type: 'string', default: 'example' },
      mode: { type: 'string', default: 'both' },
      features: { type: 'string', default: 'users' },
      'usage-period': { type: 'string', multiple: true },
      component: { type: 'string' },
      generated: { type: 'string' },
      'no-transpile': { type: 'boolean', default: false },
      'timeout-secs': { type: 'string', default: '1800' },
      'memory-mib': { type: 'string', default: '256' },
      json: { type: 'boolean', default: false },
      verbose: { type: 'boolean', short: 'v', multiple: true },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return { help: true };
  const cloud = CLOUDS[values.cloud];
  if (!cloud) throw new UsageError(`--cloud ${values.cloud}: expected one of ${Object.keys(CLOUDS).join(', ')}`);
  for (const required of ['tenant-id', 'client-id']) {
    if (!values[required]?.trim()) throw new UsageError(`--${required} is required`);
  }
  if (values['no-transpile'] && !values.generated) {
    throw new UsageError('--no-transpile needs --generated DIR');
  }
  if (values['secret-env'] && values['secret-file']) {
    throw new UsageError('give --secret-env or --secret-file, not both');
  }
  if (Boolean(values.certificate) !== Boolean(values['certificate-key'])) {
    throw new UsageError('--certificate and --certificate-key go together');
  }
  const federated = values['federated-token-file'];
  if (values.certificate && federated) {
    throw new UsageError('give --certificate or --federated-token-file, not both');
  }
  const assertion = values.certificate
    ? { certificate: { certificate_file: resolve(values.certificate), key_file: resolve(values['certificate-key']) } }
    : federated ? { federated_token_file: resolve(federated) } : null;
  if (assertion && (values['secret-env'] || values['secret-file'])) {
    throw new UsageError('a client secret (--secret-env, --secret-file) or a client assertion (--certificate, --federated-token-file), not both');
  }
  const modes = { both: ['full', 'incremental'], full: ['full'], incremental: ['incremental'] }[values.mode];
  if (!modes) throw new UsageError(`--mode ${values.mode}: expected both, full or incremental`);
  const features = {};
  for (const name of values.features.split(',').map((f) => f.trim()).filter(Boolean)) {
    if (!FEATURES[name]) throw new UsageError(`--features: unknown feature ${JSON.stringify(name)}`);
    features[FEATURES[name]] = true;
  }
  const periods = (values['usage-period'] ?? ['30']).map(Number);
  if (periods.some((p) => ![7, 30, 90, 180].includes(p))) {
    throw new UsageError('--usage-period: expected 7, 30, 90 or 180');
  }
  const positive = (name) => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name}: expected a positive number`);
    return n;
  };
  return {
    endpoints: { login: values.login ?? cloud.login, graph: values.graph ?? cloud.graph },
    downloads: values.download ?? cloud.downloads,
    cloud: values.cloud,
    tenantId: values['tenant-id'].trim(),
    clientId: values['client-id'].trim(),
    secret: secretSource(values, assertion),
    assertion,
    state: values.state ?? null,
    tenantKey: values['tenant-key'],
    modes,
    features,
    periods,
    component: values.component,
    generated: values.generated ? resolve(values.generated) : undefined,
    noTranspile: values['no-transpile'],
    limits: {
      timeoutMs: positive('timeout-secs') * 1000,
      memoryBytes: positive('memory-mib') * 1024 * 1024,
    },
    json: values.json,
    verbosity: values.verbose?.length ?? 0,
  };
}

/**
 * Run the session in a worker thread. A run that overruns its budget (even one blocked in
 * an HTTP request, or spinning in wasm) is stopped by terminating the worker.
 * Resolves to the failure, { kind, message, report? } (report: what a failed sync did until
 * it failed), or null.
 */
function supervise(config, onReport) {
  return new Promise((resolve) => {
    const worker = new Worker(new URL('./src/worker.js', import.meta.url), {
      workerData: config,
      // Bounds the worker's JavaScript heap (the store, the shim). It does not bound the
      // component's linear memory: the runtime checks that at every host call.
      resourceLimits: { maxOldGenerationSizeMb: 1024 },
    });
    let timer = null;
    let failure = null;
    let current = null;
    const finish = (result) => {
      clearTimeout(timer);
      resolve(result);
    };
    worker.on('message', (message) => {
      switch (message.type) {
        case 'info':
          if (config.verbosity > 0) {
            process.stderr.write(`engine ${message.info.engineVersion} (WIT ${message.info.witVersion}) on Node ${process.version}\n`);
          }
          break;
        case 'start':
          current = message.mode;
          clearTimeout(timer);
          timer = setTimeout(() => {
            failure = {
              kind: 'deadline',
              message: `tenant ${config.tenantKey}: the ${current} run took longer than its budget of ${config.limits.timeoutMs / 1000} s and was stopped`,
            };
            worker.terminate();
          }, config.limits.timeoutMs + 1000);
          break;
        case 'report':
          clearTimeout(timer);
          onReport(message.report);
          break;
        case 'failed':
          // `report`: what the failed run did until it failed (the sync-failure's report).
          failure = { kind: message.kind, message: message.message, report: message.report };
          break;
        case 'setup-error':
          failure = { kind: 'setup', message: message.message };
          break;
        default:
          break;
      }
    });
    worker.on('error', (error) => {
      failure ??= {
        kind: error?.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'memory-limit' : 'crashed',
        message: `tenant ${config.tenantKey}: the host's worker failed: ${error?.message ?? error}`,
      };
    });
    worker.on('exit', () => finish(failure));
  });
}

async function main() {
  let args;
  try {
    args = parse(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`error: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let generatedDir;
  try {
    if (args.noTranspile) {
      if (!existsSync(join(args.generated, 'engine.js'))) {
        throw new Error(`${args.generated} holds no transpiled component (engine.js)`);
      }
      generatedDir = args.generated;
    } else {
      const transpiled = ensureTranspiled({ component: args.component, outDir: args.generated });
      if (transpiled.transpiled) process.stderr.write(`transpiled the component in ${transpiled.ms} ms\n`);
      generatedDir = transpiled.dir;
    }
  } catch (error) {
    process.stderr.write(`error: ${error.message}\n`);
    return 2;
  }

  const reports = [];
  const failure = await supervise({ ...args, generatedDir }, (report) => {
    if (!args.json) process.stdout.write(toText(report));
    reports.push(toJson(report));
  });
  if (failure) {
    process.stderr.write(`error: ${failure.message}\n`);
    if (failure.kind !== 'setup') {
      if (failure.report) {
        // The failed run's own report, with why it failed.
        if (!args.json) process.stdout.write(toText(failure.report));
        reports.push({ ...toJson(failure.report), error: failure.message, error_kind: failure.kind });
      } else {
        reports.push({ tenant: args.tenantKey, error: failure.message, error_kind: failure.kind });
      }
    }
  }
  if (args.json && failure?.kind !== 'setup') process.stdout.write(`${JSON.stringify(reports)}\n`);
  if (!failure) return 0;
  return failure.kind === 'setup' || failure.kind === 'invalid-request' ? 2 : 1;
}

process.exitCode = await main();
