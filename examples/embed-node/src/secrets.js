// `m365sync:engine/secrets`: the secrets of the one tenant a sandbox runs for.
//
// The value is read when the engine asks (so a rotated secret is picked up by the next
// run) and handed only to the engine; errors name the source (a variable's name, a file's
// path), never the value. The engine asks for one name: "client-secret".

import { readFileSync } from 'node:fs';

export const CLIENT_SECRET = 'client-secret';

export class TenantSecrets {
  /**
   * @param {{ env?: string, file?: string }} source where this tenant's client secret is:
   *   an environment variable's name, or a file (its trailing newline is dropped)
   */
  constructor(source) {
    this.source = source;
    /** Values handed out, so a log line that contained one could be redacted. */
    this.handedOut = new Set();
  }

  describe() {
    if (this.source.env) return `environment variable ${this.source.env}`;
    if (this.source.file) return `file ${this.source.file}`;
    return 'no source';
  }

  /** The import: returns the value, or throws a `secret-error` (a plain object). */
  get(name) {
    if (name !== CLIENT_SECRET) {
      throw { tag: 'not-found', val: `no secret named ${JSON.stringify(name)} is configured for this tenant` };
    }
    let value;
    if (this.source.env) {
      value = process.env[this.source.env];
      if (value === undefined) {
        throw { tag: 'not-found', val: `${CLIENT_SECRET}: environment variable ${this.source.env} is not set` };
      }
    } else if (this.source.file) {
      try {
        value = readFileSync(this.source.file, 'utf8').replace(/[\r\n]+$/, '');
      } catch (error) {
        throw { tag: 'unreadable', val: `${CLIENT_SECRET}: cannot read ${this.source.file}: ${error.code ?? 'error'}` };
      }
    } else {
      throw { tag: 'not-found', val: `${CLIENT_SECRET}: no source is configured for this tenant` };
    }
    if (value.trim() === '') {
      throw { tag: 'not-found', val: `${CLIENT_SECRET}: ${this.describe()} is empty` };
    }
    this.handedOut.add(value);
    return value;
  }

  /**
   * Replace any secret value this run handed out by "[redacted]": a safety net for log
   * lines (the engine never logs a secret). Values shorter than 8 characters are left
   * alone: they would redact ordinary words, and no real client secret is that short.
   */
  redact(text) {
    let out = text;
    for (const value of this.handedOut) {
      if (value.length >= 8) out = out.split(value).join('[redacted]');
    }
    return out;
  }
}
