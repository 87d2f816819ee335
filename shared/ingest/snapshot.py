"""Consistent copies of the SQLite database, to and from GCS.

``take`` uses SQLite's online backup API: a consistent copy while the app keeps writing (the
copy restarts on pages a writer changed; the result is one committed state). ``push`` uploads
it to ``ingest.snapshot_uri`` (``offsite ingest push`` on the app host); ``fetch`` downloads the
snapshot an event names so the ingest function can sync from it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from shared.errors import PermanentError
from shared.gcp.bq_jobs import call
from shared.gcp.gcs import LIBRARY_RETRY


def split_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/path`` → (bucket, path)."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise PermanentError(f"{uri!r} is not of the form gs://BUCKET/PATH")
    bucket, _, name = uri[5:].partition("/")
    return bucket, name


def take(source: str, destination: Path) -> Path:
    """A consistent copy of ``source`` at ``destination`` through the online backup API."""
    if not Path(source).is_file():
        raise PermanentError(f"ingest.sqlite_path: {source!r} is not a file")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(destination)
    try:
        src.backup(dst, pages=1024)
    finally:
        dst.close()
        src.close()
    return destination


def push(source: str, uri: str, storage: Any, workdir: Path) -> dict[str, Any]:
    """Snapshot ``source`` and upload it to ``uri``; returns the object's bucket, name, size and generation."""
    bucket_name, name = split_uri(uri)
    copy = take(source, workdir / "snapshot.sqlite")
    blob = storage.bucket(bucket_name).blob(name)
    call(lambda: blob.upload_from_filename(str(copy), content_type="application/vnd.sqlite3"), f"uploading {uri}")
    return {"bucket": bucket_name, "name": name, "size": copy.stat().st_size, "generation": blob.generation}


def fetch(storage: Any, bucket: str, name: str, destination: Path, generation: int | None = None) -> Path:
    """Download the snapshot (the pinned generation, when given) to ``destination``."""
    blob = storage.bucket(bucket).blob(name, generation=generation)
    call(lambda: blob.download_to_filename(str(destination), retry=LIBRARY_RETRY), f"downloading gs://{bucket}/{name}")
    return destination
