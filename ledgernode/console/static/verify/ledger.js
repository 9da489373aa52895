// The ledger's formats as the offline verifier reads them (docs/protocol.md sections 3 to 7,
// 11 and 12): the genesis file (ledgernode/genesis.py), records and their body schemas
// (records.py, families/), headers and commit certificates (blocks.py), the Merkle log
// (merkle.py) and the state map's proofs (statemap.py). Each function accepts exactly
// what its Python counterpart accepts; a refusal is an InvalidInput, as there.

import { DEFAULT_LIMITS, InvalidInput, decode, encode } from "./msgpack.js";
import {
  Unusable, chars, equalBytes, fromhex, hex, isBytes, isInt, isMap, isStr, keysAre,
  parseJsonText, unbase64, utf8Text,
} from "./text.js";
import { concat } from "./crypto.js";

export const GENESIS_FORMAT = "ledgernode-genesis/2";
export const GENESIS_MAX_BYTES = 1 << 20;
const VALIDATORS_MAX = 256;
const VALIDATOR_NAME_MAX_CHARS = 256;
const CLIENTS_MAX = 10000;
export const ROLES_MAX = 32;
const DEFAULT_PARAMS = ["record_ts_window_ms", "block_max_records"];
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ROLE_RE = /^(\*|[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?)$/;
export const GOVERNANCE_PREFIX = "gov.";
const TIME_MAX_MS = 2n ** 63n - 1n;
const encoder = new TextEncoder();

export function isTime(v) {
  return isInt(v) && v >= 0n && v <= TIME_MAX_MS;
}

// -- the genesis file ------------------------------------------------------------------------

function badGenesis(message) {
  return new InvalidInput("bad_genesis", message);
}

function field(obj, name, check, kind, where) {
  if (!obj.has(name)) throw badGenesis(`${where}: missing field '${name}'`);
  const value = obj.get(name);
  if (!check(value)) throw badGenesis(`${where}: field '${name}' must be ${kind}`);
  return value;
}

async function genesisKey(c, obj, where) {
  const text = field(obj, "pubkey", isStr, "str", where);
  if (!/^[0-9a-f]{64}$/.test(text)) throw badGenesis(`${where}: pubkey must be 64 lowercase hex characters`);
  return loadPublicKey(c, fromhex(text), `${where}: `, "bad_genesis");
}

export async function loadPublicKey(c, raw, prefix = "", code = "bad_pubkey") {
  const problem = c.pubkeyProblem(raw);
  if (problem !== null) throw new InvalidInput(code, prefix + problem);
  return { raw, keyId: hex((await c.tagged("key", raw)).subarray(0, 8)) };
}

function genesisParams(doc) {
  const params = doc.has("params") ? doc.get("params") : new Map();
  if (!isMap(params)) throw badGenesis("params must be an object");
  for (const [key, value] of params) {
    if (!DEFAULT_PARAMS.includes(key)) throw badGenesis(`params: unknown parameter '${key}'`);
    if (!isInt(value) || value <= 0n) throw badGenesis(`params: ${key} must be a positive integer`);
  }
}

async function genesisValidators(c, doc) {
  const entries = field(doc, "validators", Array.isArray, "list", "genesis");
  if (entries.length < 1 || entries.length > VALIDATORS_MAX) throw badGenesis(`validators: need 1 to ${VALIDATORS_MAX} entries`);
  const out = [];
  for (const [i, entry] of entries.entries()) {
    const where = `validators[${i}]`;
    if (!isMap(entry)) throw badGenesis(`${where} must be an object`);
    const dept = field(entry, "dept", isStr, "str", where);
    if (!ID_RE.test(dept)) throw badGenesis(`${where}: dept must match the department id pattern`);
    const name = entry.has("name") ? entry.get("name") : dept;
    if (!isStr(name) || chars(name) > VALIDATOR_NAME_MAX_CHARS) {
      throw badGenesis(`${where}: name must be a str of at most ${VALIDATOR_NAME_MAX_CHARS} chars`);
    }
    out.push({ dept, name, pubkey: await genesisKey(c, entry, where) });
  }
  return out;
}

async function genesisClients(c, doc, depts, seen) {
  const clients = doc.has("clients") ? doc.get("clients") : [];
  if (!Array.isArray(clients) || clients.length > CLIENTS_MAX) {
    throw badGenesis(`clients must be a list of at most ${CLIENTS_MAX} entries`);
  }
  for (const [i, entry] of clients.entries()) {
    const where = `clients[${i}]`;
    if (!isMap(entry)) throw badGenesis(`${where} must be an object`);
    const dept = field(entry, "dept", isStr, "str", where);
    if (!depts.has(dept)) throw badGenesis(`${where}: dept '${dept}' is not a validator's department`);
    const roles = field(entry, "roles", Array.isArray, "list", where);
    if (roles.length < 1 || roles.length > ROLES_MAX || !roles.every((r) => isStr(r) && ROLE_RE.test(r))) {
      throw badGenesis(`${where}: roles must be a non-empty list like 'cert.*' or 'cert.issue'`);
    }
    const key = await genesisKey(c, entry, where);
    if (seen.has(key.keyId)) throw badGenesis(`${where}: pubkey already registered`);
    seen.add(key.keyId);
  }
}

// genesis.parse with load_genesis's Unusable around it: {raw, genesisHash, chainId, validators}.
export async function loadGenesis(c, raw) {
  if (raw.length > GENESIS_MAX_BYTES) throw new Unusable(`genesis is larger than ${GENESIS_MAX_BYTES} bytes`);
  try {
    let doc;
    try {
      doc = parseJsonText(utf8Text(raw));
    } catch (exc) {
      throw badGenesis(`not JSON: ${exc.message}`);
    }
    if (!isMap(doc)) throw badGenesis("top level must be an object");
    if (doc.get("format") !== GENESIS_FORMAT) throw badGenesis(`format must be '${GENESIS_FORMAT}'`);
    const chainId = field(doc, "chain_id", isStr, "str", "genesis");
    if (!ID_RE.test(chainId)) throw badGenesis("chain_id must match the id pattern");
    const validators = await genesisValidators(c, doc);
    const seen = new Set();
    for (const [i, v] of validators.entries()) {
      if (seen.has(v.pubkey.keyId)) throw badGenesis(`validators[${i}]: pubkey listed twice`);
      seen.add(v.pubkey.keyId);
    }
    await genesisClients(c, doc, new Set(validators.map((v) => v.dept)), seen);
    genesisParams(doc);
    return { raw, genesisHash: hex(await c.sha256(raw)), chainId, validators };
  } catch (exc) {
    if (exc instanceof InvalidInput) throw new Unusable(`not a usable genesis file: ${exc.message}`);
    throw exc;
  }
}

export async function valsetHash(c, validators) {
  return c.tagged("valset", encode(validators.map((v) => v.pubkey.raw)));
}

// -- records (records.py, families/) -----------------------------------------------------------

export const RECORD_SIGN_PREFIX = encoder.encode("ledgernode:record\n");
const ENVELOPE_LIMITS = {
  input_max_bytes: 16384, str_max_bytes: 4096, bin_max_bytes: 16384,
  array_max_len: 64, map_max_len: 16, depth_max: 4,
};
const RECORD_KEYS = ["v", "chain", "type", "subject", "body", "refs", "ts", "nonce", "key"];
const TEXT_MAX_CHARS = 1024;

// The body schemas of families/ (records.BODY_SCHEMAS): type -> [field, kind, required].
// tests/unit/test_verify_js.py compares this table and ONE_OF with the Python registry.
export const BODY_SCHEMAS = {
  "dataset.publish": [["title", "text", true], ["content_hash", "hash", true], ["schema_hash", "hash", true], ["classification", "classification", true]],
  "share.grant": [["to_dept", "dept", true], ["purpose", "text", true], ["legal_basis", "text", true], ["expires", "time", true]],
  "share.revoke": [["grant", "hash", true]],
  "share.access": [["grant", "hash", true], ["purpose", "text", true], ["content_hash", "hash", true]],
  "cert.issue": [["cert_type", "text", true], ["holder", "hash", true], ["content_hash", "hash", true], ["valid_from", "time", true], ["valid_until", "time", true]],
  "cert.revoke": [["reason", "text", true], ["effective", "time", true]],
  "cert.suspend": [["reason", "text", true], ["effective", "time", true]],
  "cert.resume": [["reason", "text", true], ["effective", "time", true]],
  "evidence.notarize": [["content_hash", "hash", true], ["media_type", "text", true], ["size", "time", true], ["title", "text", true]],
  "trace.event": [["activity", "text", true], ["content_hash", "hash", false], ["location", "text", false]],
  "gov.propose": [["action", "action", true], ["args", "args", true], ["expires", "time", true]],
  "gov.approve": [["proposal", "hash", true]]
};
export const ONE_OF = {
  "classification": ["public", "internal", "sensitive"],
  "action": ["key.add", "key.revoke", "validator.add", "validator.remove"]
};
export const ACTION_ARGS = {
  "key.add": ["dept", "name", "pubkey", "roles"],
  "key.revoke": ["key_id", "reason"],
  "validator.add": ["dept", "name", "pubkey"],
  "validator.remove": ["pubkey"]
};
const KINDS = {
  text: (v) => isStr(v) && chars(v) <= TEXT_MAX_CHARS,
  hash: (v) => isBytes(v) && v.length === 32,
  time: isTime,
  dept: (v) => isStr(v) && ID_RE.test(v),  // members.AnyDept: any well-formed department id
  args: isMap,
};

function badRecord(message) {
  return new InvalidInput("invalid_record", message);
}

function argsProblem(c, action, args) {
  // families/gov._args_problem
  const keys = ACTION_ARGS[action];
  if (args.size !== keys.length || !keys.every((k) => args.has(k))) return `body.args of ${action} has the wrong keys`;
  for (const name of ["dept", "key_id", "reason"]) {
    const v = args.get(name);
    if (args.has(name) && (!isStr(v) || chars(v) < 1 || chars(v) > 64)) return `body.args.${name} must be a str of 1 to 64 chars`;
  }
  if (args.has("dept") && !ID_RE.test(args.get("dept"))) return "body.args.dept must be a department id";
  if (args.has("name") && (!isStr(args.get("name")) || chars(args.get("name")) > 1024)) return "body.args.name is too long";
  if (args.has("pubkey")) {
    const pubkey = args.get("pubkey");
    if (!isBytes(pubkey)) return "body.args.pubkey must be 32 bytes";
    const problem = c.pubkeyProblem(pubkey);
    if (problem !== null) return `body.args.pubkey ${problem}`;
  }
  if (args.has("roles")) {
    const roles = args.get("roles");
    if (!Array.isArray(roles) || roles.length < 1 || roles.length > ROLES_MAX
        || !roles.every((r) => isStr(r) && chars(r) <= 64 && ROLE_RE.test(r))) return "body.args.roles are not valid roles";
  }
  return null;
}

function checkBody(c, type, body) {
  const schema = BODY_SCHEMAS[type];
  if (schema === undefined) throw badRecord(`unknown record type '${type}'`);
  if (!isMap(body)) throw badRecord("body must be a map");
  const names = new Set(schema.map(([name]) => name));
  for (const name of body.keys()) {
    if (!names.has(name)) throw badRecord(`${type} body has unexpected field '${name}'`);
  }
  for (const [name, kind, required] of schema) {
    if (!body.has(name)) {
      if (required) throw badRecord(`${type} body is missing '${name}'`);
      continue;
    }
    const value = body.get(name);
    const ok = kind in ONE_OF ? isStr(value) && ONE_OF[kind].includes(value) : KINDS[kind](value);
    if (!ok) throw badRecord(`${type} body.${name} is not a valid ${kind}`);
  }
  if (type === "cert.issue" && body.get("valid_from") >= body.get("valid_until")) {
    throw badRecord("cert.issue body.valid_until must be after valid_from");
  }
  if (type === "gov.propose") {
    const problem = argsProblem(c, body.get("action"), body.get("args"));
    if (problem) throw badRecord(`gov.propose ${problem}`);
  }
}

function recordOfMap(m) {
  // records._record_from_map
  if (!keysAre(m, RECORD_KEYS)) throw badRecord("record must be a map with exactly the record keys");
  if (m.get("v") !== 1n) throw badRecord("v must be 1");
  for (const name of ["chain", "type", "subject", "key"]) {
    if (!isStr(m.get(name))) throw badRecord(`${name} must be a str`);
  }
  const subject = chars(m.get("subject"));
  if (subject < 1 || subject > 256) throw badRecord("subject must be 1 to 256 chars");
  if (!/^[0-9a-f]{16}$/.test(m.get("key"))) throw badRecord("key must be a key_id of 16 lowercase hex chars");
  if (!isTime(m.get("ts"))) throw badRecord("ts must be a non-negative int (ms since the Unix epoch)");
  if (!isBytes(m.get("nonce")) || m.get("nonce").length !== 16) throw badRecord("nonce must be 16 bytes");
  const refs = m.get("refs");
  if (!Array.isArray(refs) || refs.length > 64) throw badRecord("refs must be an array of at most 64 record ids");
  if (refs.some((r) => !isBytes(r) || r.length !== 32)) throw badRecord("every ref must be a 32-byte record id");
  if (new Set(refs.map(hex)).size !== refs.length) throw badRecord("refs lists a record id twice");
  const get = (k) => m.get(k);
  return {
    v: get("v"), chain: get("chain"), type: get("type"), subject: get("subject"), body: get("body"),
    refs, ts: get("ts"), nonce: get("nonce"), key: get("key"),
  };
}

// [record_bytes, sig] when `raw` is an envelope's outer array, else null (for the id).
export function envelopePair(raw) {
  let outer;
  try {
    outer = decode(raw, ENVELOPE_LIMITS);
  } catch (exc) {
    if (exc instanceof InvalidInput) return null;
    throw exc;
  }
  return Array.isArray(outer) && outer.length === 2 && isBytes(outer[0]) ? outer : null;
}

// records.decode_envelope against members.AnyDept (any well-formed department).
export async function decodeEnvelope(c, raw, chainId) {
  const outer = decode(raw, ENVELOPE_LIMITS);
  if (!Array.isArray(outer) || outer.length !== 2 || !outer.every(isBytes)) {
    throw badRecord("envelope must be an array [record_bytes, sig] of two bin values");
  }
  const [recordBytes, sig] = outer;
  const record = recordOfMap(decode(recordBytes, ENVELOPE_LIMITS));
  if (record.chain !== chainId) throw new InvalidInput("wrong_chain", `record is for chain '${record.chain}'`);
  checkBody(c, record.type, record.body);
  return { record, recordBytes, sig, raw, recordId: await c.tagged("record", recordBytes) };
}

export function roleAllows(role, type) {
  return role.endsWith("*") ? type.startsWith(role.slice(0, -1)) : role === type;
}

// -- headers and commit certificates (blocks.py) -----------------------------------------------

const HEADER_LIMITS = { input_max_bytes: 1024, str_max_bytes: 256, bin_max_bytes: 64, array_max_len: 0, map_max_len: 16, depth_max: 1 };
const HEADER_KEYS = ["v", "chain", "height", "time", "prev", "proposer", "log_start", "log_size", "log_root", "valset", "state"];
const QC_SIGNATURES_MAX = 256;

function badHeader(message) {
  return new InvalidInput("invalid_header", message);
}

export async function decodeHeader(c, raw) {
  const m = decode(raw, HEADER_LIMITS);
  if (!keysAre(m, HEADER_KEYS)) throw badHeader("header must have exactly the header keys");
  if (m.get("v") !== 2n || !isStr(m.get("chain"))) throw badHeader("header v must be 2 and chain a str");
  for (const name of ["prev", "log_root", "valset", "state"]) {
    if (!isBytes(m.get(name)) || m.get(name).length !== 32) throw badHeader(`header ${name} must be 32 bytes`);
  }
  for (const name of ["height", "time", "proposer", "log_start", "log_size"]) {
    if (!isInt(m.get(name)) || m.get(name) < 0n) throw badHeader(`header ${name} must be a non-negative int`);
  }
  const h = Object.fromEntries(m);
  if (h.height < 1n || h.log_start > h.log_size) throw badHeader("header height must be >= 1 and log_start <= log_size");
  return {
    chain: h.chain, height: h.height, time: h.time, logStart: h.log_start, logSize: h.log_size,
    logRoot: h.log_root, valset: h.valset, state: h.state, raw, blockHash: await c.tagged("header", raw),
  };
}

function badQc(message) {
  return new InvalidInput("invalid_qc", message);
}

// blocks.qc_from_json then qc_from_wire.
export function qcOfJson(m) {
  if (!isMap(m) || !Array.isArray(m.get("signatures"))) throw badQc("qc must be an object with a signatures list");
  const blockHash = fromhex(m.get("block_hash"));
  if (blockHash === null) throw badQc("qc is not well formed: block_hash");
  const signatures = [];
  for (const s of m.get("signatures").slice(0, QC_SIGNATURES_MAX + 1)) {
    if (!isMap(s) || !s.has("validator") || !s.has("sig")) throw badQc("qc is not well formed: a signature");
    const sig = unbase64(s.get("sig"));
    if (sig === null) throw badQc("qc is not well formed: a signature is not base64");
    signatures.push([s.get("validator"), sig]);
  }
  for (const name of ["height", "round"]) {
    if (!isInt(m.get(name)) || m.get(name) < 0n) throw badQc(`qc ${name} must be a non-negative int`);
  }
  if (blockHash.length !== 32) throw badQc("qc block_hash must be 32 bytes");
  if (signatures.length > QC_SIGNATURES_MAX) throw badQc(`qc signatures must be a list of at most ${QC_SIGNATURES_MAX}`);
  if (signatures.some(([i]) => !isInt(i))) throw badQc("each qc signature must be [validator index, sig bytes]");
  return { height: m.get("height"), round: m.get("round"), blockHash, signatures };
}

// blocks.check_qc under the keys of one validator set (in order).
export async function checkQc(c, qc, header, chainId, keys) {
  if (!equalBytes(qc.blockHash, header.blockHash) || qc.height !== header.height) {
    throw badQc("qc names a different block than the header");
  }
  const seen = new Set();
  const message = concat(encoder.encode("ledgernode:commit\n"), encode([chainId, qc.height, qc.round, qc.blockHash]));
  for (const [index, sig] of qc.signatures) {
    if (index < 0n || index >= BigInt(keys.length)) throw badQc(`qc signature from unknown validator ${index}`);
    if (seen.has(index)) throw badQc(`qc lists validator ${index} twice`);
    seen.add(index);
    if (!(await c.verify(keys[Number(index)].raw, sig, message))) {
      throw badQc(`qc signature of validator ${index} does not verify`);
    }
  }
  const n = keys.length;
  const quorum = n - Math.floor((n - 1) / 3);
  if (seen.size < quorum) throw badQc(`qc has ${seen.size} signatures, needs ${quorum}`);
}

// -- the Merkle log (merkle.py, RFC 9162) -----------------------------------------------------

const PROOF_MAX_HASHES = 64;

async function nodeHash(c, left, right) {
  return c.sha256(concat(Uint8Array.of(1), left, right));
}

export async function leafHash(c, leaf) {
  return c.sha256(concat(Uint8Array.of(0), leaf));
}

function upToARightChild(fn, sn) {
  while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
  return [fn, sn];
}

export async function verifyInclusion(c, leaf, index, size, proof, root) {
  if (!(index >= 0n && index < size) || proof.length > PROOF_MAX_HASHES) return false;
  let fn = index, sn = size - 1n, r = leaf;
  for (const p of proof) {
    if (p.length !== 32 || sn === 0n) return false;
    if ((fn & 1n) || fn === sn) {
      r = await nodeHash(c, p, r);
      [fn, sn] = upToARightChild(fn, sn);
    } else {
      r = await nodeHash(c, r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n && equalBytes(r, root);
}

export async function verifyConsistency(c, oldSize, newSize, oldRoot, newRoot, proof) {
  if (!(oldSize >= 0n && oldSize <= newSize) || proof.length > PROOF_MAX_HASHES) return false;
  if (proof.some((p) => p.length !== 32)) return false;
  if (oldSize === newSize) return equalBytes(oldRoot, newRoot) && proof.length === 0;
  if (oldSize === 0n) return proof.length === 0 && equalBytes(oldRoot, await c.sha256(new Uint8Array(0)));
  if (proof.length === 0) return false;
  const path = (oldSize & (oldSize - 1n)) === 0n ? [oldRoot, ...proof] : [...proof];
  let fn = oldSize - 1n, sn = newSize - 1n;
  while (fn & 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0], sr = path[0];
  for (const p of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) || fn === sn) {
      fr = await nodeHash(c, p, fr);
      sr = await nodeHash(c, p, sr);
      [fn, sn] = upToARightChild(fn, sn);
    } else {
      sr = await nodeHash(c, sr, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return equalBytes(fr, oldRoot) && equalBytes(sr, newRoot) && sn === 0n;
}

// -- the state map (statemap.py) ---------------------------------------------------------------

const SIBLINGS_MAX = 256;
export const VALUE_LIMITS = DEFAULT_LIMITS;
const HEX64 = /^[0-9a-f]{64}$/;

export function mapPath(c, namespace, name) {
  return c.tagged("map-path", encode([namespace, name]));
}

function bit(p, i) {
  return (p[i >> 3] >> (7 - (i & 7))) & 1;
}

function samePrefix(a, b, bits) {
  const whole = bits >> 3, rest = bits & 7;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  return rest === 0 || ((a[whole] ^ b[whole]) >> (8 - rest)) === 0;
}

export async function verifyMapProof(c, root, p, valueBytes, proof) {
  const { leaf, siblings } = proof;
  const d = siblings.length;
  let h;
  if (leaf === null) {
    if (valueBytes !== null) return false;
    h = new Uint8Array(32);
  } else {
    if (valueBytes === null) {
      if (equalBytes(leaf.path, p) || !samePrefix(leaf.path, p, d)) return false;
    } else if (!equalBytes(leaf.path, p) || !equalBytes(leaf.valueHash, await c.tagged("map-value", valueBytes))) {
      return false;
    }
    h = await c.tagged("map-leaf", concat(leaf.path, leaf.valueHash));
  }
  for (const [j, sibling] of siblings.entries()) {
    h = await c.tagged("map-inner", bit(p, d - 1 - j) ? concat(sibling, h) : concat(h, sibling));
  }
  return equalBytes(h, root);
}

function badProof(message) {
  return new InvalidInput("bad_proof", message);
}

function hex32(text, where) {
  if (!isStr(text) || !HEX64.test(text)) throw badProof(`${where} must be 64 lowercase hex characters`);
  return fromhex(text);
}

export function mapProofOfJson(doc) {
  if (!keysAre(doc, ["leaf", "siblings"])) throw badProof("proof must have exactly the keys leaf, siblings");
  const siblings = doc.get("siblings");
  if (!Array.isArray(siblings)) throw badProof("proof.siblings must be a JSON array");
  if (siblings.length > SIBLINGS_MAX) throw badProof(`proof.siblings holds more than ${SIBLINGS_MAX} hashes`);
  const parsed = siblings.map((s, j) => hex32(s, `proof.siblings[${j}]`));
  const leaf = doc.get("leaf");
  if (leaf === null) return { leaf: null, siblings: parsed };
  if (!keysAre(leaf, ["path", "value_hash"])) throw badProof("proof.leaf must have exactly the keys path, value_hash");
  return { leaf: { path: hex32(leaf.get("path"), "proof.leaf.path"), valueHash: hex32(leaf.get("value_hash"), "proof.leaf.value_hash") }, siblings: parsed };
}
