// `m365sync:engine/credentials` (WIT 0.6): client assertions for the one tenant a sandbox
// runs for. The certificate's private key and the federated token stay in this host: the
// engine gets one assertion for the one token request it makes, and asks again for the next.
//
// - `certificate: { key_file, certificate_file }`: a JWT signed here with the app's
//   certificate key, as Microsoft's "certificate credentials" page describes it
//   (MicrosoftDocs/entra-docs: docs/identity-platform/certificate-credentials.md): header
//   `alg` PS256 ("Should be PS256"; "Use PSS padding"), `typ` JWT, `x5t#S256` (base64url
//   SHA-256 of the certificate's DER); claims `aud` (the token endpoint), `iss` = `sub` = the
//   client id, a random `jti`, `nbf` = `iat` = now, `exp` ten minutes on ("5-10 minutes
//   after nbf at most").
// - `federated_token_file`: a token another identity provider issued (workload identity
//   federation), read again for every request (whatever writes the file renews it) and
//   handed over trimmed.
//
// Both files are read when the engine asks, so a rotated key or a renewed token is picked
// up. Errors name the file and what went wrong, never a key or a token. The host signs only
// for its tenant's token endpoint.

import { X509Certificate, constants, createHash, createPrivateKey, randomUUID, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** How long a signed assertion is valid, in seconds. */
export const ASSERTION_LIFETIME_SECS = 600;

/** Base64url without padding (RFC 7515, 2). */
export function base64url(data) {
  return Buffer.from(data).toString('base64url');
}

/** RFC 3986 percent-encoding of one path segment (unreserved characters as they are). */
function pathSegment(value) {
  return Array.from(new TextEncoder().encode(value), (b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
}

/** `{login}/{tenant-id}/oauth2/v2.0/token`, as the engine spells it. */
export function tokenEndpoint(login, tenantId) {
  return `${login.replace(/\/$/, '')}/${pathSegment(tenantId)}/oauth2/v2.0/token`;
}

/** The credential kind the tenant record says (`tenant.credential`). */
export function credentialKind(source) {
  return source?.certificate || source?.federated_token_file ? 'client-assertion' : 'client-secret';
}

const unreadable = (val) => ({ tag: 'unreadable', val });

function readText(path, what) {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw unreadable(`${what} ${path}: ${error.code ?? 'cannot be read'}`);
  }
}

/**
 * Sign a client assertion for `audience` with the certificate and key in these PEM files.
 * @returns {string} header.claims.signature
 */
export function signAssertion({ keyFile, certificateFile, clientId, audience, now = Date.now() }) {
  let certificate;
  try {
    certificate = new X509Certificate(readText(certificateFile, 'certificate file'));
  } catch (error) {
    if (error?.tag) throw error;
    throw unreadable(`certificate file ${certificateFile}: not a PEM X.509 certificate`);
  }
  let key;
  try {
    key = createPrivateKey(readText(keyFile, 'key file'));
  } catch (error) {
    if (error?.tag) throw error;
    // Node's message could describe the key's contents: say only what the file is not.
    throw unreadable(`key file ${keyFile}: not a PEM private key (PKCS#8 or PKCS#1)`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw unreadable(`key file ${keyFile}: a ${key.asymmetricKeyType} key; PS256 needs an RSA key`);
  }
  if (!certificate.checkPrivateKey(key)) {
    throw unreadable(`key file ${keyFile} is not the private key of certificate file ${certificateFile}`);
  }
  const seconds = Math.floor(now / 1000);
  if (Date.parse(certificate.validTo) <= now) {
    throw unreadable(`certificate file ${certificateFile} expired on ${certificate.validTo}: register a new certificate on the app and configure it here`);
  }
  const header = {
    alg: 'PS256',
    typ: 'JWT',
    'x5t#S256': base64url(createHash('sha256').update(certificate.raw).digest()),
  };
  const claims = {
    aud: audience,
    iss: clientId,
    sub: clientId,
    jti: randomUUID(),
    nbf: seconds,
    iat: seconds,
    exp: seconds + ASSERTION_LIFETIME_SECS,
  };
  const signed = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  // RFC 7518, 3.5: PS256 is RSASSA-PSS with SHA-256, MGF1 with SHA-256, and a salt as long
  // as the hash.
  const signature = sign('sha256', Buffer.from(signed), {
    key,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
  });
  return `${signed}.${base64url(signature)}`;
}

export class TenantCredentials {
  /**
   * @param {{ certificate?: { key_file: string, certificate_file: string },
   *           federated_token_file?: string }} source this tenant's assertion credential
   * @param {{ clientId: string, audience: string, tenantKey?: string }} tenant the app, and
   *   the token endpoint it signs in at: the only audience this host signs for
   */
  constructor(source, { clientId, audience, tenantKey = 'this tenant' }) {
    this.source = source ?? {};
    this.clientId = clientId;
    this.audience = audience;
    this.tenantKey = tenantKey;
    /** Assertions handed out, so a log line that contained one could be redacted. */
    this.handedOut = new Set();
  }

  /** The import: an assertion, or throws a `credential-error` (a plain object). */
  clientAssertion(audience) {
    const { certificate, federated_token_file: tokenFile } = this.source;
    if (!certificate && !tokenFile) {
      throw { tag: 'not-configured', val: `tenant ${this.tenantKey} has no certificate and no federated_token_file` };
    }
    if (audience !== this.audience) {
      throw unreadable(`refused to make an assertion for ${JSON.stringify(audience)}: the token endpoint of tenant ${this.tenantKey} is ${this.audience}`);
    }
    let assertion;
    try {
      if (certificate) {
        assertion = signAssertion({
          keyFile: certificate.key_file,
          certificateFile: certificate.certificate_file,
          clientId: this.clientId,
          audience,
        });
      } else {
        assertion = readText(tokenFile, 'federated token file').trim();
        if (assertion === '') throw unreadable(`federated token file ${tokenFile} is empty`);
      }
    } catch (error) {
      // A thrown Error would trap the sandbox: every failure is a `credential-error`.
      if (error?.tag) throw error;
      throw unreadable(`signing the client assertion of tenant ${this.tenantKey} failed: ${error?.code ?? 'error'}`);
    }
    this.handedOut.add(assertion);
    return assertion;
  }

  /** Replace any assertion handed out by "[redacted]": a safety net for log lines. */
  redact(text) {
    let out = text;
    for (const value of this.handedOut) out = out.split(value).join('[redacted]');
    return out;
  }
}
