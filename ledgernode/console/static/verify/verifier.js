// The offline verifier of evidence bundles in the browser: the steps of
// `python -m ledgernode verify BUNDLE --genesis GENESIS [--file F]` (ledgernode/verify.py,
// auditing/bundle.py; docs/protocol.md sections 9 and 12, docs/verification.md section 2.1),
// with the same check names, labels, reasons and claim. Nothing is sent anywhere.
//
//   verifyBundle(bundleBytes, genesisBytes, {fileBytes, forceFallback}) ->
//     {ok, checks: [{name, ok, zh, en, part?, reason?: {zh, en}, error?}], failed, verdict: {zh, en},
//      claim, facts, source, crypto}
//   extractBundle(fileBytes) -> the bundle's JSON bytes (from the bundle itself or a saved
//     certificate.html); both throw Unusable where the Python verifier exits 2.

import { InvalidInput, decode } from "./msgpack.js";
import { cryptoFor } from "./crypto.js";
import {
  Unusable, clean, equalBytes, hex, isBytes, isInt, isMap, isStr, keysAre, parseJson, pyEquals, unbase64, utcText,
  utf8Text,
} from "./text.js";
import {
  GOVERNANCE_PREFIX, ROLES_MAX, RECORD_SIGN_PREFIX, VALUE_LIMITS, checkQc, decodeEnvelope, decodeHeader, envelopePair,
  leafHash, loadGenesis, loadPublicKey, mapPath, mapProofOfJson, qcOfJson, roleAllows, valsetHash, verifyConsistency,
  verifyInclusion, verifyMapProof,
} from "./ledger.js";
import { checkEpochs, epochAt } from "./epochs.js";
import { CheckFailed, Where, hashList, unb64, checkEntry } from "./failures.js";

export { Unusable };

// auditing/bundle.CHECKS, in order: tests/unit/test_verify_js.py keeps the two the same.
export const CHECKS = [
  ["format", "证据包格式为第 2 版且字段齐全", "the bundle is a version 2 bundle with every field"],
  ["genesis", "创世文件与链标识一致", "genesis file and chain id match"],
  ["epochs", "验证节点集合的变更记录有效", "the validator set's changes (epochs) are valid"],
  ["header", "区块头格式正确且属于本链", "block header is canonical and belongs to this chain"],
  ["qc", "区块获得法定数量验证节点签名", "block is certified by a quorum of validators"],
  ["record", "记录格式正确、属于本链、编号一致", "record is canonical, of this chain, and has its id"],
  ["inclusion", "记录包含在区块的默克尔日志中", "record is included in the block's Merkle log"],
  ["checkpoint", "检查点获得签名且延续了该区块（一致性证明）", "the checkpoint is certified and extends the block (consistency proof)"],
  ["key", "签名密钥在检查点状态中登记、当时有效、有权签署且签名有效", "the signing key is in the checkpoint's state, could sign then, may sign the type, and the signature verifies"],
  ["file", "原始文件与记录中的哈希一致", "original file matches the hash in the record"]
];
// auditing/bundle.TYPE_NAMES
export const TYPE_NAMES = {
  "dataset.publish": ["数据目录发布", "dataset published"],
  "share.grant": ["数据共享授权", "data sharing granted"],
  "share.revoke": ["数据共享撤销", "data sharing revoked"],
  "share.access": ["共享数据访问", "shared data accessed"],
  "cert.issue": ["电子证照签发", "certificate issued"],
  "cert.revoke": ["电子证照吊销", "certificate revoked"],
  "cert.suspend": ["电子证照暂停", "certificate suspended"],
  "cert.resume": ["电子证照恢复", "certificate resumed"],
  "evidence.notarize": ["电子数据存证", "evidence notarized"],
  "trace.event": ["溯源事件", "tracing event"]
};
export const FORMAT = "ledgernode-evidence/2";
export const PAGE_MAX_BYTES = 16 << 20;  // auditing/parse.PAGE_MAX_BYTES
export const ANSWER_MAX_BYTES = 16 << 20;  // a JSON file `verify` reads (auditing/parse.py)
const KINDS = ["subject", "status", "shares", "provenance"];
const BUNDLE_FIELDS = [["chain_id", isStr], ["genesis_hash", isStr], ["record_id", isStr], ["envelope", isStr],
  ["leaf_index", isInt], ["block", isMap], ["inclusion", Array.isArray], ["epochs", Array.isArray], ["state", isMap]];
const RECORD = new Where("记录", "the record");
const BLOCK = new Where("区块", "the block");
const CHECKPOINT = new Where("检查点", "the checkpoint");

// -- the file: a bundle, or a certificate page holding one ------------------------------------

function isPage(bytes) {
  let i = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while ([0x20, 0x09, 0x0d, 0x0a].includes(bytes[i])) i++;
  return bytes[i] === 0x3c;
}

function attributes(tag) {
  const out = [];
  const re = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  for (const m of tag.matchAll(re)) out.push([m[1].toLowerCase(), m[2] ?? m[3] ?? m[4] ?? null]);
  return out;
}

// The text of every <script id="evidence-bundle"> element (auditing/certificate.py embeds one).
function bundleBlocks(text) {
  const blocks = [];
  const start = /<script(?=[\s/>])([^>]*)>/gi;
  let m;
  while ((m = start.exec(text)) !== null) {
    const end = /<\/script(?=[\s/>])/gi;
    end.lastIndex = start.lastIndex;
    const close = end.exec(text);
    const wanted = attributes(m[1]).some(([k, v]) => k === "id" && v === "evidence-bundle");
    if (close === null) {
      if (wanted) throw new Unusable("the certificate page ends inside its evidence bundle: the file is cut off");
      break;
    }
    if (wanted) blocks.push(text.slice(start.lastIndex, close.index));
    start.lastIndex = close.index;
  }
  return blocks;
}

export function extractBundle(fileBytes) {
  if (fileBytes.length > PAGE_MAX_BYTES) throw new Unusable(`the file is larger than ${PAGE_MAX_BYTES} bytes`);
  if (!isPage(fileBytes)) {
    if (fileBytes.length > ANSWER_MAX_BYTES) throw new Unusable(`the file is larger than ${ANSWER_MAX_BYTES} bytes`);
    return fileBytes;
  }
  let text;
  try {
    text = utf8Text(fileBytes);
  } catch (exc) {
    throw new Unusable("the certificate page is not UTF-8 text (save it again as HTML)");
  }
  const blocks = bundleBlocks(text);
  if (blocks.length !== 1) {
    throw new Unusable(`the page holds ${blocks.length} embedded evidence bundles (<script id="evidence-bundle">); `
      + "a certificate page from the ledger holds exactly one, so this is not one or it was edited");
  }
  return new TextEncoder().encode(blocks[0]);
}

// -- the checks ---------------------------------------------------------------------------------

const plain = (v) => (typeof v === "bigint" ? (Number.isSafeInteger(Number(v)) ? Number(v) : String(v)) : v);

class BundleChecks {
  constructor(c, bundle, genesis, fileBytes) {
    Object.assign(this, { c, bundle, genesis, fileBytes, facts: {} });
  }

  names() {
    return CHECKS.map(([name]) => name).filter((name) => name !== "file" || this.fileBytes != null);
  }

  format() {
    for (const [name, check] of BUNDLE_FIELDS) {
      if (!check(this.bundle.get(name))) {
        throw new CheckFailed("format", `证据包缺少字段 ${name} 或其类型不对`,
          `the bundle's ${name} field is missing or of the wrong type`, `${name} has the wrong JSON type`);
      }
    }
    if (!keysAre(this.bundle.get("state"), ["checkpoint", "consistency", "key"])) {
      throw new CheckFailed("format", "证据包的状态部分字段不对", "the bundle's state section has the wrong fields",
        "state must have exactly the keys ['checkpoint', 'consistency', 'key']");
    }
  }

  genesisCheck() {
    const zh = "证据包不是用这个创世文件生成的（您的创世文件不对，或证据包来自另一个账本）";
    const en = "the bundle was made for another genesis file (you have the wrong genesis file, or the bundle is from another ledger)";
    if (this.bundle.get("genesis_hash") !== this.genesis.genesisHash) {
      throw new CheckFailed("genesis", zh, en, "bundle genesis_hash is not the SHA-256 of this genesis file");
    }
    if (this.bundle.get("chain_id") !== this.genesis.chainId) {
      throw new CheckFailed("genesis", zh, en, "bundle chain_id is not the genesis chain id");
    }
  }

  async epochs() {
    this.chain = await checkEpochs(this.c, this.bundle.get("epochs"), this.genesis);
    this.facts.epoch = this.chain.length - 1;
  }

  async header() {
    this.head = await headerOf(this.c, this.bundle.get("block").get("header"), this.genesis, BLOCK, this.chain);
    const h = this.head;
    this.facts.block = { height: plain(h.height), time: utcText(h.time), hash: hex(h.blockHash), log_size: plain(h.logSize), log_root: hex(h.logRoot) };
  }

  async qc() {
    const signers = await certify(this.c, this.bundle.get("block").get("qc"), this.head, this.genesis, BLOCK, this.chain);
    const [number, epoch] = epochAt(this.chain, this.head.height);
    Object.assign(this.facts.block, { epoch: number, validators: epoch.validators.length });
    this.facts.certified_by = signers.filter((i) => i >= 0n && i < BigInt(epoch.validators.length)).map((i) => {
      const v = epoch.validators[Number(i)];
      return { validator: Number(i), dept: v.dept, name: v.name };
    });
  }

  async record() {
    this.env = await recordOf(this.c, this.bundle.get("envelope"), this.bundle.get("record_id"), this.genesis, RECORD);
    const rec = this.env.record;
    this.facts.record = {
      id: hex(this.env.recordId), type: rec.type, subject: rec.subject,
      body: Object.fromEntries([...rec.body].map(([k, v]) => [k, isBytes(v) ? hex(v) : plain(v)])),
      refs: rec.refs.map(hex), claimed_time: utcText(rec.ts), signer: { key_id: rec.key },
    };
  }

  async inclusion() {
    const index = this.bundle.get("leaf_index");
    const h = this.head;
    if (!(h.logStart <= index && index < h.logSize)) {
      throw new CheckFailed("inclusion", "记录在日志中的位置超出该区块的范围", "the record's position in the log is outside this block",
        `leaf ${index} is outside the leaves [${h.logStart}, ${h.logSize})`);
    }
    const proof = hashList(this.bundle.get("inclusion"), "inclusion", "记录的包含证明", "the record's inclusion proof");
    if (!(await verifyInclusion(this.c, await leafHash(this.c, this.env.raw), index, h.logSize, proof, h.logRoot))) {
      throw new CheckFailed("inclusion", "记录的包含证明不能连到该区块的日志根（证明、位置或记录被改动）",
        "the record's inclusion proof does not lead to the log root of this block (the proof, the position or the record was altered)",
        `inclusion path does not lead to the log_root at leaf ${index}`);
    }
    this.leaf = index;
    this.facts.leaf_index = plain(index);
  }

  async checkpoint() {
    const state = this.bundle.get("state");
    const cp = (this.cp = await checkCheckpoint(this.c, state.get("checkpoint"), this.genesis, CHECKPOINT, this.chain));
    const h = this.head;
    if (cp.height < h.height || (cp.height === h.height && !equalBytes(cp.raw, h.raw))) {
      throw new CheckFailed("checkpoint", "检查点早于记录所在区块，或与之同高却不是同一区块",
        "the checkpoint is older than the record's block, or at its height but another block",
        `checkpoint height ${cp.height}, block height ${h.height}`);
    }
    const proof = hashList(state.get("consistency"), "checkpoint", "一致性证明", "the consistency proof");
    if (!(await verifyConsistency(this.c, h.logSize, cp.logSize, h.logRoot, cp.logRoot, proof))) {
      throw new CheckFailed("checkpoint", "检查点不是该区块的延续（一致性证明不成立：账本被改写，或证明被改动）",
        "the checkpoint does not extend the record's block (the consistency proof fails: the ledger was rewritten, or the proof was altered)",
        "the checkpoint does not extend the record's block");
    }
    this.facts.checkpoint = { height: plain(cp.height), time: utcText(cp.time), log_size: plain(cp.logSize) };
  }

  async key() {
    const rec = this.env.record;
    const value = await checkEntry(this.c, this.bundle.get("state").get("key"), this.cp.state, "key", rec.key, "key",
      "签名密钥的条目", "the signing key's entry");
    if (value === null) {
      throw new CheckFailed("key", "签名密钥不在检查点的状态中（从未登记）", "the signing key is not in the checkpoint's state (it was never registered)",
        `no key entry for ${rec.key}`);
    }
    const key = await parseKey(this.c, value);
    const blockSet = epochAt(this.chain, this.head.height)[1].validators.map((v) => hex(v.pubkey.raw));
    await checkSigned(this.c, this.env, this.leaf, key, blockSet);
    this.facts.record.signer = { key_id: rec.key, dept: key.dept, roles: key.roles, from: plain(key.from), until: plain(key.until) };
  }

  async file() {
    const expected = this.env.record.body.get("content_hash");
    if (!isBytes(expected)) {
      throw new CheckFailed("file", "这类记录没有可与文件比对的哈希", "this type of record has no file hash to compare with",
        `a ${this.env.record.type} record has no content_hash`);
    }
    const digest = await this.c.sha256(this.fileBytes);
    if (!equalBytes(digest, expected)) {
      throw new CheckFailed("file", "原始文件与记录中的哈希不一致（不是同一个文件，或文件被改动）",
        "the original file does not match the record's hash (a different or altered file)",
        `SHA-256 of the file is ${hex(digest)}, record says ${hex(expected)}`);
    }
  }

  claim() {
    const f = this.facts, rec = f.record, height = f.block.height, leaf = f.leaf_index;
    const subject = clean(rec.subject), dept = clean(rec.signer.dept);
    const typeZh = (TYPE_NAMES[rec.type] ?? [""])[0];
    let zh = `记录 ${rec.id.slice(0, 16)}…：${typeZh}（${rec.type}），主体 ${subject}，由 ${dept} 签名，日志位置 ${leaf}，区块高度 ${height}`;
    let en = `record ${rec.id.slice(0, 16)}… (${rec.type}) about ${subject}, signed by ${dept}, leaf ${leaf}, block height ${height}`;
    const until = rec.signer.until;
    if (until !== null) {
      zh += `；签名早于该密钥在日志位置 ${until} 被吊销`;
      en += `; signed before the key was revoked at leaf ${until}`;
    }
    if (this.fileBytes != null) {
      zh += "；原始文件与记录中的哈希一致";
      en += "; the original file matches it";
    }
    const cp = f.checkpoint;
    const epoch = epochAt(this.chain, BigInt(cp.height))[0];
    zh += `；检查点高度 ${cp.height}（${cp.time}，第 ${epoch} 届验证节点）`;
    en += `; checkpoint height ${cp.height} (${cp.time}, validator epoch ${epoch})`;
    return { zh, en, record_id: rec.id, type: rec.type, subject: rec.subject, dept: rec.signer.dept, leaf_index: leaf, height };
  }

  async run() {
    const labels = Object.fromEntries(CHECKS.map(([name, zh, en]) => [name, [zh, en]]));
    const steps = { format: () => this.format(), genesis: () => this.genesisCheck() };
    const checks = [];
    for (const name of this.names()) {
      const [zh, en] = labels[name];
      const entry = { name, ok: false, zh, en };
      checks.push(entry);
      try {
        try {
          await (steps[name] ?? (() => this[name]()))();
        } catch (exc) {
          // checks.run_checks: a codec or record rule no check names is still a failed check
          if (exc instanceof InvalidInput) throw new CheckFailed(name, `${zh}：未通过`, `${en}: failed`, exc.message);
          throw exc;
        }
      } catch (exc) {
        if (!(exc instanceof CheckFailed)) throw exc;
        Object.assign(entry, { part: exc.part, reason: { zh: exc.zh, en: exc.en }, error: exc.message });
        return { ok: false, checks, failed: name, verdict: { zh: exc.zh, en: exc.en }, claim: null, facts: this.facts };
      }
      entry.ok = true;
    }
    const claim = this.claim();
    return { ok: true, checks, failed: null, verdict: { zh: claim.zh, en: claim.en }, claim, facts: this.facts };
  }
}

// -- proofs.py, checkpoints.py, lists.py ----------------------------------------------------------

export async function headerOf(c, value, genesis, where, chain) {
  const raw = unb64(value, "header", where, new Where("区块头", "header"));
  let header;
  try {
    header = await decodeHeader(c, raw);
  } catch (exc) {
    if (!(exc instanceof InvalidInput)) throw exc;
    throw new CheckFailed("header", `${where.zh}的区块头被改动或已损坏（不是格式正确的区块头）`,
      `${where.en}'s header was altered or damaged (it is not a well-formed header)`, exc.message);
  }
  const epoch = epochAt(chain, header.height)[1];
  if (header.chain !== genesis.chainId || !equalBytes(header.valset, await valsetHash(c, epoch.validators))) {
    throw new CheckFailed("genesis", `${where.zh}属于另一个账本或另一组验证节点（与您的创世文件不符）`,
      `${where.en} belongs to another ledger or validator set (it does not match your genesis file)`,
      "header chain or validator set differs from the genesis");
  }
  return header;
}

const QC_REASONS = [
  ["different block", "{zh}的区块头不是验证节点签名的那个区块（区块头或提交证书被改动）",
    "{en}'s header is not the block the validators signed (the header or its commit certificate was altered)"],
  ["unknown validator", "{zh}的提交证书列出了创世文件中没有的验证节点", "{en}'s commit certificate names a validator that is not in your genesis file"],
  ["twice", "{zh}的提交证书把同一个验证节点列了两次", "{en}'s commit certificate lists one validator twice"],
  ["does not verify", "{zh}的提交证书中有验证节点签名无效（签名被改动，或不是用该节点的密钥签的）",
    "a validator signature in {en}'s commit certificate does not verify (it was altered, or made with another key)"],
  ["needs", "为{zh}签名的验证节点不足法定数量", "too few validators signed {en} (a quorum is needed)"],
  ["", "{zh}的提交证书（验证节点签名）已损坏或不完整", "{en}'s commit certificate (the validators' signatures) is damaged or incomplete"],
];

export async function certify(c, qcJson, header, genesis, where, chain) {
  let qc;
  try {
    qc = qcOfJson(qcJson);
    await checkQc(c, qc, header, genesis.chainId, epochAt(chain, header.height)[1].validators.map((v) => v.pubkey));
  } catch (exc) {
    if (!(exc instanceof InvalidInput)) throw exc;
    const [, zh, en] = QC_REASONS.find(([words]) => exc.message.includes(words));
    throw new CheckFailed("qc", zh.replace("{zh}", where.zh), en.replace("{en}", where.en), exc.message);
  }
  return qc.signatures.map(([i]) => i);
}

async function checkCheckpoint(c, cp, genesis, where, chain) {
  if (!isMap(cp)) {
    throw new CheckFailed("checkpoint", `${where.zh}缺失或不是对象`, `${where.en} is missing or not an object`, "checkpoint must be an object");
  }
  const header = await headerOf(c, cp.get("header"), genesis, where, chain);
  await certify(c, cp.get("qc"), header, genesis, where, chain);
  const summary = [["log_size", header.logSize], ["log_root", hex(header.logRoot)], ["height", header.height]];
  if (summary.some(([name, value]) => cp.has(name) && !pyEquals(cp.get(name), value))) {
    throw new CheckFailed("checkpoint", `${where.zh}的摘要（日志大小、日志根或高度）与其签名的区块头不符（摘要被改动）`,
      `${where.en}'s summary (log size, log root or height) differs from its signed header (the summary was altered)`,
      "checkpoint log_size/log_root/height differ from its header");
  }
  return header;
}

async function recordOf(c, value, claimedId, genesis, where) {
  const raw = unb64(value, "record_bytes", where, new Where("字节", "bytes"));
  const pair = envelopePair(raw);
  const altered = (pair === null ? null : hex(await c.tagged("record", pair[0]))) !== claimedId;
  let env;
  try {
    env = await decodeEnvelope(c, raw, genesis.chainId);
  } catch (exc) {
    if (!(exc instanceof InvalidInput)) throw exc;
    if (altered) {
      throw new CheckFailed("record_bytes", `${where.zh}的内容被改动（与记录编号、签名不再一致）`,
        `${where.en}'s bytes were altered (its id / signature no longer match)`, exc.message);
    }
    if (exc.code === "wrong_chain") {
      throw new CheckFailed("genesis", `${where.zh}属于另一个账本（链标识不同）`, `${where.en} was made for another ledger (a different chain id)`, exc.message);
    }
    throw new CheckFailed("record_bytes", `${where.zh}不是本账本的有效记录（格式损坏或字段不合规则）`,
      `${where.en} is not a valid record of this ledger (damaged, or a field breaks the rules)`, exc.message);
  }
  if (altered) {
    throw new CheckFailed("record_id", `${where.zh}的编号与记录内容不一致（编号被改动，或记录被替换）`,
      `${where.en}'s id does not match its bytes (the id was altered, or the record was replaced)`, "record_id does not match the hash of the record");
  }
  return env;
}

function keyBad(detail) {
  return new CheckFailed("key", "签名密钥的条目已损坏", "the signing key's entry is damaged", detail);
}

async function parseKey(c, value) {
  const m = decode(value, VALUE_LIMITS);
  if (!keysAre(m, ["pubkey", "dept", "roles", "from", "until"])) throw keyBad("a key entry has the wrong keys");
  const roles = m.get("roles"), from = m.get("from"), until = m.get("until");
  if (!isBytes(m.get("pubkey")) || !isStr(m.get("dept")) || !Array.isArray(roles) || roles.length < 1
      || roles.length > ROLES_MAX || !roles.every(isStr) || !isInt(from) || from < 0n
      || !(until === null || (isInt(until) && until >= from))) {
    throw keyBad("pubkey bin, dept str, roles [str], from int >= 0, until int >= from or nil");
  }
  let pubkey;
  try {
    pubkey = await loadPublicKey(c, m.get("pubkey"));
  } catch (exc) {
    if (!(exc instanceof InvalidInput)) throw exc;
    throw keyBad(exc.message);
  }
  return { pubkey, dept: m.get("dept"), roles, from, until };
}

async function checkSigned(c, env, leaf, key, validators) {
  const rec = env.record;
  if (key.pubkey.keyId !== rec.key) {
    throw new CheckFailed("key", "该记录的签名密钥条目属于另一个密钥", "the record's key entry is another key's",
      `key_id(pubkey) is ${key.pubkey.keyId}, the record names ${rec.key}`);
  }
  if (leaf < key.from || (key.until !== null && leaf >= key.until)) {
    throw new CheckFailed("key", "该记录签名时该密钥不可用（尚未加入或已被吊销）",
      "the record was signed when its key could not sign (not yet added, or revoked)", `leaf ${leaf} is outside the key's range`);
  }
  if (rec.type.startsWith(GOVERNANCE_PREFIX) && !validators.includes(hex(key.pubkey.raw))) {
    throw new CheckFailed("key", "该记录是治理记录，但签名者不是验证节点", "the record is a governance record not signed by a validator",
      `${rec.type} must be signed by a validator of the set certifying its block`);
  }
  if (!key.roles.some((role) => roleAllows(role, rec.type))) {
    throw new CheckFailed("key", "该记录的签名密钥无权签署这类记录", "the record's signing key is not allowed to sign this type of record",
      `roles do not allow ${rec.type}`);
  }
  const message = new Uint8Array([...RECORD_SIGN_PREFIX, ...env.recordBytes]);
  if (!(await c.verify(key.pubkey.raw, env.sig, message))) {
    throw new CheckFailed("key", "该记录的签名与其内容不符（记录或签名被改动）",
      "the record's signature does not match its bytes (the record or the signature was altered)",
      "record signature does not verify under the key entry's pubkey");
  }
}

// -- the entry ------------------------------------------------------------------------------------

export async function verifyBundle(bundleBytes, genesisBytes, opts = {}) {
  const c = cryptoFor(Boolean(opts.forceFallback));
  const fromPage = isPage(bundleBytes);
  const doc = parseJson(extractBundle(bundleBytes), fromPage ? "the evidence bundle embedded in the certificate page" : "the file");
  const genesis = await loadGenesis(c, genesisBytes);
  if (KINDS.includes(doc.get("kind"))) {
    throw new Unusable(`this file is a '${doc.get("kind")}' answer, not an evidence bundle: check it with --kind ${doc.get("kind")}`);
  }
  if (doc.get("format") !== FORMAT) throw new Unusable(`not an evidence bundle: format is not '${FORMAT}'`);
  const result = await new BundleChecks(c, doc, genesis, opts.fileBytes ?? null).run();
  return { ...result, source: fromPage ? "certificate page" : "bundle", crypto: c.kind };
}

export { mapPath, verifyMapProof, mapProofOfJson, unbase64 };
