// Which validators certify a header: the genesis set and its certified changes
// (docs/protocol.md section 12.2; auditing/epochs.py). A chain is a list of epochs
// {since, validators}, the genesis set first.

import { InvalidInput, decode } from "./msgpack.js";
import { equalBytes, hex, isBytes, isInt, isMap, isStr, keysAre } from "./text.js";
import { VALUE_LIMITS, checkQc, decodeHeader, loadPublicKey, qcOfJson, valsetHash } from "./ledger.js";
import { CheckFailed, Where, checkEntry, unb64 } from "./failures.js";

const EPOCHS_MAX = 1000;

export function epochAt(chain, height) {
  let number = 0;
  chain.forEach((e, i) => { if (e.since <= height) number = i; });
  return [number, chain[number]];
}

function bad(detail) {
  return new CheckFailed("epochs", "验证节点集合的变更记录无效（被改动，或不是由当时的验证节点认证的）",
    "a change of the validator set is invalid (altered, or not certified by the validators of its time)", detail);
}

async function newSet(c, value, header) {
  const m = decode(value, VALUE_LIMITS);
  if (!keysAre(m, ["validators", "since"]) || !Array.isArray(m.get("validators"))) {
    throw bad("a validators entry has exactly the keys ['since', 'validators']");
  }
  if (!isInt(m.get("since")) || m.get("since") !== header.height + 1n) {
    throw bad(`the new set must start at height ${header.height + 1n}, the one after its block`);
  }
  const members = m.get("validators");
  if (!members.every((v) => keysAre(v, ["dept", "name", "pubkey"]) && isStr(v.get("dept")) && isStr(v.get("name"))
      && isBytes(v.get("pubkey")))) {
    throw bad("each validator has exactly the keys ['dept', 'name', 'pubkey']");
  }
  const out = [];
  for (const v of members) {
    try {
      out.push({ dept: v.get("dept"), name: v.get("name"), pubkey: await loadPublicKey(c, v.get("pubkey")) });
    } catch (exc) {
      if (!(exc instanceof InvalidInput)) throw exc;
      throw bad(`the new set is not valid: ${exc.message}`);
    }
  }
  if (out.length === 0 || new Set(out.map((v) => hex(v.pubkey.raw))).size !== out.length) {
    throw bad("the new set is not valid: a validator set is non-empty and lists a key once");
  }
  return out;
}

export async function checkEpochs(c, doc, genesis) {
  if (!Array.isArray(doc) || doc.length > EPOCHS_MAX) {
    throw new CheckFailed("epochs", "验证节点集合的变更记录已损坏", "the list of validator set changes is damaged",
      `epochs must be a list of at most ${EPOCHS_MAX}`);
  }
  const chain = [{ since: 1n, validators: genesis.validators }];
  for (const [k, element] of doc.entries()) {
    const where = new Where(`第 ${k + 1} 次验证节点变更`, `validator set change ${k + 1}`);
    if (!keysAre(element, ["header", "qc", "validators"])) throw bad(`epochs[${k}] must have exactly the keys ['header', 'qc', 'validators']`);
    let header, qc;
    try {
      header = await decodeHeader(c, unb64(element.get("header"), "epochs", where, new Where("区块头", "header")));
      qc = qcOfJson(element.get("qc"));
    } catch (exc) {
      if (!(exc instanceof InvalidInput)) throw exc;
      throw bad(`epochs[${k}]: ${exc.message}`);
    }
    const current = chain[chain.length - 1];
    if (header.chain !== genesis.chainId || header.height < current.since) {
      throw bad(`epochs[${k}] is of another chain, or not after the change before it`);
    }
    if (!equalBytes(header.valset, await valsetHash(c, current.validators))) {
      throw bad(`epochs[${k}]'s header is not certified by epoch ${k}'s set (valset)`);
    }
    try {
      await checkQc(c, qc, header, genesis.chainId, current.validators.map((v) => v.pubkey));
    } catch (exc) {
      if (!(exc instanceof InvalidInput)) throw exc;
      throw bad(`epochs[${k}]'s QC under epoch ${k}'s set: ${exc.message}`);
    }
    const value = await checkEntry(c, element.get("validators"), header.state, "validators", "", "epochs",
      `${where.zh}的验证节点条目`, `${where.en}'s validators entry`);
    if (value === null) throw bad(`epochs[${k}] proves no validators entry`);
    chain.push({ since: header.height + 1n, validators: await newSet(c, value, header) });
  }
  return chain;
}
