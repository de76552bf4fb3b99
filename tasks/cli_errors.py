"""One-line errors on the luigi CLI for the failures we raise on purpose.

luigi logs every exception with its traceback. For a ``PipelineError`` (a bad month, a
404, a changed header) the traceback only hides the one line the user needs, so this
filter on luigi's logger drops it. Unexpected exceptions keep their traceback.
"""

from __future__ import annotations

import logging

from luigi.parameter import ParameterException

from tasks.errors import InvalidInput, PipelineError

_OUR_ERRORS = "tasks.errors."


class OneLineErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if "error in complete() method" in str(record.msg):
            _shorten_formatted_traceback(record)
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (InvalidInput, ParameterException)):  # raised while parsing the command line
            record.msg = f"invalid input: {exc}"
        elif isinstance(exc, PipelineError):
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
        if isinstance(exc, (PipelineError, ParameterException)):
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _shorten_formatted_traceback(record: logging.LogRecord) -> None:
    """luigi formats complete()'s traceback into the message itself; keep its last line if ours."""
    text = record.getMessage()
    last = text.rstrip().splitlines()[-1]
    if last.startswith(_OUR_ERRORS):
        head = text.split("\n", 1)[0]
        record.msg = f"{head} {last.removeprefix(_OUR_ERRORS)}"
        record.args = ()


def install() -> None:
    logger = logging.getLogger("luigi-interface")
    if not any(isinstance(f, OneLineErrors) for f in logger.filters):
        logger.addFilter(OneLineErrors())
