"""What a JetStream delivery's reply subject says: where the message sits in the stream and
in the consumer, and how often it was delivered.

``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>`` (v1,
9 tokens), or with a domain and an account hash after ``$JS.ACK`` (v2). Parsed by hand: it
is read on every delivery, and nats-py's ``Msg.metadata`` builds dataclasses for it.
"""

from __future__ import annotations

from typing import NamedTuple

_V1_TOKENS = 9


class AckInfo(NamedTuple):
    stream_seq: int
    consumer_seq: int
    delivered: int
    """How many times the consumer has delivered this message (1: the first time)."""


def ack_info(reply: str) -> AckInfo:
    tokens = reply.split(".")
    at = 4 if len(tokens) == _V1_TOKENS else 6
    return AckInfo(int(tokens[at + 1]), int(tokens[at + 2]), int(tokens[at]))
