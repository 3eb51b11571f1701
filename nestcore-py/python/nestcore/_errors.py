"""The exceptions of nestcore.

Each class also subclasses the built-in exception that fits, so callers may catch either:
``except FileNotFoundError`` works as well as ``except nestcore.NestcoreNotFoundError``.
The OSError family carries ``errno`` and ``filename`` and reads like Python's own
(``[Errno 2] No such file or directory: '/nonexistent'``); every class carries ``message``
(nestcore's full message, as the ``nestcore`` command prints it) and ``kind``.

Applying a plan (``Plan.apply()``) adds two: ``NestcoreApplyError`` when a step failed after the
apply began (the files already written were restored, listed in ``rolled_back``; those that
could not be are in ``not_restored``, kept for undo in the transaction ``kept``; the failure
itself is the ``__cause__``), and ``NestcoreCommandError`` (an OSError) for a program that exited
with a failure (``command``, ``status``, ``stderr``), usually as that cause.
"""

# No imports at all: `import nestcore` runs on every task of every Ansible host, and `typing` alone
# would cost more than the rest of the import (docs/benchmarks.md). The types are in _errors.pyi.

__all__ = [
    "NestcoreError",
    "NestcorePermissionError",
    "NestcoreNotFoundError",
    "NestcoreParseError",
    "NestcoreInvalidInput",
    "NestcoreIOError",
    "NestcoreUnsupported",
    "NestcoreCommandError",
    "NestcoreApplyError",
]


class NestcoreError(Exception):
    """Base class of every nestcore error."""

    #: The stable error kind: the JSON name of nestcore's ``ErrorKind``.
    kind = "error"
    def __str__(self) -> str:
        # OSError's own form ("[Errno 2] No such file or directory: '/x'") needs an errno; without
        # one it would read "[Errno None] None: '/x'", so say nestcore's message instead.
        if isinstance(self, OSError) and self.errno is None:
            return getattr(self, "message", None) or BaseException.__str__(self)
        return super().__str__()


class NestcorePermissionError(NestcoreError, PermissionError):
    """The operating system refused access (EACCES, EPERM)."""

    kind = "permission_denied"


class NestcoreNotFoundError(NestcoreError, FileNotFoundError):
    """A file or folder that the caller named does not exist."""

    kind = "not_found"


class NestcoreParseError(NestcoreError, ValueError):
    """Input that does not parse: a CPUID dump, a configuration file."""

    kind = "parse"


class NestcoreInvalidInput(NestcoreError, ValueError):
    """An argument that is well-formed but not acceptable (say, a snapshot folder that is not empty)."""

    kind = "invalid_input"


class NestcoreIOError(NestcoreError, OSError):
    """Any other I/O failure (a root that is not a folder, a disk error)."""

    kind = "io"


class NestcoreUnsupported(NestcoreError, NotImplementedError):
    """The operation is not possible on this host or platform."""

    kind = "unsupported"


class NestcoreCommandError(NestcoreIOError):
    """A program run while applying a plan (``modprobe``, ``update-grub``, ``dracut``) exited with
    a failure."""

    kind = "command_failed"


class NestcoreApplyError(NestcoreError):
    """Applying a plan failed at ``step``; the files already written were restored (``rolled_back``,
    as the host sees them), except those in ``not_restored``, whose originals stay in the backup
    store's transaction ``kept`` for ``plan_undo()``; programs that had succeeded ran again
    (``reran``). The failure itself is ``__cause__`` (a NestcoreCommandError, an OSError subclass,
    ...)."""

    kind = "apply"


# The one mapping from nestcore's ErrorKind to a class, read off the classes' ``kind``.
_BY_KIND = {
    cls.kind: cls
    for cls in (
        NestcorePermissionError,
        NestcoreNotFoundError,
        NestcoreParseError,
        NestcoreInvalidInput,
        NestcoreIOError,
        NestcoreUnsupported,
        NestcoreCommandError,
        NestcoreApplyError,
    )
}


def _from_native(kind, message, errno, strerror, filename, extra=None):
    """The exception for an error of the native module (called from Rust, nowhere else)."""
    cls = _BY_KIND.get(kind, NestcoreError)
    if issubclass(cls, OSError) and errno is not None:
        # OSError(errno, strerror, filename) sets .errno, .strerror and .filename.
        exc = cls(errno, strerror or message, filename)
    else:
        exc = cls(message)
        if issubclass(cls, OSError):
            exc.filename = filename
    exc.message = message
    for name, value in (extra or {}).items():
        setattr(exc, name, value)
    return exc
