"""Download with MD5 verification; a failure says which file, where we looked, and how to provide it."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_md5(path: Path, expected: str | None, dataset: str) -> None:
    """Raise a DataError naming the file when its checksum differs from the publisher's."""
    if expected is None:
        return
    got = md5_file(path)
    if got != expected:
        raise DataError(
            f"{dataset}: {path} has MD5 {got}, expected {expected} (the publisher's checksum): "
            f"the file is corrupt, truncated or not the official one. Delete it and run again to "
            f"download it, or replace it with the official file."
        )


def download_file(url: str, dest: Path, md5: str | None, dataset: str, timeout: float = 60.0) -> None:
    """Fetch `url` into `dest` through a temporary file; verify the MD5 before the final rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "irat"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(tmp, "wb") as out:
            while True:
                block = resp.read(1 << 20)
                if not block:
                    break
                out.write(block)
        if md5 is not None and md5_file(tmp) != md5:
            raise DataError(
                f"{dataset}: the file downloaded from {url} has the wrong MD5 (expected {md5}); "
                f"the download was corrupted or the source changed. Try again, or fetch it by hand into {dest.parent}."
            )
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataError(
            f"{dataset}: could not download {dest.name} from {url} ({getattr(exc, 'reason', exc)}). "
            f"Download it by hand (MD5 {md5}) and put it in {dest.parent}, or point --data-dir at the "
            f"folder that holds it."
        ) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
