"""Uploaded files on disk, stored once per content (named by their sha256).

An upload is first copied to a temp file of its own (``upload-*``); it becomes the shared blob only when its
document row is committed (docproc.service.add_document). Whatever a crash leaves (a temp file, a blob whose
row never committed) is found by its age and removed by docproc.service.remove_orphan_files.
"""

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock

COPY_BLOCK = 1024 * 1024
TEMP_PREFIX = "upload-"
SHA256_NAME = re.compile(r"[0-9a-f]{64}")


class UploadTooLarge(Exception):
    code = "file_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The upload exceeds the limit of {limit} bytes.")


@dataclass(frozen=True)
class StagedUpload:
    """An upload copied to a temp file in the blob directory, not yet a blob."""

    path: Path
    sha256: str
    size: int


def blob_path(blob_dir: Path, sha256: str) -> Path:
    return blob_dir / sha256[:2] / sha256


def blob_lock(blob_dir: Path) -> FileLock:
    """Held, across processes, to publish a blob and commit its row, and to remove a blob nothing uses."""
    return FileLock(blob_dir.with_suffix(".lock"))


def stage_upload(source: BinaryIO, blob_dir: Path, max_bytes: int) -> StagedUpload:
    """Copy ``source`` to a temp file block by block, hashing as it goes; the temp file is gone on error."""
    blob_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=blob_dir, prefix=TEMP_PREFIX, delete=False) as tmp:
        try:
            while block := source.read(COPY_BLOCK):
                size += len(block)
                if size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                digest.update(block)
                tmp.write(block)
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    return StagedUpload(Path(tmp.name), digest.hexdigest(), size)


def publish(staged: StagedUpload, blob_dir: Path) -> None:
    """Move the temp file to the blob's name; an identical blob already there is replaced atomically."""
    final = blob_path(blob_dir, staged.sha256)
    final.parent.mkdir(exist_ok=True)
    os.replace(staged.path, final)
    _fsync_dir(final.parent)


def _fsync_dir(path: Path) -> None:
    # Makes the rename durable before the row that names the blob is committed.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stale_files(blob_dir: Path, min_age_s: float) -> tuple[list[Path], dict[str, Path]]:
    """Files last written over ``min_age_s`` ago: upload temp files, and blobs by their sha256."""
    if not blob_dir.is_dir():
        return [], {}
    cutoff = time.time() - min_age_s
    temps: list[Path] = []
    blobs: dict[str, Path] = {}
    for entry in os.scandir(blob_dir):
        if entry.is_file() and entry.name.startswith(TEMP_PREFIX) and entry.stat().st_mtime < cutoff:
            temps.append(Path(entry.path))
        elif entry.is_dir() and len(entry.name) == 2:
            for blob in os.scandir(entry.path):
                if (
                    blob.is_file()
                    and SHA256_NAME.fullmatch(blob.name)
                    and blob.name.startswith(entry.name)
                    and blob.stat().st_mtime < cutoff
                ):
                    blobs[blob.name] = Path(blob.path)
    return temps, blobs
