"""tfstyle's optional parts (pyproject's extras): each imported where it is used, and its absence
one line saying what to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def hint(what: str, needs: str, extra: str, then: str = "") -> str:
    """``what needs NEEDS: pip install "tfstyle[EXTRA]"`` (and ``then``, another way out)."""
    return f'{what} needs {needs}: pip install "tfstyle[{extra}]"{then}'


def need(module: str, what: str, needs: str, extra: str, then: str = "") -> ModuleType:
    """The module ``module``, or an ``ImportError`` whose message is ``hint(...)``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(hint(what, needs, extra, then)) from None
