"""Datasets and their sharing (docs/protocol.md section 5): dataset.publish,
share.grant, share.revoke and share.access, with their ledger rules and the view of a
dataset's grants.

Facts (state.BlockState writes them, docs/storage.md lists their keys):

  owner/<dataset subject>       {"dept", "record", "classification", "grantees"}
                                the first dataset.publish (dept, record), the latest
                                one's classification, and per department its grants not
                                revoked, {dept: {grant id hex: expires}} (at most
                                GRANTS_KEPT_PER_DEPT, those expiring last): what read
                                access asks (ledgernode/access.py). Owner facts of before
                                hold only dept and record: access treats them as sensitive
                                with grantees unknown, and they stay so (no grant made
                                before could be counted)
  grant/<grant record id hex>   {"dataset", "owner", "to_dept", "expires", "revoked"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..genesis import Signer
from ..times import utc_text
from .schema import DEPT, HASH, TEXT, TIME, Family, Field, Ledger, RecordType, Update, one_of, violation

if TYPE_CHECKING:
    from ..records import Envelope

OWNER = "owner"  # fact kinds
GRANT = "grant"
CLASSIFICATIONS = ("public", "internal", "sensitive")
CLASSIFICATION = one_of("classification", CLASSIFICATIONS)
# Live grants the owner fact keeps per grantee department; past it those expiring first are
# forgotten, which only ever denies a read (the fact stays small whatever an owner grants).
GRANTS_KEPT_PER_DEPT = 8


# -- ledger rules ---------------------------------------------------------------------


def _publish(ledger: Ledger, env: Envelope, signer: Signer) -> list[Update]:
    rec = env.record
    owner = ledger.fact(OWNER, rec.subject)
    if owner is not None and owner["dept"] != signer.dept:
        raise violation("dataset.owner", f"dataset {rec.subject} is owned by {owner['dept']} "
                        f"(published{ledger.since(owner['record'])}); only its owner may re-publish it")
    if owner is None:
        return [(OWNER, rec.subject, {"dept": signer.dept, "record": env.record_id.hex(),
                                      "classification": rec.body["classification"], "grantees": {}})]
    return [(OWNER, rec.subject, {**owner, "classification": rec.body["classification"]})]


def _grantees(owner: Mapping[str, Any], dept: str, grant_id: str, expires: int | None) -> dict[str, Any]:
    """The owner fact with `dept`'s live grant `grant_id` added (expires given) or removed
    (None). An owner fact of before, which has no grantees, keeps none: it never learnt
    of the grants made before it, so a count from now on would be wrong."""
    if "grantees" not in owner:
        return dict(owner)
    grantees = {d: dict(g) for d, g in owner["grantees"].items()}
    live = grantees.setdefault(dept, {})
    if expires is None:
        live.pop(grant_id, None)
    else:
        live[grant_id] = expires
        while len(live) > GRANTS_KEPT_PER_DEPT:
            live.pop(min(live, key=lambda g: (live[g], g)))
    if not live:
        del grantees[dept]
    return {**owner, "grantees": grantees}


def _require_owner(ledger: Ledger, dataset: str, signer: Signer) -> dict[str, Any]:
    owner = ledger.fact(OWNER, dataset)
    if owner is None:
        raise violation("dataset.published", f"dataset {dataset} was never published")
    if owner["dept"] != signer.dept:
        raise violation("dataset.owner", f"dataset {dataset} is owned by {owner['dept']}, not {signer.dept}")
    return owner


def _grant_of(ledger: Ledger, grant_id: bytes, dataset: str) -> dict[str, Any]:
    grant = ledger.fact(GRANT, grant_id.hex())
    if grant is None or grant["dataset"] != dataset:
        raise violation("grant.exists", f"no grant {grant_id.hex()} for dataset {dataset}")
    return grant


def _grant(ledger: Ledger, env: Envelope, signer: Signer) -> list[Update]:
    rec, body = env.record, env.record.body
    owner = _require_owner(ledger, rec.subject, signer)
    if body["expires"] <= ledger.block_time:
        raise violation("grant.expires", f"the grant expires at {utc_text(body['expires'])}, "
                        f"not after the block time {utc_text(ledger.block_time)}")
    grant = {
        "dataset": rec.subject, "owner": signer.dept, "to_dept": body["to_dept"],
        "expires": body["expires"], "revoked": False,
    }
    return [(GRANT, env.record_id.hex(), grant),
            (OWNER, rec.subject, _grantees(owner, body["to_dept"], env.record_id.hex(), body["expires"]))]


def _revoke(ledger: Ledger, env: Envelope, signer: Signer) -> list[Update]:
    rec, body = env.record, env.record.body
    owner = _require_owner(ledger, rec.subject, signer)
    grant = _grant_of(ledger, body["grant"], rec.subject)
    if grant["revoked"]:
        raise violation("grant.live", f"grant {body['grant'].hex()} is already revoked")
    return [(GRANT, body["grant"].hex(), {**grant, "revoked": True}),
            (OWNER, rec.subject, _grantees(owner, grant["to_dept"], body["grant"].hex(), None))]


def _access(ledger: Ledger, env: Envelope, signer: Signer) -> list[Update]:
    rec, body = env.record, env.record.body
    grant = _grant_of(ledger, body["grant"], rec.subject)
    if grant["to_dept"] != signer.dept:
        raise violation("access.grantee", f"grant {body['grant'].hex()} is for {grant['to_dept']}, "
                        f"not {signer.dept}")
    if grant["revoked"]:
        raise violation("access.grant_live", f"grant {body['grant'].hex()} was revoked")
    if grant["expires"] <= ledger.block_time:
        raise violation("access.grant_live", f"grant {body['grant'].hex()} expired at "
                        f"{utc_text(grant['expires'])}, before the block time {utc_text(ledger.block_time)}")
    return []


# -- the types ------------------------------------------------------------------------

PUBLISH = RecordType("dataset.publish", (
    Field("title", TEXT), Field("content_hash", HASH), Field("schema_hash", HASH),
    Field("classification", CLASSIFICATION),
), _publish)
SHARE_GRANT = RecordType("share.grant", (
    Field("to_dept", DEPT), Field("purpose", TEXT), Field("legal_basis", TEXT), Field("expires", TIME),
), _grant)
SHARE_REVOKE = RecordType("share.revoke", (Field("grant", HASH),), _revoke)
# signed by the grantee, so any department may need it: every department may read
# data shared with it
SHARE_ACCESS = RecordType("share.access", (
    Field("grant", HASH), Field("purpose", TEXT), Field("content_hash", HASH),
), _access, for_every_dept=True)
FAMILY = Family("dataset", (PUBLISH, SHARE_GRANT, SHARE_REVOKE, SHARE_ACCESS))


# -- derived views (the node's answers and the auditors' re-check share them) --------------


def dataset_owner(history: list[Envelope], depts: Mapping[str, str]) -> str | None:
    """The dept that signed a dataset's first publish record, from its records in log order;
    `depts` gives each signing key's dept (key_id -> dept)."""
    publish = next((env for env in history if env.record.type == PUBLISH.name), None)
    return depts.get(publish.record.key) if publish else None


def dataset_grants(history: list[Envelope], depts: Mapping[str, str]) -> list[dict[str, Any]]:
    """Grants of a dataset in log order, each with its revocation and its accesses."""
    grants: dict[str, dict[str, Any]] = {}
    for env in history:
        rec, rid = env.record, env.record_id.hex()
        dept = depts.get(rec.key)
        if rec.type == SHARE_GRANT.name:
            grants[rid] = {
                "grant": rid, "by": dept, "to_dept": rec.body["to_dept"],
                "purpose": rec.body["purpose"], "legal_basis": rec.body["legal_basis"],
                "expires": rec.body["expires"], "revoked_by": None, "accesses": [],
            }
        elif rec.type in (SHARE_REVOKE.name, SHARE_ACCESS.name) and rec.body["grant"].hex() in grants:
            grant = grants[rec.body["grant"].hex()]
            if rec.type == SHARE_REVOKE.name:
                grant["revoked_by"] = rid
            else:
                grant["accesses"].append({
                    "record": rid, "dept": dept, "purpose": rec.body["purpose"],
                    "ts": rec.ts, "content_hash": rec.body["content_hash"].hex(),
                })
    return list(grants.values())
