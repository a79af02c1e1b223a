"""The `detector` command: one sub-command per module in detector/commands/.

Errors the user can cause are `DetectorError`s: printed as one line on stderr, non-zero exit,
no traceback unless `--debug`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from detector.errors import DetectorError

# name -> module; each module has `add_parser(subparsers)` which sets `func` on its parser.
COMMANDS = {
    "data": "detector.commands.data",
    "train": "detector.commands.train",
    "eval": "detector.commands.evaluate",
    "predict": "detector.commands.predict",
    "convert": "detector.commands.convert",
    "bench": "detector.commands.bench",
    "weights": "detector.commands.weights",
    "demo": "detector.commands.demo",
    "advise": "detector.commands.advise",
    "export": "detector.commands.export",
}


def _columns() -> int:
    """The terminal's width, as shutil.get_terminal_size finds it."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, given its width: left to find it, it imports shutil (and
    through it lzma, bz2 and zlib) at the first add_argument, a twentieth of `detector eval`
    on two json files."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(prog, indent_increment, max_help_position,
                         width if width is not None else _columns() - 2)


class _Parser(argparse.ArgumentParser):
    """argparse's parser with `_Formatter` for its help (and each sub-command's), and a usage
    error as one line (`error: detector train: ...`), as every other error is, with where to
    find the usage instead of the usage itself."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command, or of `command` alone (its module alone is imported:
    `detector eval` on two json files must not pay for torch, which other commands import)."""
    parser = _Parser(
        prog="detector",
        description="Transfer learning for object detection: fine-tune, convert to infrared, benchmark.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if command is not None and name != command:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:  # command not built yet
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a usage error (one line, printed) or --help: the exit code
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DetectorError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as e:
        # Anything else from the outside world (disk full, permission denied) is still reported
        # in one line; --debug shows where it came from.
        if args.debug:
            raise
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
