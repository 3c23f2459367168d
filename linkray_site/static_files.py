"""Static files for a box with no web server in front: whitenoise serves them from the process,
hashed names cached for a year, gzip-compressed copies made once at collection.

`manage.py serve` calls `ensure_collected()` on start, so a fresh clone (or an upgrade that
changed a stylesheet) needs no manual collectstatic; an unchanged tree costs only a directory
walk. Until files are collected (tests, `runserver`), `StaticStorage.url` falls back to the
plain name, which whitenoise serves from the apps' directories (WHITENOISE_USE_FINDERS).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.files.storage import FileSystemStorage
from django.core.management import call_command
from whitenoise.storage import CompressedManifestStaticFilesStorage

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = ".linkray-static-fingerprint"


class StaticStorage(CompressedManifestStaticFilesStorage):
    def url(self, name, force=False):
        try:
            return super().url(name, force)
        except ValueError:
            # Not collected yet: the unhashed URL, served (without far-future caching) from
            # the source directories.
            return FileSystemStorage.url(self, name)


def source_fingerprint() -> str:
    """Changes when any file collectstatic would copy is added, removed or modified."""
    digest = hashlib.blake2b(digest_size=16)
    entries = []
    for finder in finders.get_finders():
        for path, storage in finder.list([]):
            try:
                stat = Path(storage.path(path)).stat()
            except (NotImplementedError, OSError):
                continue
            entries.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}")
    for entry in sorted(entries):
        digest.update(entry.encode())
    return digest.hexdigest()


def ensure_collected() -> bool:
    """Collect (hash + compress) the static files unless the collected copy is current."""
    root = Path(settings.STATIC_ROOT)
    stamp = root / FINGERPRINT_FILE
    fingerprint = source_fingerprint()
    manifest = root / "staticfiles.json"
    if manifest.exists() and stamp.exists() and stamp.read_text().strip() == fingerprint:
        return False
    call_command("collectstatic", interactive=False, verbosity=0)
    stamp.write_text(fingerprint + "\n")
    logger.info("static_collected root=%s", root)
    return True
