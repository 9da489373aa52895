"""PBFT-lite consensus: a pure state machine (core), its messages, and the driver that
applies its outputs in order (driver; the events and effects are in consensus/driver.py)."""

from .chain import ChainBlocks
from .core import Replica
from .driver import Answer, Driver, Effect, Effects, Event, next_effect
from .messages import (
    BlockData, Blocks, Commit, FetchBlocks, Message, Prepare, Proposal, RoundChange, Status,
    decode_message, encode_message,
)
from .state import BlockView, Config, Equivocation, PersistedState, Ready

__all__ = [
    "BlockView", "ChainBlocks", "Config", "Equivocation", "PersistedState", "Ready", "Replica",
    "Answer", "Driver", "Effect", "Effects", "Event", "next_effect",
    "BlockData", "Blocks", "Commit", "FetchBlocks", "Message", "Prepare", "Proposal", "RoundChange",
    "Status", "decode_message", "encode_message",
]
