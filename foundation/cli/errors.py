"""What the command line says when a command ends with an error the user can fix: one line, no traceback.

User errors are `foundation.errors.UserError` (configs, inputs, a directory in use, a full disk) and OSError
(a missing file or directory, a read-only or full file system). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno

from foundation.errors import DiskFull, UserError

USER_ERRORS = (UserError, OSError)


def user_error_line(exc: UserError | OSError) -> str:
    """The one line to print for a user error (whitespace and newlines of the message collapsed)."""
    if isinstance(exc, OSError) and not isinstance(exc, UserError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            message = str(DiskFull(exc.filename))
        else:
            detail = exc.strerror or str(exc)
            message = f"{exc.filename}: {detail}" if exc.filename else detail
    else:
        message = _without_worker_traceback(exc, str(exc))
    return " ".join(message.split()) or type(exc).__name__


def _without_worker_traceback(exc: BaseException, message: str) -> str:
    """A DataLoader worker's error is re-raised with the worker's traceback as its message ("Caught ShardError in
    DataLoader worker process 0. Original Traceback ..."): the original message is what follows the traceback's
    last line's `module.Class: `."""
    if not message.startswith("Caught ") or "Original Traceback" not in message:
        return message
    name = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    at = message.rfind(name)
    return message[at + len(name) :] if at >= 0 else message
