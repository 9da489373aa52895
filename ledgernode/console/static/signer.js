// Signed reads from the console (docs/security.md section 9): once unlocked with a
// registered key's file (PEM PKCS#8, as `ledgernode keygen` writes it), every API read is
// signed with HTTP Message Signatures over method, path and query, exactly as
// ledgernode/httpsig.py builds the signature base. The key stays in this page's memory:
// it is never stored, and it is gone when the page is closed or reloaded.

import { publicFromSeed, sign } from './verify/ed25519.js';
import { sha256 } from './verify/sha256.js';

const LABEL = 'rd';
const PKCS8_ED25519_PREFIX = '302e020100300506032b657004220420';  // then the 32-byte seed
const PEM_MAX_CHARS = 4096;
const encoder = new TextEncoder();

let unlocked = null;  // {seed, keyId}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

function b64(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

function der(pem) {
  const m = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/.exec(pem);
  if (!m) throw new Error('not a PEM private key (-----BEGIN PRIVATE KEY-----)');
  const text = atob(m[1].replace(/\s+/g, ''));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

// The key of a key file's text: {keyId}, kept for signing. Throws saying what is wrong.
export function unlock(pem) {
  if (pem.length > PEM_MAX_CHARS) throw new Error(`a key file is at most ${PEM_MAX_CHARS} characters`);
  const bytes = der(pem);
  if (bytes.length !== 48 || hex(bytes.subarray(0, 16)) !== PKCS8_ED25519_PREFIX) {
    throw new Error('not an Ed25519 private key (PKCS#8), as ledgernode keygen writes');
  }
  const seed = bytes.slice(16);
  const pub = publicFromSeed(seed);
  const keyId = hex(sha256(new Uint8Array([...encoder.encode('ledgernode:key\n'), ...pub])).subarray(0, 8));
  unlocked = {seed, keyId};
  return {keyId};
}

export function lock() {
  if (unlocked) unlocked.seed.fill(0);
  unlocked = null;
}

export const keyId = () => (unlocked ? unlocked.keyId : null);

function nonce() {
  const raw = new Uint8Array(18);
  crypto.getRandomValues(raw);
  return b64(raw).replace(/\+/g, '-').replace(/\//g, '_');
}

// The signature base of ledgernode/httpsig.py for a GET of `url` (a URL object).
export function signatureBase(method, path, query, params) {
  return `"@method": ${method}\n"@path": ${path}\n"@query": ?${query}\n"@signature-params": ${params}`;
}

// Signature-Input and Signature for a read of `path` (as passed to fetch), or {} when locked.
export function signedHeaders(method, path, nowS = Math.floor(Date.now() / 1000)) {
  if (!unlocked || method !== 'GET') return {};
  const url = new URL(path, location.origin);
  const params = `("@method" "@path" "@query");created=${nowS};keyid="${unlocked.keyId}";nonce="${nonce()}";alg="ed25519"`;
  const base = signatureBase(method, url.pathname, url.search.replace(/^\?/, ''), params);
  const sig = sign(unlocked.seed, encoder.encode(base));
  return {'Signature-Input': `${LABEL}=${params}`, 'Signature': `${LABEL}=:${b64(sig)}:`};
}
