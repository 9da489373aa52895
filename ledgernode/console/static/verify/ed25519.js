// Ed25519 public-key screening and signature verification (RFC 8032 section 5.1) with
// BigInt, giving the verdicts of ledgernode/crypto.py: `pubkeyProblem` is its
// pubkey_problem (canonical encoding, not of small order), and `verify` is libsodium's
// crypto_sign_open as crypto.PublicKey.verify calls it: S must be below the group order,
// R must not be of small order, and [S]B - [h]A must encode to exactly R's bytes.
// crypto.js uses `verify` where WebCrypto has no Ed25519, and `rejectsSignature` always.

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const D = mod(-121665n * modInverse(121666n));
const SQRT_M1 = modPow(2n, (P - 1n) / 4n);
const BASE_Y = (4n * modInverse(5n)) % P;

function mod(a) {
  const r = a % P;
  return r < 0n ? r + P : r;
}

function modPow(base, exp) {
  let result = 1n;
  let b = mod(base);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return result;
}

function modInverse(a) {
  return modPow(a, P - 2n);
}

function littleEndian(bytes) {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  return v;
}

// Affine (x, y) of a canonical point encoding, or null (crypto._decode_point).
export function decodePoint(raw) {
  const y = littleEndian(raw) & ((1n << 255n) - 1n);
  const sign = BigInt(raw[31] >> 7);
  if (y >= P) return null;
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * modPow(v, 3n) * modPow(u * modPow(v, 7n), (P - 5n) / 8n));
  if (mod(v * x * x - u) !== 0n) {
    x = mod(x * SQRT_M1);
    if (mod(v * x * x - u) !== 0n) return null;
  }
  if (x === 0n && sign === 1n) return null;
  if ((x & 1n) !== sign) x = P - x;
  return [x, y];
}

// Extended coordinates (X, Y, Z, T), RFC 8032 section 5.1.4.
function extended([x, y]) {
  return [x, y, 1n, mod(x * y)];
}

function add([x1, y1, z1, t1], [x2, y2, z2, t2]) {
  const a = mod((y1 - x1) * (y2 - x2));
  const b = mod((y1 + x1) * (y2 + x2));
  const c = mod(2n * t1 * t2 * D);
  const d = mod(2n * z1 * z2);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

function multiply(point, scalar) {
  let result = [0n, 1n, 1n, 0n];
  let addend = point;
  let s = scalar;
  while (s > 0n) {
    if (s & 1n) result = add(result, addend);
    addend = add(addend, addend);
    s >>= 1n;
  }
  return result;
}

function affine([x, y, z]) {
  const inv = modInverse(z);
  return [mod(x * inv), mod(y * inv)];
}

function encodePoint(point) {
  const [x, y] = affine(point);
  const out = new Uint8Array(32);
  let v = y | ((x & 1n) << 255n);
  for (let i = 0; i < 32; i++) { out[i] = Number(v & 0xffn); v >>= 8n; }
  return out;
}

function isIdentity(point) {
  const [x, y] = affine(point);
  return x === 0n && y === 1n;
}

export function pubkeyProblem(raw) {
  if (raw.length !== 32) return `public key must be 32 bytes, got ${raw.length}`;
  const point = decodePoint(raw);
  if (point === null) return "public key is not a canonical curve point";
  if (isIdentity(multiply(extended(point), 8n))) return "public key has small order";
  return null;
}

// The y coordinates of the points of order 1, 2, 4 and 8 (0, 1, p - 1, and the two of
// order 8 as libsodium lists them, little-endian): libsodium refuses an R whose y, sign
// bit ignored and reduced mod p, is one of them.
const SMALL_ORDER_Y = new Set([0n, 1n, P - 1n, ...[
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
].map((h) => littleEndian(Uint8Array.from(h.match(/../g).map((b) => parseInt(b, 16)))))]);

// What libsodium refuses before any curve arithmetic: S not below L, or R of small order.
export function rejectsSignature(sig) {
  if (sig.length !== 64) return true;
  if (littleEndian(sig.subarray(32)) >= L) return true;
  const y = littleEndian(sig.subarray(0, 32)) & ((1n << 255n) - 1n);
  return SMALL_ORDER_Y.has(y % P);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

export function verify(pubkey, sig, message) {
  if (rejectsSignature(sig) || pubkeyProblem(pubkey) !== null) return false;
  const a = extended(decodePoint(pubkey));
  const h = littleEndian(sha512(concat(sig.subarray(0, 32), pubkey, message))) % L;
  const s = littleEndian(sig.subarray(32));
  const base = extended([basePointX(), BASE_Y]);
  const negA = [mod(-a[0]), a[1], a[2], mod(-a[3])];
  const r = encodePoint(add(multiply(base, s), multiply(negA, h)));
  return r.every((b, i) => b === sig[i]);
}

// -- signing (RFC 8032 section 5.1.6), for the console's signed reads (console/signer.js) --

function clampedScalar(bytes) {
  const a = bytes.slice(0, 32);
  a[0] &= 248;
  a[31] &= 127;
  a[31] |= 64;
  return littleEndian(a);
}

function scalarBytes(n) {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) { out[i] = Number(n & 0xffn); n >>= 8n; }
  return out;
}

// The public key of a 32-byte seed (the PKCS#8 private key `ledgernode keygen` writes).
export function publicFromSeed(seed) {
  const base = extended([basePointX(), BASE_Y]);
  return encodePoint(multiply(base, clampedScalar(sha512(seed))));
}

// The signature of `message` by the key of `seed`: the same bytes as any RFC 8032 signer's.
export function sign(seed, message) {
  const h = sha512(seed);
  const a = clampedScalar(h);
  const base = extended([basePointX(), BASE_Y]);
  const pub = encodePoint(multiply(base, a));
  const r = littleEndian(sha512(concat(h.subarray(32), message))) % L;
  const R = encodePoint(multiply(base, r));
  const k = littleEndian(sha512(concat(R, pub, message))) % L;
  return concat(R, scalarBytes((r + k * a) % L));
}

function basePointX() {
  const enc = new Uint8Array(32);
  let v = BASE_Y;
  for (let i = 0; i < 32; i++) { enc[i] = Number(v & 0xffn); v >>= 8n; }
  return decodePoint(enc)[0];  // sign bit 0: the even x, as RFC 8032 defines B
}

// -- SHA-512 (FIPS 180-4), for h = SHA-512(R || A || M) -----------------------------------

const K512 = [
  "428a2f98d728ae22", "7137449123ef65cd", "b5c0fbcfec4d3b2f", "e9b5dba58189dbbc", "3956c25bf348b538",
  "59f111f1b605d019", "923f82a4af194f9b", "ab1c5ed5da6d8118", "d807aa98a3030242", "12835b0145706fbe",
  "243185be4ee4b28c", "550c7dc3d5ffb4e2", "72be5d74f27b896f", "80deb1fe3b1696b1", "9bdc06a725c71235",
  "c19bf174cf692694", "e49b69c19ef14ad2", "efbe4786384f25e3", "0fc19dc68b8cd5b5", "240ca1cc77ac9c65",
  "2de92c6f592b0275", "4a7484aa6ea6e483", "5cb0a9dcbd41fbd4", "76f988da831153b5", "983e5152ee66dfab",
  "a831c66d2db43210", "b00327c898fb213f", "bf597fc7beef0ee4", "c6e00bf33da88fc2", "d5a79147930aa725",
  "06ca6351e003826f", "142929670a0e6e70", "27b70a8546d22ffc", "2e1b21385c26c926", "4d2c6dfc5ac42aed",
  "53380d139d95b3df", "650a73548baf63de", "766a0abb3c77b2a8", "81c2c92e47edaee6", "92722c851482353b",
  "a2bfe8a14cf10364", "a81a664bbc423001", "c24b8b70d0f89791", "c76c51a30654be30", "d192e819d6ef5218",
  "d69906245565a910", "f40e35855771202a", "106aa07032bbd1b8", "19a4c116b8d2d0c8", "1e376c085141ab53",
  "2748774cdf8eeb99", "34b0bcb5e19b48a8", "391c0cb3c5c95a63", "4ed8aa4ae3418acb", "5b9cca4f7763e373",
  "682e6ff3d6b2b8a3", "748f82ee5defb2fc", "78a5636f43172f60", "84c87814a1f0ab72", "8cc702081a6439ec",
  "90befffa23631e28", "a4506cebde82bde9", "bef9a3f7b2c67915", "c67178f2e372532b", "ca273eceea26619c",
  "d186b8c721c0c207", "eada7dd6cde0eb1e", "f57d4f7fee6ed178", "06f067aa72176fba", "0a637dc5a2c898a6",
  "113f9804bef90dae", "1b710b35131c471b", "28db77f523047d84", "32caab7b40c72493", "3c9ebe0a15c9bebc",
  "431d67c49c100d4c", "4cc5d4becb3e42b6", "597f299cfc657e2a", "5fcb6fab3ad6faec", "6c44198c4a475817",
].map((h) => BigInt("0x" + h));
const MASK64 = (1n << 64n) - 1n;

function rotr64(x, n) {
  return ((x >> n) | (x << (64n - n))) & MASK64;
}

export function sha512(data) {
  const padded = new Uint8Array(((data.length + 17 + 127) >> 7) << 7);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setBigUint64(padded.length - 8, BigInt(data.length) * 8n);
  const h = [
    0x6a09e667f3bcc908n, 0xbb67ae8584caa73bn, 0x3c6ef372fe94f82bn, 0xa54ff53a5f1d36f1n,
    0x510e527fade682d1n, 0x9b05688c2b3e6c1fn, 0x1f83d9abfb41bd6bn, 0x5be0cd19137e2179n,
  ];
  const w = new Array(80);
  for (let off = 0; off < padded.length; off += 128) {
    for (let i = 0; i < 16; i++) w[i] = view.getBigUint64(off + 8 * i);
    for (let i = 16; i < 80; i++) {
      const s0 = rotr64(w[i - 15], 1n) ^ rotr64(w[i - 15], 8n) ^ (w[i - 15] >> 7n);
      const s1 = rotr64(w[i - 2], 19n) ^ rotr64(w[i - 2], 61n) ^ (w[i - 2] >> 6n);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & MASK64;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 80; i++) {
      const t1 = (hh + (rotr64(e, 14n) ^ rotr64(e, 18n) ^ rotr64(e, 41n)) + ((e & f) ^ (~e & MASK64 & g))
        + K512[i] + w[i]) & MASK64;
      const t2 = ((rotr64(a, 28n) ^ rotr64(a, 34n) ^ rotr64(a, 39n)) + ((a & b) ^ (a & c) ^ (b & c))) & MASK64;
      hh = g; g = f; f = e; e = (d + t1) & MASK64; d = c; c = b; b = a; a = (t1 + t2) & MASK64;
    }
    const next = [a, b, c, d, e, f, g, hh];
    for (let i = 0; i < 8; i++) h[i] = (h[i] + next[i]) & MASK64;
  }
  const out = new Uint8Array(64);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) outView.setBigUint64(8 * i, h[i]);
  return out;
}
