// SHA-256, tagged hashes and Ed25519 for the verifier, as ledgernode/crypto.py defines
// them. WebCrypto when the page has it (crypto.subtle exists only in secure contexts:
// https, localhost, 127.0.0.1), else the plain-JavaScript fallback (sha256.js,
// ed25519.js); `cryptoFor(forceFallback)` makes the choice, once per verification.
// Either way a signature gets libsodium's verdict: WebCrypto's Ed25519 does not refuse
// an R of small order, so that screen (ed25519.rejectsSignature) runs first on both paths.

import { sha256 as sha256Plain } from "./sha256.js";
import { pubkeyProblem, rejectsSignature, verify as verifyPlain } from "./ed25519.js";

const encoder = new TextEncoder();

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

function subtle() {
  return globalThis.crypto && globalThis.crypto.subtle ? globalThis.crypto.subtle : null;
}

let ed25519Supported = null;  // learnt on first use: an older browser may lack WebCrypto Ed25519

async function webEd25519(s, pubkey, sig, message) {
  if (ed25519Supported === false) return null;
  try {
    const key = await s.importKey("raw", pubkey, { name: "Ed25519" }, false, ["verify"]);
    const ok = await s.verify({ name: "Ed25519" }, key, sig, message);
    ed25519Supported = true;
    return ok;
  } catch (exc) {
    if (ed25519Supported === true) return false;  // it works here, so this key was refused
    ed25519Supported = false;
    return null;
  }
}

export function cryptoFor(forceFallback = false) {
  const s = forceFallback ? null : subtle();
  const sha256 = s
    ? async (data) => new Uint8Array(await s.digest("SHA-256", data))
    : async (data) => sha256Plain(data);
  return {
    kind: s ? "webcrypto" : "fallback",
    sha256,
    // H(tag, data) = SHA-256("ledgernode:" + tag + "\n" + data)
    tagged: (tag, data) => sha256(concat(encoder.encode(`ledgernode:${tag}\n`), data)),
    pubkeyProblem,
    async verify(pubkey, sig, message) {
      if (rejectsSignature(sig)) return false;  // every key was screened when it was loaded
      if (s) {
        const ok = await webEd25519(s, pubkey, sig, message);
        if (ok !== null) return ok;
      }
      return verifyPlain(pubkey, sig, message);
    },
  };
}
