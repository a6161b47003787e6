"""The workspace's contents manager: jupyter_server's large-file manager that refuses to save binary files sent as
base64 (what JupyterLab's upload sends), chunked uploads included, and registers no `/files` route at all.

A file counts as text when its bytes are UTF-8 and hold no NUL byte; text files (even when the browser sent them
as base64) and notebooks save as usual. A chunked upload is checked chunk by chunk, carrying an unfinished UTF-8
sequence over from the bytes already written, so the whole file is held to the same rule as a one-piece upload."""

from __future__ import annotations

import base64
import binascii
import codecs
import os
from typing import Any

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web

BINARY_REFUSED = "Binary files cannot be uploaded into a workspace; only text files and notebooks can be uploaded."


def is_text(data: bytes, *, carry: bytes = b"", final: bool = True) -> bool:
    """Whether `data` continues valid UTF-8 text after `carry` (an unfinished sequence) and holds no NUL byte.

    `final=False` accepts an unfinished sequence at the end, which the next chunk must complete."""
    if b"\x00" in data:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(carry + data, final)
    except UnicodeDecodeError:
        return False
    return True


def unfinished_utf8(tail: bytes) -> bytes:
    """The UTF-8 sequence left unfinished at the end of `tail` (at most 3 bytes), or b""."""
    for back in range(1, min(4, len(tail)) + 1):
        byte = tail[-back]
        if byte < 0x80:  # ASCII: nothing pending
            return b""
        if byte >= 0xC0:  # a lead byte: does its sequence reach past the end?
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return tail[-back:] if length > back else b""
    return b""  # only continuation bytes: already invalid, the decoder will say so


class WorkspaceContentsManager(AsyncLargeFileManager):
    """Saves like jupyter_server's AsyncLargeFileManager, except binary uploads (HTTP 415) and the `/files` route."""

    def get_extra_handlers(self) -> list:
        # The default is `/files/(.*)`, a raw download of any file; the extension also answers it with a 403.
        return []

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        if model.get("type") == "file" and model.get("format") == "base64" and isinstance(model.get("content"), str):
            self._refuse_binary(model, path)
        return await super().save(model, path)

    def _refuse_binary(self, model: dict[str, Any], path: str) -> None:
        try:
            data = base64.b64decode(model["content"].encode("ascii"))
        except (UnicodeEncodeError, binascii.Error) as exc:
            raise web.HTTPError(400, "The upload is not valid base64.") from exc
        chunk = model.get("chunk")
        os_path = self._get_os_path(path.strip("/"))
        carry = b""
        if chunk not in (None, 1):  # a later chunk continues what earlier chunks wrote
            carry = unfinished_utf8(_tail(os_path))
        if is_text(data, carry=carry, final=chunk in (None, -1)):
            return
        self.log.warning("Refused a binary file upload into the workspace")
        if chunk not in (None, 1) and os.path.isfile(os_path):
            # Earlier chunks of this upload are already on disk: leave no partial file behind.
            with self.perm_to_403(path):
                os.unlink(os_path)
        raise web.HTTPError(415, BINARY_REFUSED)


def _tail(os_path: str, size: int = 4) -> bytes:
    try:
        with open(os_path, "rb") as f:
            f.seek(max(0, os.path.getsize(os_path) - size))
            return f.read()
    except FileNotFoundError:
        return b""
