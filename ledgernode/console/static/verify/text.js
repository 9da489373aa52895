// Reading what an auditor hands the verifier as Python reads it (ledgernode/auditing/parse.py,
// genesis.py): JSON as json.loads reads it (ints exact, floats apart, a key given twice
// refused), base64 as base64.b64decode(validate=True) does, hex as bytes.fromhex, and
// times and untrusted text as the Python verifier prints them (times.utc_text, checks.clean).

export class Unusable extends Error {
  // Input the verifier cannot even start on: `python -m ledgernode verify` exits 2.
  constructor(message) {
    super(message);
    this.name = "Unusable";
  }
}

export class JsonFloat {
  // A JSON number with a fraction or exponent: a float to Python, never an int.
  constructor(value) { this.value = value; }
}

const INT_DIGITS_MAX = 4300;  // Python's int() refuses longer digit strings (sys.int_info)
const JSON_DEPTH_MAX = 900;  // json.loads fails with RecursionError near 1,000 levels
const WHITE = new Set([" ", "\t", "\n", "\r"]);
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;
const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

class JsonReader {
  constructor(text) { this.text = text; this.pos = 0; }

  fail(what) { throw new SyntaxError(`${what} at char ${this.pos}`); }

  skip() { while (WHITE.has(this.text[this.pos])) this.pos++; }

  value(depth) {
    if (depth > JSON_DEPTH_MAX) this.fail("nested too deep");
    this.skip();
    const c = this.text[this.pos];
    if (c === "{") return this.object(depth);
    if (c === "[") return this.array(depth);
    if (c === '"') return this.string();
    for (const [word, value] of [["null", null], ["true", true], ["false", false],
      ["NaN", new JsonFloat(NaN)], ["Infinity", new JsonFloat(Infinity)], ["-Infinity", new JsonFloat(-Infinity)]]) {
      if (this.text.startsWith(word, this.pos)) { this.pos += word.length; return value; }
    }
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m) this.fail("expecting value");
    this.pos += m[0].length;
    if (m[1] !== undefined || m[2] !== undefined) return new JsonFloat(Number(m[0]));
    if (m[0].replace("-", "").length > INT_DIGITS_MAX) this.fail("int has too many digits");
    return BigInt(m[0]);
  }

  object(depth) {
    this.pos++;
    const out = new Map();
    this.skip();
    if (this.text[this.pos] === "}") { this.pos++; return out; }
    for (;;) {
      this.skip();
      if (this.text[this.pos] !== '"') this.fail("expecting property name");
      const key = this.string();
      this.skip();
      if (this.text[this.pos] !== ":") this.fail("expecting ':'");
      this.pos++;
      if (out.has(key)) throw new SyntaxError("an object lists the same key twice");
      out.set(key, this.value(depth + 1));
      this.skip();
      const c = this.text[this.pos++];
      if (c === "}") return out;
      if (c !== ",") this.fail("expecting ',' or '}'");
    }
  }

  array(depth) {
    this.pos++;
    const out = [];
    this.skip();
    if (this.text[this.pos] === "]") { this.pos++; return out; }
    for (;;) {
      out.push(this.value(depth + 1));
      this.skip();
      const c = this.text[this.pos++];
      if (c === "]") return out;
      if (c !== ",") this.fail("expecting ',' or ']'");
    }
  }

  string() {
    this.pos++;
    let out = "";
    for (;;) {
      const c = this.text[this.pos++];
      if (c === undefined) this.fail("unterminated string");
      if (c === '"') return out;
      if (c < " ") this.fail("invalid control character");
      if (c !== "\\") { out += c; continue; }
      const e = this.text[this.pos++];
      if (e === "u") {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("invalid \\uXXXX escape");
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 4;
      } else if (e in ESCAPES) {
        out += ESCAPES[e];
      } else {
        this.fail("invalid escape");
      }
    }
  }
}

// json.loads(text, object_pairs_hook=strict_object): objects are Maps, ints BigInt.
export function parseJsonText(text) {
  const reader = new JsonReader(text);
  const value = reader.value(0);
  reader.skip();
  if (reader.pos !== text.length) reader.fail("extra data");
  return value;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function utf8Text(bytes) {
  return utf8.decode(bytes);  // throws TypeError on bytes that are not UTF-8
}

// parse.parse_json on file bytes: json.loads takes bytes with a UTF-8 BOM too.
export function parseJson(bytes, what) {
  let doc;
  try {
    let text = utf8Text(bytes);
    if (text.startsWith("\ufeff")) text = text.slice(1);
    doc = parseJsonText(text);
  } catch (exc) {
    throw new Unusable(`${what} is not JSON: ${exc.message}`);
  }
  if (!(doc instanceof Map)) throw new Unusable(`${what} is not a JSON object`);
  return doc;
}

// -- fields --------------------------------------------------------------------------------

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_VALUE = new Map([...B64].map((c, i) => [c, i]));

// base64.b64decode(text, validate=True), which is binascii.a2b_base64(strict_mode=True)
// in Python 3.11: padding only after two or three data characters of a group, nothing
// after it, and bits past the last byte ignored. null when Python raises.
export function unbase64(text) {
  if (typeof text !== "string") return null;
  const values = [];
  let quad = 0, pads = 0, started = false, complete = false;
  for (let i = 0; i < text.length && !complete; i++) {
    const c = text[i];
    if (c === "=") {
      started = true;
      if (i === 0) return null;
      if (quad >= 2 && quad + ++pads >= 4) {
        if (i + 1 !== text.length) return null;
        complete = true;
      }
      continue;
    }
    const v = B64_VALUE.get(c);
    if (v === undefined || started) return null;
    pads = 0;
    values.push(v);
    quad = (quad + 1) % 4;
  }
  if (quad !== 0 && !complete) return null;
  const out = [];
  for (let i = 0; i < values.length; i += 4) {
    const [a, b, c, d] = [values[i], values[i + 1], values[i + 2], values[i + 3]];
    out.push(((a << 2) | (b >> 4)) & 0xff);
    if (c !== undefined) out.push(((b << 4) | (c >> 2)) & 0xff);
    if (d !== undefined) out.push(((c << 6) | d) & 0xff);
  }
  return Uint8Array.from(out);
}

export function base64(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[n >> 18] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : "=";
    out += i + 2 < bytes.length ? B64[n & 63] : "=";
  }
  return out;
}

const HEX_WHITE = new Set([" ", "\t", "\n", "\r", "\x0b", "\x0c"]);

// bytes.fromhex(text): pairs of hex digits of either case, ASCII white space between
// pairs; null where Python raises ValueError.
export function fromhex(text) {
  if (typeof text !== "string") return null;
  const out = [];
  let i = 0;
  for (;;) {
    while (HEX_WHITE.has(text[i])) i++;
    if (i >= text.length) return Uint8Array.from(out);
    const pair = text.slice(i, i + 2);
    if (!/^[0-9a-fA-F]{2}$/.test(pair)) return null;
    out.push(parseInt(pair, 16));
    i += 2;
  }
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function equalBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// -- what Python's types and equality say ----------------------------------------------------

export const isInt = (v) => typeof v === "bigint";  // never a bool: JSON true is a JS boolean
export const isStr = (v) => typeof v === "string";
export const isBytes = (v) => v instanceof Uint8Array;
export const isMap = (v) => v instanceof Map;
export const chars = (s) => [...s].length;  // len() of a Python str: code points

// Python's `doc == value` for a JSON value and an int or str (a checkpoint's summary):
// True == 1, 2.0 == 2.
export function pyEquals(json, value) {
  if (typeof value === "string") return json === value;
  if (typeof json === "bigint") return json === value;
  if (typeof json === "boolean") return BigInt(json) === value;
  if (json instanceof JsonFloat) return Number.isInteger(json.value) && BigInt(json.value) === value;
  return false;
}

export function keysAre(map, names) {
  return map instanceof Map && map.size === names.length && names.every((n) => map.has(n));
}

// -- as the Python verifier prints them ---------------------------------------------------------

const LAST_SECOND = 253402300799n;  // 9999-12-31T23:59:59Z: datetime's last second

// times.utc_text: ms since the epoch as ISO 8601 UTC, or "<ms> ms" out of datetime's range.
export function utcText(ms) {
  if (ms < 0n || ms / 1000n > LAST_SECOND) return `${ms} ms`;
  return new Date(Number(ms)).toISOString();
}

const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

// checks.clean: what str.isprintable() refuses, as a \u escape of at least four hex digits.
export function clean(text) {
  let out = "";
  for (const c of String(text)) {
    out += c !== " " && UNPRINTABLE.test(c) ? "\\u" + c.codePointAt(0).toString(16).padStart(4, "0") : c;
  }
  return out;
}
