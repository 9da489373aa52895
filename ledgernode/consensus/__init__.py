"""PBFT-lite consensus: a pure state machine (core) and its messages."""

from .core import Config, Equivocation, PersistedState, Ready, Replica
from .messages import (
    BlockData, Blocks, Commit, FetchBlocks, Message, Prepare, Proposal, RoundChange, Status,
    decode_message, encode_message,
)

__all__ = [
    "Config", "Equivocation", "PersistedState", "Ready", "Replica", "BlockData", "Blocks",
    "Commit", "FetchBlocks", "Message", "Prepare", "Proposal", "RoundChange", "Status",
    "decode_message", "encode_message",
]
