// A failed check and the reasons shared by several checks (auditing/checks.py, parse.py,
// lists.py): `part` names the part of the file that failed (docs/verification.md section 5),
// zh / en say so in plain words, `detail` is the technical detail.

import { InvalidInput, decode } from "./msgpack.js";
import { fromhex, isStr, keysAre, unbase64 } from "./text.js";
import { VALUE_LIMITS, mapPath, mapProofOfJson, verifyMapProof } from "./ledger.js";
import { equalBytes } from "./text.js";

export class CheckFailed extends Error {
  constructor(part, zh, en, detail = "") {
    super(`${zh} / ${en}` + (detail ? ` — 细节 detail: ${detail}` : ""));
    this.name = "CheckFailed";
    Object.assign(this, { part, zh, en, detail });
  }
}

export class Where {
  // What a reason is about, e.g. ("区块", "the block").
  constructor(zh, en) { this.zh = zh; this.en = en; }
}

export function unb64(value, part, where, what) {
  const out = unbase64(value);
  if (out === null) {
    throw new CheckFailed(part, `${where.zh}的${what.zh}缺失或已损坏（不是 base64 文本）`,
      `${where.en}'s ${what.en}: missing or damaged (not base64 text)`, `${what.en} is not a valid base64 string`);
  }
  return out;
}

const HEX32 = /^[0-9a-f]{64}$/;

export function hashList(value, part, zh, en) {
  if (!Array.isArray(value) || !value.every((p) => isStr(p) && HEX32.test(p))) {
    throw new CheckFailed(part, `${zh}已损坏（应为 64 位十六进制哈希的列表）`,
      `${en} is damaged (it must be a list of 64-hex-digit hashes)`, "a proof must be a list of 64-char lowercase hex hashes");
  }
  return value.map(fromhex);
}

// lists.check_entry: the value bytes `doc` proves for (namespace, name) under `root`, null
// if it proves absence.
export async function checkEntry(c, doc, root, namespace, name, part, zh, en) {
  if (!keysAre(doc, ["value", "proof"])) {
    throw new CheckFailed(part, `${zh}已损坏（字段不对）`, `${en} is damaged (its fields are wrong)`,
      "must be an object with exactly the keys ['proof', 'value']");
  }
  let value = null, proof;
  try {
    if (doc.get("value") !== null) {
      value = unbase64(doc.get("value"));
      if (value === null) throw new InvalidInput("bad_value", "value must be base64 text or null");
      decode(value, VALUE_LIMITS);  // canonical msgpack, or it proves nothing
    }
    proof = mapProofOfJson(doc.get("proof"));
  } catch (exc) {
    if (!(exc instanceof InvalidInput)) throw exc;
    throw new CheckFailed(part, `${zh}已损坏`, `${en} is damaged`, exc.message);
  }
  const p = await mapPath(c, namespace, name);
  if (value !== null && proof.leaf !== null && !equalBytes(proof.leaf.path, p)) {
    throw new CheckFailed(part, `${zh}是另一个条目（例如另一个密钥的条目），不是所需的那个`,
      `${en} is the entry of another name (e.g. another key's entry), not the one needed`,
      `the proof's leaf is at another path than the ${namespace} entry's`);
  }
  if (!(await verifyMapProof(c, root, p, value, proof))) {
    throw new CheckFailed(part, `${zh}与检查点的状态根不符（证明被改动，或属于另一个检查点）`,
      `${en} does not match the checkpoint's state root (the proof was altered, or it is from another checkpoint)`,
      `the ${namespace} entry's proof does not lead to the state root`);
  }
  return value;
}
