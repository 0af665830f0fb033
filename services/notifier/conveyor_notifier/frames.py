"""The public frame of a stored event, as every client gets it: ``{seq, type, job_id, at,
actor, data}``, encoded once as an unmasked websocket text frame. The stored bytes are sent
as they are, except for an event type that has changed incompatibly (conveyor_events.upcast):
that one is sent as read, an old version upcast, like every other reader shows it."""

from __future__ import annotations

import logging

import msgspec
from websockets.frames import Frame, Opcode

from conveyor_bus import StoredMsg
from conveyor_bus.logwindow import frame as public_frame
from conveyor_events.poison import Poison, poison, read_event
from conveyor_events.upcast import UPCASTERS

log = logging.getLogger("conveyor.notifier")


def check(msg: StoredMsg) -> Poison | None:
    """Why the message is not an event a client may see, or None when it is: what
    :func:`frame` decides, without the frame (while no client is connected). Never raises."""
    try:
        read = read_event(msg.subject, msg.data)
    except Exception as e:
        log.exception("cannot read the message at seq %d", msg.seq)
        return poison("undecodable", f"cannot frame: {e!r}")
    return read if isinstance(read, Poison) else None


def frame(msg: StoredMsg) -> bytes | Poison:
    """The public event frame ``{seq, type, job_id, at, actor, data}``, or why the message is
    not an event a client may see (it is then not sent). Never raises."""
    try:
        read = read_event(msg.subject, msg.data)
        if isinstance(read, Poison):
            return read
        if read.name in UPCASTERS.versions:  # maybe an old version: the event as read
            return public_frame(msg.seq, read)
        if b"seq" in msg.data or b"\\u" in msg.data:
            return _frame_without_seq(msg)
        return b'{"seq":' + str(msg.seq).encode() + b"," + msg.data.lstrip()[1:]
    except Exception as e:  # a bug here must not stop the feed: drop the message instead
        log.exception("cannot frame the message at seq %d", msg.seq)
        return poison("undecodable", f"cannot frame: {e!r}")


def _frame_without_seq(msg: StoredMsg) -> bytes:
    """The frame of an event that may carry a top-level ``seq`` of its own (an unknown field):
    it is replaced by the log's, so a client never sees a forged sequence."""
    doc = msgspec.json.decode(msg.data)
    if "seq" not in doc:
        return b'{"seq":' + str(msg.seq).encode() + b"," + msg.data.lstrip()[1:]
    doc.pop("seq")
    return msgspec.json.encode({"seq": msg.seq, **doc})


def wire(payload: bytes) -> bytes:
    """The websocket text frame of one event, as every client gets it: server frames are
    unmasked and the feed uses no extension, so it is encoded once for all clients."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)
