"""The pickle fallback: multiprocessing's pickler, protocol 5, buffers out of band."""

from __future__ import annotations

import io
import pickle
from multiprocessing.reduction import ForkingPickler
from typing import Any


def dumps(obj: Any, out_of_band: bool) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Pickles ``obj``; with ``out_of_band``, returns its pickle-5 buffers separately."""
    buf = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    callback = buffers.append if out_of_band else None
    # ForkingPickler.__init__ takes positional arguments only: file, protocol, fix_imports,
    # buffer_callback.
    ForkingPickler(buf, 5, True, callback).dump(obj)
    return buf.getvalue(), buffers


def loads(data: bytes, buffers: list[bytearray]) -> Any:
    """Unpickles what :func:`dumps` made, the buffers copied out of shared memory."""
    return pickle.loads(data, buffers=buffers)
