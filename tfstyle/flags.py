"""Command-line flags shared by the CLI's commands: the parser, the one-line error, the options.

``tfstyle.cli`` and ``tfstyle.batch`` both build their commands from these; this module imports
neither of them, and no TensorFlow (the options table is read when a parser is built).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

#: What argparse takes for a negative number, not an option: its own ``-1`` and ``-.5``, and
#: also ``-1e-320``, ``-inf`` and ``-nan``, so that they reach the option's own check (which
#: names what is allowed) instead of "expected one argument".
NEGATIVE_NUMBER = re.compile(
    r"^-([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^-(inf|infinity|nan)$", re.I
)


class Parser(argparse.ArgumentParser):
    """Usage errors end in one line on stderr and exit status 1, like every other bad input."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER  # argparse's own, widened

    def error(self, message):
        raise SystemExit(fail(f"{message} (see '{self.prog} --help')"))


def fail(message: str) -> int:
    """One line on stderr, whatever the message (a library's may span many); returns 1."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    line = lines[0] if lines else "failed"
    if line.endswith(":") and len(lines) > 1:  # "... errors:" and the errors on the next lines
        line = f"{line} {'; '.join(lines[1:4])}"
    print(f"tfstyle: error: {printable(line[:500])}", file=sys.stderr)
    return 1


def printable(text: str) -> str:
    """``text`` with its control characters (a terminal's escape sequences, from a file name, a
    file or a server) shown as escapes, not sent to the terminal."""
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def add_options(
    parser: argparse.ArgumentParser,
    names: Sequence[str] | None = None,
    unset: bool = False,
    defaults: dict | None = None,
    rows=None,
) -> None:
    """Add a ``--flag`` for each option of the table (``tfstyle.options.OPTIONS``, or
    ``rows``).

    ``names`` limits the options; ``unset`` makes every default None (an option left out is
    not sent), and booleans take an explicit true/false; ``defaults`` replaces some defaults.
    """
    import dataclasses

    from tfstyle import options  # imports TensorFlow

    for o in options.OPTIONS if rows is None else rows:
        if not o.flag or (names is not None and o.name not in names):
            continue
        if defaults and o.name in defaults:
            o = dataclasses.replace(o, default=defaults[o.name])
        flag = flag_name(o)
        default = ", ".join(o.default) if o.kind == "layers" else o.default
        help_text = f"{o.help} Defaults to {default}.".replace("%", "%%")
        metavar = {
            "choice": "|".join(o.choices),
            "init": "|".join((*o.choices, "IMAGE")),
            "weights": "imagenet|none|PATH",
            "layers": "LAYER",
            "floats": "WEIGHT",
            "mask": "PATH",
        }.get(o.kind)
        kind = {"int": integer, "float": number, "weights": _weights_arg}.get(o.kind, str)
        if unset:
            help_text = f"{o.help} Default: the exported model's."
            kind = _bool_arg if o.kind == "bool" else kind
            parser.add_argument(flag, type=kind, default=None, metavar=metavar, help=help_text)
        elif o.kind == "bool":
            parser.add_argument(flag, action="store_true", help=help_text)
        elif o.kind == "masks":  # --mask PATH once per style, in the styles' order
            none = o.name == "style_masks"
            parser.add_argument(
                flag, dest=o.name, action="append", default=None,
                type=_weights_arg if none else str, metavar="PATH|none" if none else "PATH",
                help=f"{o.help} Give it once per style image, in their order"
                + (" (none: that style's whole image)." if none else "."),
            )  # fmt: skip
        elif o.kind in ("layers", "floats"):
            kind = number if o.kind == "floats" else str
            parser.add_argument(
                flag, nargs="+", type=kind, default=o.default, metavar=metavar, help=help_text
            )
        else:
            parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=help_text)


def flag_name(option) -> str:
    """The option's command-line flag: ``--style-scale`` for ``style_scale``; a list given one
    per style image is singular, repeated (``--mask`` for ``masks``)."""
    name = option.name[:-1] if option.kind == "masks" else option.name
    return "--" + name.replace("_", "-")


def integer(value: str) -> int:
    """An ``int`` flag's value: ASCII digits only (``int`` takes "٣" and "２" as 3 and 2)."""
    text = value.strip()
    if not (text.isascii() and text.lstrip("+-").isdigit()):
        raise argparse.ArgumentTypeError(f"expected an integer (ASCII digits); got {value!r}")
    return int(text)


def number(value: str) -> float:
    """A ``float`` flag's value: ASCII only (``float`` takes "٣.٥"); inf and nan are read, and
    refused by the option's own check."""
    text = value.strip()
    try:
        if not text.isascii() or "_" in text:  # float("1_000") is 1000.0
            raise ValueError(text)
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {value!r}") from None


def _bool_arg(value: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false; got {value!r}")
    return value.lower() in ("true", "1", "yes")


def _weights_arg(value: str):
    return None if value.lower() == "none" else value
