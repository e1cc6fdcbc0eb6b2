"""Widget messages as a kernel would send them, recorded: a comm whose messages are serialized
by jupyter_client's Session (the frames that go over zmq) and kept for inspection.

`recording()` makes every widget created inside it use such a comm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import comm
from comm.base_comm import BaseComm
from jupyter_client.session import Session

_SESSION = Session(key=b"jupyter-peft-test")


class RecordingComm(BaseComm):
    """A comm that serializes each message like ipykernel does and records (kind, bytes, data)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages: list[dict[str, Any]] = []
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        content = {"data": data or {}, "comm_id": self.comm_id, **keys}
        msg = _SESSION.msg(msg_type, content=content, metadata=metadata or {})
        frames = _SESSION.serialize(msg)
        size = sum(len(f) for f in frames) + sum(len(b) for b in buffers or [])
        # the data as the browser gets it: through the wire's JSON
        self.messages.append({"type": msg_type, "bytes": size, "data": _SESSION.unpack(_SESSION.pack(data or {}))})

    def from_page(self, content: dict[str, Any]) -> None:
        """A custom message from the browser view, through ipywidgets' own handler."""
        self.handle_msg({"content": {"comm_id": self.comm_id, "data": {"method": "custom", "content": content}},
                         "buffers": []})


@contextlib.contextmanager
def recording() -> Iterator[None]:
    previous = comm.create_comm
    comm.create_comm = RecordingComm
    try:
        yield
    finally:
        comm.create_comm = previous


def custom(widget: Any, kind: str) -> list[dict[str, Any]]:
    """The custom messages of `kind` the widget sent."""
    out = []
    for m in widget.comm.messages:
        state = m["data"]
        if state.get("method") == "custom" and state["content"].get("kind") == kind:
            out.append(state["content"])
    return out
