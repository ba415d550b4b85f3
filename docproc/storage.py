"""Uploaded files on disk, stored once per content (named by their sha256)."""

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

COPY_BLOCK = 1024 * 1024


class UploadTooLarge(Exception):
    code = "file_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The upload exceeds the limit of {limit} bytes.")


def blob_path(blob_dir: Path, sha256: str) -> Path:
    return blob_dir / sha256[:2] / sha256


def save_blob(source: BinaryIO, blob_dir: Path, max_bytes: int) -> tuple[Path, str, int]:
    """Copy ``source`` to the blob store block by block, hashing as it goes; returns (path, sha256, size)."""
    blob_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=blob_dir, prefix="upload-", delete=False) as tmp:
        try:
            while block := source.read(COPY_BLOCK):
                size += len(block)
                if size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                digest.update(block)
                tmp.write(block)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    sha256 = digest.hexdigest()
    final = blob_path(blob_dir, sha256)
    final.parent.mkdir(exist_ok=True)
    if final.exists():
        Path(tmp.name).unlink()
    else:
        shutil.move(tmp.name, final)
    return final, sha256, size
