// Canonical msgpack (docs/protocol.md sections 1 and 2), the subset ledgernode/codec.py
// accepts: nil, bool, int, str, bin, array, and maps with str keys. `decode` refuses
// exactly what codec.decode refuses: it bounds every size (Limits, as in codec.py) and
// accepts only the one canonical encoding (shortest ints and lengths, str never as bin,
// map keys strictly increasing by their UTF-8 bytes), which codec.py proves by packing
// the decoded value again; here each rule is checked as the bytes are read.
// Ints are BigInt, str are strings, bin are Uint8Array, maps are Map (key order kept).

export class InvalidInput extends Error {
  constructor(code, message) {
    super(message);
    this.name = "InvalidInput";
    this.code = code;
  }
}

export const DEPTH_HARD_MAX = 64;
export const DEFAULT_LIMITS = Object.freeze({
  input_max_bytes: 1 << 20, str_max_bytes: 1 << 16, bin_max_bytes: 1 << 20,
  array_max_len: 10000, map_max_len: 64, depth_max: 8,
});

const INT_MIN = -(2n ** 63n);
const INT_MAX = 2n ** 64n - 1n;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

class Reader {
  constructor(data, limits) {
    this.data = data;
    this.pos = 0;
    this.limits = limits;
    this.depthMax = Math.min(limits.depth_max, DEPTH_HARD_MAX);
  }

  take(n) {
    if (this.pos + n > this.data.length) throw new InvalidInput("malformed", "not decodable msgpack: truncated");
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  uint(n) {
    let v = 0n;
    for (const b of this.take(n)) v = (v << 8n) | BigInt(b);
    return v;
  }

  length(n, min) {
    // A length that fits a shorter header is not canonical.
    const v = Number(this.uint(n));
    if (v < min) throw new InvalidInput("non_canonical", "bytes are not the canonical encoding");
    return v;
  }

  str(size) {
    if (size > this.limits.str_max_bytes) throw new InvalidInput("malformed", "str longer than the limit");
    try {
      return utf8.decode(this.take(size));
    } catch (exc) {
      if (exc instanceof InvalidInput) throw exc;
      throw new InvalidInput("malformed", "str is not UTF-8");
    }
  }

  bin(size) {
    if (size > this.limits.bin_max_bytes) throw new InvalidInput("malformed", "bin longer than the limit");
    return this.take(size).slice();
  }

  container(kind, size, depth) {
    const max = kind === "array" ? this.limits.array_max_len : this.limits.map_max_len;
    if (size > max) throw new InvalidInput("malformed", `${kind} longer than the limit`);
    // codec._check_container: a container at depth d may hold items only if d + 1 <= depth_max
    if (depth > this.depthMax || (size > 0 && depth + 1 > this.depthMax)) {
      throw new InvalidInput("too_deep", `nesting deeper than ${this.depthMax}`);
    }
    if (kind === "array") {
      const out = [];
      for (let i = 0; i < size; i++) out.push(this.value(depth + 1));
      return out;
    }
    const out = new Map();
    let previous = null;
    for (let i = 0; i < size; i++) {
      const key = this.value(depth + 1);
      if (typeof key !== "string") throw new InvalidInput("bad_key", "map key is not a str");
      const keyBytes = utf8Encoder.encode(key);  // code point order is UTF-8 byte order
      if (previous !== null && compareBytes(keyBytes, previous) <= 0) {
        throw new InvalidInput("non_canonical", "map keys are not in canonical (sorted) order");
      }
      previous = keyBytes;
      out.set(key, this.value(depth + 1));
    }
    return out;
  }

  value(depth) {
    const tag = this.take(1)[0];
    if (tag <= 0x7f) return BigInt(tag);
    if (tag >= 0xe0) return BigInt(tag - 0x100);
    if (tag >= 0xa0 && tag <= 0xbf) return this.str(tag - 0xa0);
    if (tag >= 0x90 && tag <= 0x9f) return this.container("array", tag - 0x90, depth);
    if (tag >= 0x80 && tag <= 0x8f) return this.container("map", tag - 0x80, depth);
    switch (tag) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(this.length(1, 0));
      case 0xc5: return this.bin(this.length(2, 0x100));
      case 0xc6: return this.bin(this.length(4, 0x10000));
      case 0xd9: return this.str(this.length(1, 32));
      case 0xda: return this.str(this.length(2, 0x100));
      case 0xdb: return this.str(this.length(4, 0x10000));
      case 0xdc: return this.container("array", this.length(2, 16), depth);
      case 0xdd: return this.container("array", this.length(4, 0x10000), depth);
      case 0xde: return this.container("map", this.length(2, 16), depth);
      case 0xdf: return this.container("map", this.length(4, 0x10000), depth);
      case 0xcc: return this.canonicalUint(1, 0x80n);
      case 0xcd: return this.canonicalUint(2, 0x100n);
      case 0xce: return this.canonicalUint(4, 0x10000n);
      case 0xcf: return this.canonicalUint(8, 0x100000000n);
      case 0xd0: return this.canonicalInt(1, -0x20n);
      case 0xd1: return this.canonicalInt(2, -0x80n);
      case 0xd2: return this.canonicalInt(4, -0x8000n);
      case 0xd3: return this.canonicalInt(8, -0x80000000n);
      case 0xca: case 0xcb: throw new InvalidInput("float", "floats are not allowed");
      default: throw new InvalidInput("malformed", `not decodable msgpack: tag 0x${tag.toString(16)}`);
    }
  }

  canonicalUint(n, min) {
    const v = this.uint(n);
    if (v < min) throw new InvalidInput("non_canonical", "bytes are not the canonical encoding");
    return v;
  }

  canonicalInt(n, above) {
    // msgpack-python packs a non-negative int as uint and a negative one in the shortest
    // int: a signed form is canonical only for a negative value below the shorter range.
    const bits = BigInt(8 * n);
    let v = this.uint(n);
    if (v >= 1n << (bits - 1n)) v -= 1n << bits;
    if (v >= above) throw new InvalidInput("non_canonical", "bytes are not the canonical encoding");
    return v;
  }
}

export function decode(data, limits = DEFAULT_LIMITS) {
  if (!(data instanceof Uint8Array)) throw new InvalidInput("bad_type", "expected bytes");
  if (data.length > limits.input_max_bytes) {
    throw new InvalidInput("too_large", `${data.length} bytes exceeds ${limits.input_max_bytes}`);
  }
  const reader = new Reader(data, limits);
  const value = reader.value(0);
  if (reader.pos !== data.length) throw new InvalidInput("trailing_bytes", "bytes follow the encoded value");
  return value;
}

// -- encoding: the values the checks hash (vote bytes, valset hash, state map paths) -----

function head(out, small, smallMax, tags, n) {
  if (n <= smallMax) { out.push(small + n); return; }
  const sizes = [[0xff, 1], [0xffff, 2], [0xffffffff, 4]];
  for (let i = 0; i < tags.length; i++) {
    const [max, width] = sizes[i + (sizes.length - tags.length)];
    if (n <= max) {
      out.push(tags[i]);
      for (let k = width - 1; k >= 0; k--) out.push(Math.floor(n / 2 ** (8 * k)) & 0xff);
      return;
    }
  }
  throw new InvalidInput("too_large", "value too large to encode");
}

function pushInt(out, tag, v, width) {
  out.push(tag);
  const mod = v < 0n ? v + (1n << BigInt(8 * width)) : v;
  for (let k = width - 1; k >= 0; k--) out.push(Number((mod >> BigInt(8 * k)) & 0xffn));
}

function encodeInto(out, value) {
  if (value === null) { out.push(0xc0); return; }
  if (value === true || value === false) { out.push(value ? 0xc3 : 0xc2); return; }
  if (typeof value === "number") value = BigInt(value);
  if (typeof value === "bigint") {
    if (value < INT_MIN || value > INT_MAX) throw new InvalidInput("int_range", "int outside the 64-bit msgpack range");
    if (value >= 0n) {
      if (value < 0x80n) out.push(Number(value));
      else if (value <= 0xffn) pushInt(out, 0xcc, value, 1);
      else if (value <= 0xffffn) pushInt(out, 0xcd, value, 2);
      else if (value <= 0xffffffffn) pushInt(out, 0xce, value, 4);
      else pushInt(out, 0xcf, value, 8);
    } else if (value >= -32n) out.push(Number(value + 0x100n));
    else if (value >= -0x80n) pushInt(out, 0xd0, value, 1);
    else if (value >= -0x8000n) pushInt(out, 0xd1, value, 2);
    else if (value >= -0x80000000n) pushInt(out, 0xd2, value, 4);
    else pushInt(out, 0xd3, value, 8);
    return;
  }
  if (typeof value === "string") {
    const bytes = utf8Encoder.encode(value);
    head(out, 0xa0, 31, [0xd9, 0xda, 0xdb], bytes.length);
    for (const b of bytes) out.push(b);
    return;
  }
  if (value instanceof Uint8Array) {
    head(out, 0xc4, -1, [0xc4, 0xc5, 0xc6], value.length);
    for (const b of value) out.push(b);
    return;
  }
  if (Array.isArray(value)) {
    head(out, 0x90, 15, [0xdc, 0xdd], value.length);
    for (const item of value) encodeInto(out, item);
    return;
  }
  if (value instanceof Map) {
    const keys = [...value.keys()];
    if (!keys.every((k) => typeof k === "string")) throw new InvalidInput("bad_key", "map key is not a str");
    keys.sort((a, b) => compareBytes(utf8Encoder.encode(a), utf8Encoder.encode(b)));
    head(out, 0x80, 15, [0xde, 0xdf], keys.length);
    for (const k of keys) { encodeInto(out, k); encodeInto(out, value.get(k)); }
    return;
  }
  throw new InvalidInput("bad_type", "value is not in the data model");
}

export function encode(value) {
  const out = [];
  encodeInto(out, value);
  return Uint8Array.from(out);
}
