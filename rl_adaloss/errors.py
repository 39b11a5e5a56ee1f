"""The one error type for input that cannot run, and the one way a command line reports it.

Every command (train, sweep, report, the experiments) raises :class:`UsageError` for a bad config file, key, value,
flag or folder, and :func:`exit_on_usage_error` turns it into one line on stderr and exit code 2, before anything
is written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


class UsageError(Exception):
    """This input cannot run. The message is one line that names what is wrong and what was expected.

    Not a ``ValueError`` on purpose: pydantic would wrap a ``ValueError`` raised in a validator into its own error,
    losing the key this one names.
    """


def report_usage_error(error: UsageError) -> int:
    """Print ``error`` as one line on stderr; return exit code 2."""
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    return 2


def exit_on_usage_error(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)``; a :class:`UsageError` becomes one line on stderr and exit code 2."""
    try:
        return main(argv)
    except UsageError as error:
        return report_usage_error(error)
