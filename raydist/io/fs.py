"""fsspec helpers shared by inputs, the store and the writers: one place that knows how a
filesystem's protocol turns a path back into a URI."""

from __future__ import annotations

from typing import Any

import fsspec

OBJECT_STORES = ("s3", "s3a", "gs", "gcs")


def url_to_fs(uri: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path without scheme) for a local path or any fsspec URI."""
    return fsspec.core.url_to_fs(uri, **(storage_options or {}))


def protocol(fs: fsspec.AbstractFileSystem) -> str:
    """The filesystem's main protocol: 'file', 's3', ..."""
    return fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol


def full_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """A path of `fs` as a URI other processes can open: local paths stay plain."""
    p = protocol(fs)
    return path if p in ("file", "local") else f"{p}://{path}"


def is_object_store(fs: fsspec.AbstractFileSystem) -> bool:
    return protocol(fs) in OBJECT_STORES
