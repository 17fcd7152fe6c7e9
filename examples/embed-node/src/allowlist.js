// `wasi:http/outgoing-handler` with an allowlist. The shim (preview2-shim) sends any
// request a component makes; it has no hook to refuse one. So the host maps the import to
// this wrapper: it looks at the request the component built (scheme, authority, method,
// headers) and either delegates to the shim's handler or throws the WASI error code
// `HTTP-request-denied`, before any connection is opened.
//
// What may be reached (the same rule as the Rust host, host/src/capabilities/http.rs):
// - the origins of the tenant's sign-in and Graph endpoints: any request;
// - report download hosts (Graph redirects usage reports to pre-authenticated URLs there):
//   a GET without credentials only (no Authorization, no Cookie), so a bearer token can
//   never leave for them.

/** `scheme://host:port`, lower case, default port filled in, trailing dot dropped. */
export function origin(scheme, host, port) {
  const s = scheme.toLowerCase();
  const h = host.replace(/\.$/, '').toLowerCase();
  const p = port === undefined || port === '' ? (s === 'http' ? 80 : 443) : Number(port);
  return `${s}://${h}:${p}`;
}

/**
 * The origin of a base URL (`https://graph.microsoft.com`, `http://127.0.0.1:8080`).
 * Throws, naming the URL, when it is not an absolute http(s) URL without a path or query.
 */
export function baseUrlOrigin(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`${JSON.stringify(url)} is not a URL`);
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  if (scheme !== 'https' && scheme !== 'http') {
    throw new Error(`${JSON.stringify(url)} must use https (or http for a local simulator)`);
  }
  if ((parsed.pathname !== '' && parsed.pathname !== '/') || parsed.search || parsed.hash) {
    throw new Error(`${JSON.stringify(url)} must be a base URL without a path or query`);
  }
  if (parsed.username || parsed.password) {
    throw new Error(`${JSON.stringify(url)} must not carry credentials`);
  }
  return origin(scheme, parsed.hostname, parsed.port);
}

/** Split a request authority (`host`, `host:port`, `[v6]:port`) into host and port. */
function splitAuthority(authority) {
  const v6 = authority.match(/^(\[[^\]]*\])(?::(\d+))?$/);
  if (v6) return [v6[1], v6[2]];
  const colon = authority.lastIndexOf(':');
  if (colon < 0) return [authority, undefined];
  return [authority.slice(0, colon), authority.slice(colon + 1)];
}

export class Allowlist {
  /**
   * @param {{ api: string[], downloads?: string[] }} urls base URLs: the tenant's login and
   *   Graph endpoints (`api`) and the report download hosts (`downloads`)
   */
  constructor({ api, downloads = [] }) {
    this.api = new Set(api.map(baseUrlOrigin));
    this.downloads = new Set(downloads.map(baseUrlOrigin).filter((o) => !this.api.has(o)));
  }

  /**
   * Why a request may not be sent, or null when it may.
   * @param {string} scheme "http" or "https"
   * @param {string|undefined} authority as the component set it
   * @param {string} method upper case
   * @param {boolean} hasCredentials an Authorization or Cookie header is set
   */
  refusal(scheme, authority, method, hasCredentials) {
    if (!authority) return '(no host)';
    const [host, port] = splitAuthority(authority);
    const o = origin(scheme, host, port);
    if (this.api.has(o)) return null;
    if (this.downloads.has(o)) {
      if (method !== 'GET') return `${authority} (a report download host takes only GET)`;
      if (hasCredentials) return `${authority} (a report download host is never sent credentials)`;
      return null;
    }
    return authority;
  }

  /**
   * The `wasi:http/outgoing-handler` import: checks each request, then hands it to `inner`
   * (the shim's handler). `onDenied(refusal)` is told about each refusal (for the log).
   */
  outgoingHandler(inner, onDenied = () => {}) {
    return {
      handle: (request, options) => {
        const scheme = request.scheme();
        const schemeName = scheme === undefined ? 'https' : scheme.tag === 'other' ? scheme.val : scheme.tag;
        const method = request.method();
        const methodName = (method.tag === 'other' ? method.val : method.tag).toUpperCase();
        const headers = request.headers();
        const hasCredentials =
          headers.get('authorization').length > 0 || headers.get('cookie').length > 0;
        const refused = this.refusal(schemeName, request.authority(), methodName, hasCredentials);
        if (refused !== null) {
          onDenied(refused);
          // The WASI error code; the engine turns it into sync-error.host-denied.
          throw { tag: 'HTTP-request-denied' };
        }
        return inner.handle(request, options);
      },
    };
  }
}
