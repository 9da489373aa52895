"""PBFT-lite consensus: a pure state machine (core) and its messages."""

from .chain import ChainBlocks
from .core import Replica
from .messages import (
    BlockData, Blocks, Commit, FetchBlocks, Message, Prepare, Proposal, RoundChange, Status,
    decode_message, encode_message,
)
from .state import BlockView, Config, Equivocation, PersistedState, Ready

__all__ = [
    "BlockView", "ChainBlocks", "Config", "Equivocation", "PersistedState", "Ready", "Replica",
    "BlockData", "Blocks", "Commit", "FetchBlocks", "Message", "Prepare", "Proposal", "RoundChange",
    "Status", "decode_message", "encode_message",
]
