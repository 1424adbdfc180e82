"""fsspec helpers shared by inputs, the store and the writers: one place that knows how a
filesystem's protocol turns a path back into a URI."""

from __future__ import annotations

import os
import posixpath
import uuid
from typing import Any

import fsspec

from raydist.errors import RaydistError

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


def put_whole(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Replace `path` atomically: a temporary file renamed over it locally, one PUT on S3."""
    if protocol(fs) in ("file", "local"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def create_exclusive(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> bool:
    """Create `path` holding `data` only if no such file exists; False if one does. Atomic on
    local disk (a hard link of a full temporary file) and on S3 (PUT with If-None-Match: *,
    honoured by AWS S3 since 2024, MinIO and moto)."""
    if protocol(fs) in ("file", "local"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)  # fails if the name exists
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    try:
        fs.pipe_file(path, data, mode="create")  # s3fs: a conditional PUT
        return True
    except FileExistsError:
        return False


class StoreError(RaydistError, RuntimeError):
    pass


def check_writable(out: str, fs: fsspec.AbstractFileSystem, folder: str) -> None:
    """Write and delete a small probe file in `folder` of `out`; raise StoreError naming the cause
    (a missing bucket, no permission, a full disk, a path under a file) before any work is spent.
    A missing bucket is never created: object stores are provisioned on purpose."""
    if is_object_store(fs):
        bucket = folder.split("/", 1)[0]
        try:
            exists = fs.exists(bucket)
        except Exception as e:
            raise StoreError(f"cannot reach bucket {bucket!r} of {out}: {type(e).__name__}: {e}") from e
        if not exists:
            raise StoreError(f"bucket {bucket!r} of {out} does not exist (or these credentials cannot see it)")
    probe = posixpath.join(folder, f".write-probe-{uuid.uuid4().hex[:8]}")
    try:
        fs.makedirs(folder, exist_ok=True)
        with fs.open(probe, "wb") as f:
            f.write(b"ok")
        fs.rm(probe)
    except Exception as e:  # permissions, full disk, a file in the way: all end the same way
        raise StoreError(f"cannot write to {out}: {type(e).__name__}: {e}") from e
