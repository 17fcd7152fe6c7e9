#!/usr/bin/env node
// Transpile the engine component (.wasm) to JavaScript + core WebAssembly with jco, into
// generated/ (gitignored). Skips the work when generated/ already holds this component
// (same SHA-256). `npm run transpile -- --component path/to/m365sync_guest.wasm`.
//
// The component: --component PATH, else $M365SYNC_COMPONENT, else the one the Rust host's
// build made (target/component/wasm32-wasip2/component/m365sync_guest.wasm).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
export const GENERATED = join(HERE, 'generated');
const BUILT = join(HERE, '..', '..', 'target', 'component', 'wasm32-wasip2', 'component', 'm365sync_guest.wasm');
const JCO = join(HERE, 'node_modules', '@bytecodealliance', 'jco', 'dist', 'jco.js');

/** The component to use: an explicit path, $M365SYNC_COMPONENT, or the Rust build's. */
export function componentPath(explicit) {
  return resolve(explicit ?? process.env.M365SYNC_COMPONENT ?? BUILT);
}

/**
 * Make sure `outDir` holds `component` transpiled; returns `{ dir, transpiled, ms }`.
 * @param {{ component?: string, outDir?: string, force?: boolean }} options
 */
export function ensureTranspiled({ component, outDir = GENERATED, force = false } = {}) {
  const wasm = componentPath(component);
  if (!existsSync(wasm)) {
    throw new Error(
      `no component at ${wasm}: build it (cargo build -p m365sync builds it into target/component/) ` +
        'or pass --component PATH',
    );
  }
  if (!existsSync(JCO)) {
    throw new Error(`jco is not installed: run \`npm ci --prefix ${HERE}\``);
  }
  const digest = createHash('sha256').update(readFileSync(wasm)).digest('hex');
  const stamp = join(outDir, 'component.sha256');
  if (!force && existsSync(join(outDir, 'engine.js')) && existsSync(stamp) &&
      readFileSync(stamp, 'utf8').trim() === digest) {
    return { dir: outDir, transpiled: false, ms: 0 };
  }
  if (existsSync(outDir) && readdirSync(outDir).length > 0 && !existsSync(stamp)) {
    // Never wipe a directory this script did not write.
    throw new Error(`refusing to transpile into ${outDir}: it is not empty and holds no earlier transpile`);
  }
  const started = Date.now();
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  // --instantiation async: the host supplies every import per instance (one sandbox per
  // tenant run), nothing is imported from preview2-shim by the generated code itself.
  execFileSync(process.execPath, [
    JCO, 'transpile', wasm, '--out-dir', outDir, '--name', 'engine',
    '--instantiation', 'async', '--no-typescript', '--quiet',
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  writeFileSync(stamp, `${digest}\n`);
  return { dir: outDir, transpiled: true, ms: Date.now() - started };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      component: { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean', default: false },
    },
  });
  try {
    const result = ensureTranspiled({
      component: values.component,
      outDir: values.out ? resolve(values.out) : GENERATED,
      force: values.force,
    });
    console.log(result.transpiled
      ? `transpiled ${componentPath(values.component)} into ${result.dir} in ${result.ms} ms`
      : `${result.dir} already holds ${componentPath(values.component)}`);
  } catch (error) {
    console.error(`error: ${error.message}`);
    process.exit(1);
  }
}
