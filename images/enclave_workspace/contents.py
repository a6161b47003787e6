"""The workspace's contents manager: jupyter_server's large-file manager that refuses to save binary files sent as
base64 (what JupyterLab's upload sends), chunked uploads included, registers no `/files` route at all, and reads to
the browser only what a person reads (display.py): text files and notebooks for editing, images for display, each up
to its cap, never a data file as base64.

A file counts as text when its bytes are UTF-8 and hold no NUL byte; text files (even when the browser sent them
as base64) and notebooks save as usual. A chunked upload is checked chunk by chunk, carrying an unfinished UTF-8
sequence over from the bytes already written, so the whole file is held to the same rule as a one-piece upload.

Reading a file first sniffs its start and size (a data file or an oversized one is refused without being read), then
checks the model jupyter_server built, the bytes that actually go out: a file swapped between the two is still
held to the rule.

A save that fails because the project's file system is full (its storage quota, provisioning/storage.py) is answered
with 507 and a message that says what to do, not jupyter_server's 500 with an errno."""

from __future__ import annotations

import base64
import binascii
import errno
import json
import os
from typing import Any

from anyio import to_thread
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web

from enclave_workspace.display import SNIFF_BYTES, BrowserRefusal, is_text, screen

BINARY_REFUSED = "Binary files cannot be uploaded into a workspace; only text files and notebooks can be uploaded."


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
    """Saves like jupyter_server's AsyncLargeFileManager, except binary uploads (HTTP 415) and the `/files` route;
    reads only text, notebooks and images to the browser (403 for anything else, 413 over a cap)."""

    def get_extra_handlers(self) -> list:
        # The default is `/files/(.*)`, a raw download of any file; the extension also answers it with a 403.
        return []

    async def get(
        self,
        path: str,
        content: bool = True,
        type: str | None = None,
        format: str | None = None,
        require_hash: bool = False,
    ) -> dict[str, Any]:
        kwargs = {"type": type, "require_hash": require_hash}
        if not content:
            return await super().get(path, content=False, format=format, **kwargs)
        os_path = self._get_os_path(path.strip("/"))
        if os.path.isfile(os_path):
            # Decide from the start of the file and its size before jupyter_server reads it all into memory.
            with self.perm_to_403(path):
                head, size = await to_thread.run_sync(_head_and_size, os_path)
            self._screen(head, size=size, complete=len(head) >= size)
            if type != "notebook" and not path.endswith(".ipynb") and format is None and is_text(head, final=False):
                # Without a format jupyter_server falls back to base64 for bytes that are not UTF-8: ask for text.
                format = "text"
        model = await super().get(path, content=True, format=format, **kwargs)
        if model["type"] != "directory":
            self._screen(_sent_bytes(model))
        return model

    def _screen(self, data: bytes, **kwargs: Any) -> None:
        try:
            screen(data, **kwargs)
        except BrowserRefusal:
            # Not the path: a file's name can say what it holds.
            self.log.warning("Refused to send a file to the browser (not text, a notebook or an image, or too large)")
            raise

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        if model.get("type") == "file" and model.get("format") == "base64" and isinstance(model.get("content"), str):
            self._refuse_binary(model, path)
        try:
            return await super().save(model, path)
        except web.HTTPError as exc:
            if (full := quota_full_message(exc)) is not None:
                self.log.warning("A save was refused: the project's storage quota is full")
                raise web.HTTPError(507, full) from None
            raise

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


def quota_full_message(error: BaseException) -> str | None:
    """What to tell the researcher when a save failed because the project's file system (its quota) is full, or
    None for any other failure. jupyter_server wraps the OSError in a 500 whose text shows the path and errno; the
    quota is the project spec's, as the hub passes it ($ENCLAVE_STORAGE_QUOTA)."""
    cause: BaseException | None = error
    while cause is not None and not (isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    size = f" ({quota})" if (quota := os.environ.get("ENCLAVE_STORAGE_QUOTA", "")) else ""
    return (
        f"This project's storage quota{size} is full, so nothing more can be saved. Delete files you no longer "
        "need in your home, in /project/outputs or in the project's MLflow runs (a colleague's files count too), "
        "or ask a platform admin to raise the project's quota."
    )


def _head_and_size(os_path: str) -> tuple[bytes, int]:
    with open(os_path, "rb") as f:
        return f.read(SNIFF_BYTES), os.fstat(f.fileno()).st_size


def _sent_bytes(model: dict[str, Any]) -> bytes:
    """The bytes a contents model carries to the browser, as the browser gets them."""
    content = model.get("content")
    if model["type"] == "notebook":
        return json.dumps(content).encode()
    if model.get("format") == "base64":
        return base64.b64decode(content)
    return content.encode()


def _tail(os_path: str, size: int = 4) -> bytes:
    try:
        with open(os_path, "rb") as f:
            f.seek(max(0, os.path.getsize(os_path) - size))
            return f.read()
    except FileNotFoundError:
        return b""
