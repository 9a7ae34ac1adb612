"""Work-arounds for faults of the libraries bayescale builds on, each with the case it fixes."""

from __future__ import annotations

import os
import sys
import tempfile
from types import ModuleType

__all__ = ["import_arviz"]


def import_arviz() -> ModuleType:
    """``import arviz``, also where the user's cache folder cannot be written.

    ArviZ 0.22-0.23 writes a once-a-day stamp file into ``$XDG_CACHE_HOME/arviz`` when imported
    and fails with a raw ``OSError`` when that folder cannot be made (a read-only home or cache):
    the fit then died after sampling. The import is retried with a temporary cache folder.
    """
    if "arviz" in sys.modules:
        return sys.modules["arviz"]
    try:
        import arviz
    except OSError:
        before = os.environ.get("XDG_CACHE_HOME")
        with tempfile.TemporaryDirectory(prefix="bayescale-arviz-") as tmp:
            os.environ["XDG_CACHE_HOME"] = tmp
            try:
                import arviz
            finally:
                if before is None:
                    os.environ.pop("XDG_CACHE_HOME", None)
                else:
                    os.environ["XDG_CACHE_HOME"] = before
    return arviz
