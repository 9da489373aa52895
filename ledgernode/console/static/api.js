// The node's JSON API (docs/protocol.md), and live updates: the event stream when the
// node offers it (GET /v1/events) and its reads are open, else polling /v1/status (which
// a node whose reads are authenticated still answers everyone: an EventSource cannot sign).

export const POLL_MS = 2000;
const RECONNECT_MS = 3000;

export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

import {keyId, signedHeaders} from './signer.js';

// Routes every node answers to anyone, whatever its reads (api/auth.py OPEN_ROUTES).
const OPEN_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/v1/status', '/v1/genesis', '/v1/openapi.json', '/']);
let readsMode = null;  // a promise of this node's "reads": "open" or "authenticated"

function reads() {
  if (!readsMode) {
    readsMode = fetch('/v1/status', {headers: {Accept: 'application/json'}})
      .then((r) => r.json()).then((d) => d.reads || 'open').catch(() => 'open');
  }
  return readsMode;
}

// GET a path, signed once the console is unlocked (signer.js).
export function signedFetch(path, accept) {
  return fetch(path, {headers: {Accept: accept, ...signedHeaders('GET', path)}});
}

export async function getJson(path) {
  // Locked on a node whose reads are authenticated: say so, rather than send a read it refuses.
  if (!keyId() && !OPEN_PATHS.has(new URL(path, location.origin).pathname) && await reads() === 'authenticated') {
    throw new ApiFailure(401, 'unauthenticated', "this node's reads are authenticated: unlock with a registered key file");
  }
  const resp = await signedFetch(path, 'application/json');
  let doc = null;
  try { doc = await resp.json(); } catch { doc = null; }
  if (!resp.ok) {
    const err = (doc && doc.error) || {};
    throw new ApiFailure(resp.status, err.code || 'http_' + resp.status, err.message || resp.statusText);
  }
  return doc;
}

export const seg = (text) => encodeURIComponent(text);

export const isRecordId = (text) => /^[0-9a-f]{64}$/.test(text);

// Calls `onChange(status)` whenever the head moves (and once at start), and
// `onStatus(status)` on every status read. Events from the stream trigger a status read
// at once; without a stream, a timer does.
export class Live {
  constructor() {
    this.listeners = new Set();
    this.status = null;
    this.source = null;
    this.mode = 'starting';
    this.timer = null;
    this.reading = false;
  }

  subscribe(fn) {
    this.listeners.add(fn);
    if (this.status) fn(this.status, null);
    return () => this.listeners.delete(fn);
  }

  async start() {
    await this.read();
    this.timer = setInterval(() => this.read(), POLL_MS);
    let streams = false;
    try {
      const spec = await getJson('/v1/openapi.json');
      streams = Boolean(spec.paths && spec.paths['/v1/events']);
    } catch { streams = false; }
    if (streams && !(this.status && this.status.reads === 'authenticated')) this.openStream();
    else this.mode = 'polling';
  }

  openStream() {
    this.source = new EventSource('/v1/events');
    this.mode = 'stream';
    const nudge = (event) => this.read(event);
    this.source.addEventListener('block', nudge);
    this.source.addEventListener('record', nudge);
    this.source.addEventListener('cutoff', () => this.restream());
    this.source.onerror = () => { this.mode = 'polling'; };
    this.source.onopen = () => { this.mode = 'stream'; };
  }

  restream() {
    if (this.source) this.source.close();
    this.mode = 'polling';
    setTimeout(() => this.openStream(), RECONNECT_MS);
  }

  async read(event) {
    if (this.reading) return;
    this.reading = true;
    try {
      const status = await getJson('/v1/status');
      const before = this.status;
      this.status = status;
      for (const fn of this.listeners) fn(status, before, event || null);
    } catch {
      this.mode = 'offline';
    } finally {
      this.reading = false;
    }
  }
}
