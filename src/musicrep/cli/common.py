"""What every command shares: consoles, exit codes, the error guard, progress bars, problem lists.

Exit codes, for every command: 0 = everything ok; 1 = finished with item
failures (listed with file and reason); 2 = usage/config error or could not
run. Errors are one line; ``--log-level debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from musicrep.data.sources import Problem, ProgressFn
from musicrep.errors import MusicrepError, UsageError

logger = logging.getLogger("musicrep")

err = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)

EXIT_OK, EXIT_ITEM_FAILURES, EXIT_ERROR = 0, 1, 2
SHOWN_PROBLEMS = 20


_LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(log_level: str) -> None:
    """Plain one-line records on stderr (warnings stay greppable and never wrap) at ``log_level``.

    An unknown level is one ``error:`` line and exit 2 here (``typer.Exit``), so
    that ``musicrep --log-level bogus CMD`` says it in one line as
    ``musicrep CMD --log-level bogus`` does, without click's usage banner.
    """
    if log_level.lower() not in _LOG_LEVELS:
        error = UsageError(f"--log-level must be {', '.join(_LOG_LEVELS[:-1])} or {_LOG_LEVELS[-1]} "
                           f"(got {log_level!r})")
        err.print(f"error: {error}", markup=False)
        raise typer.Exit(EXIT_ERROR)
    level = getattr(logging, log_level.upper())
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)


def guarded(command: Callable[..., int | None]) -> Callable[..., None]:
    """Wrap a command: its return value is the exit code; errors become one line and exit 2."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> None:
        try:
            code = command(*args, **kwargs)
        except typer.Exit:
            raise
        except MusicrepError as exc:
            logger.debug("traceback", exc_info=True)
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            err.print("error: interrupted", markup=False)
            raise typer.Exit(EXIT_ERROR) from None
        except Exception as exc:  # a bug: still one line; the traceback with --log-level debug
            logger.debug("traceback", exc_info=True)
            err.print(f"error: internal error: {type(exc).__name__}: {exc} "
                      "(run with --log-level debug for the traceback)", markup=False)
            raise typer.Exit(EXIT_ERROR) from None
        raise typer.Exit(code or EXIT_OK)

    return wrapper


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[ProgressFn]:
    """A rich progress bar (rate and ETA) on stderr; yields a ``(done, total)`` callback."""
    columns = [
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=None, rate="")

        def update(done: int, total: int) -> None:
            speed = bar.tasks[task].speed
            bar.update(task, completed=done, total=total, rate=f"{speed:.1f}/s" if speed else "")

        yield update


def report_problems(problems: list[Problem], where: Path | None) -> None:
    """Print the first problems, one line each, and where the full list is."""
    for problem in problems[:SHOWN_PROBLEMS]:
        where_ = ": ".join(x for x in (problem.file, problem.track_id) if x)
        err.print(f"  {where_}: {problem.reason} [{problem.action}]", markup=False)
    if len(problems) > SHOWN_PROBLEMS:
        err.print(f"  ... {len(problems) - SHOWN_PROBLEMS} more", markup=False)
    if problems and where is not None:
        err.print(f"  full list: {where}", markup=False)



def print_lines(lines: list[str]) -> None:
    """Print the first problem lines on stderr, then how many more there are."""
    for line in lines[:SHOWN_PROBLEMS]:
        err.print(f"  {line}", markup=False)
    if len(lines) > SHOWN_PROBLEMS:
        err.print(f"  ... {len(lines) - SHOWN_PROBLEMS} more", markup=False)


def print_line(text: str) -> None:
    """One line of results on stdout (no markup)."""
    stdout.print(text, markup=False)


def parse_numbers(text: str, kind: type, count: int, option: str, example: str) -> tuple:
    """``"0.8,0.1,0.1"`` -> numbers, or a one-line usage error naming the option."""
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise UsageError(f"{option} must be {count} numbers like {example} (got {text!r})")
    return values

