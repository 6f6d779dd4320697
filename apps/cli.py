"""What every `python -m apps.<job>` shares: the common flags and failing like a command-line tool.

    def parse_args(argv):
        p = argparse.ArgumentParser(prog="python -m apps.train")
        add_common(p, config="YAML GenerativeConfig")      # --config, --set KEY=VALUE, --debug
        ...
    if __name__ == "__main__":
        run(main)

`run(main)` calls `main(sys.argv[1:])` and turns a user error (bad data, config, `--set`, path or
value: `USER_ERRORS`; a bad request or an unreachable Redis: `LOADED_USER_ERRORS`) into one line
`error: <message>` on stderr and exit status 2, like argparse does for a bad flag; anything else is
a bug and keeps its traceback. With `--debug` user errors keep their traceback too. `main(argv)` itself raises normally, so tests
and apps.demo call it directly. `write_report(path, obj)` writes a job's JSON result, making the folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from oxygen.config import ConfigError
from oxygen.data.io import DataError

EXIT_USER_ERROR = 2  # what argparse uses for a bad command line
USER_ERRORS: tuple[type[BaseException], ...] = (
    DataError, ConfigError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, ValueError)
# (module, class): user errors of modules that pull in torch or redis, counted once a job has loaded them
LOADED_USER_ERRORS: tuple[tuple[str, str], ...] = (
    ("oxygen.serving.core", "RequestError"), ("oxygen.store.instructions", "StoreUnavailable"),
    ("oxygen.instructions.backends.base", "BackendError"))


def add_common(parser: argparse.ArgumentParser, config: str | None = None) -> argparse.ArgumentParser:
    """Add `--debug` to `parser` and, when the job has a config (`config` says which kind, e.g.
    "YAML GenerativeConfig"), `--config FILE` and repeatable `--set KEY=VALUE`; returns `parser`."""
    if config is not None:
        parser.add_argument("--config", default=None, metavar="FILE",
                            help=f"{config} (may start from others with `extends:`); flags override it")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override one config field after --config and the flags, value read as YAML; "
                                 "repeatable, e.g. --set train.epochs=5 --set 'rerank.weights=[0, 0.1]'")
    parser.add_argument("--debug", action="store_true", help="on an error, show the full Python traceback")
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types reported as one line: `USER_ERRORS` and those of `LOADED_USER_ERRORS`
    whose module the job has imported (an error of a module never loaded cannot be raised)."""
    loaded = (getattr(sys.modules.get(module), name, None) for module, name in LOADED_USER_ERRORS)
    return USER_ERRORS + tuple(cls for cls in loaded if isinstance(cls, type))


def message(error: BaseException) -> str:
    """`error` as one line for a person: `path: reason` for OS errors, else its text with the lines
    joined."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    text = str(error).strip() or type(error).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def wants_debug(argv: Sequence[str]) -> bool:
    """True when `argv` (before a `--` separator) holds `--debug` or an abbreviation argparse accepts."""
    args = list(argv)
    args = args[: args.index("--")] if "--" in args else args
    return any(len(a) > 3 and "--debug".startswith(a) for a in args)


def write_report(path: Path, report: object, indent: int = 2,
                 default: Callable[[object], object] | None = None) -> Path:
    """Write `report` as indented JSON to `path`, making its folder; return the path. `default`
    turns values JSON does not know (paths, numpy scalars) into ones it does, as in json.dumps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=indent, default=default))
    return path


def run(main: Callable[[list[str]], object], argv: Sequence[str] | None = None) -> None:
    """Call `main(argv)` as a command-line job (`argv` defaults to sys.argv[1:]): a user error
    becomes `error: <message>` on stderr and exit status 2 unless `--debug` is given; other
    exceptions and `SystemExit` (argparse, the job's own status) pass through unchanged."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        main(argv)
    except user_errors() as e:
        if wants_debug(argv):
            raise
        print(f"error: {message(e)}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
