"""Auditing: what a node hands auditors and courts, and the offline checks of it
(docs/protocol.md sections 8 and 9, docs/verification.md).

Each kind of document is built and checked in one module, beside each other:

  bundle.py       evidence bundles (one record, its block, optionally a later checkpoint)
  answers.py      subject histories, certificate status, dataset shares, provenance
  checkpoints.py  checkpoints and the consistency proof between two of them
  certificate.py  the printable certificate page with its bundle embedded

and they share:

  checks.py       the one check runner, CheckFailed and the Verdict
  proofs.py       a header of this chain and its QC, a signed record, inclusion, consistency
  parse.py        base64 / hex fields, bounded JSON files, the genesis file, what a document is
  reader.py       what the builders read from a node's ledger (LedgerReader)

The checks trust only the genesis file. So that an auditor can run them on an
offline machine, nothing in this package imports aiohttp or plyvel, nor
ledgernode.api, .net, .storage or .node: builders take a LedgerReader, which the
node's store provides. The command line's entry is ledgernode/verify.py.
"""
