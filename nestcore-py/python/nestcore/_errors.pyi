"""Type stubs of nestcore's exceptions (checked against _errors.py by ``python -m mypy.stubtest
nestcore._errors``). The runtime module imports nothing, so that ``import nestcore`` stays cheap."""

from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple, Type

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
    kind: ClassVar[str]
    #: nestcore's message, with its causes (as ``nestcore`` prints it after ``nestcore: ``).
    message: str

class NestcorePermissionError(NestcoreError, PermissionError):
    """The operating system refused access (EACCES, EPERM)."""

class NestcoreNotFoundError(NestcoreError, FileNotFoundError):
    """A file or folder that the caller named does not exist."""

class NestcoreParseError(NestcoreError, ValueError):
    """Input that does not parse: a CPUID dump, a configuration file."""

class NestcoreInvalidInput(NestcoreError, ValueError):
    """An argument that is well-formed but not acceptable (say, a snapshot folder that is not empty)."""

class NestcoreIOError(NestcoreError, OSError):
    """Any other I/O failure (a root that is not a folder, a disk error)."""

class NestcoreUnsupported(NestcoreError, NotImplementedError):
    """The operation is not possible on this host or platform."""

class NestcoreCommandError(NestcoreIOError):
    """A program run while applying a plan (``modprobe``, ``update-grub``, ``dracut``) exited with
    a failure."""

    #: The command line.
    command: str
    #: Its exit status (-1 when killed by a signal).
    status: int
    #: The end of its standard error.
    stderr: str

class NestcoreApplyError(NestcoreError):
    """Applying a plan failed at ``step``; the files already written were restored (``rolled_back``,
    as the host sees them), except those in ``not_restored``, whose originals stay in the backup
    store's transaction ``kept`` for ``plan_undo()``; programs that had succeeded ran again
    (``reran``). The failure itself is ``__cause__`` (a NestcoreCommandError, an OSError subclass,
    ...)."""

    #: The step that failed ("writing /etc/modprobe.d/...", "run `modprobe ...`: ...").
    step: str
    #: Files restored to their content before the apply.
    rolled_back: Tuple[str, ...]
    #: Files whose restore failed too, each with the reason ("/etc/default/grub (...)").
    not_restored: Tuple[str, ...]
    #: The backup store's transaction kept for them ("0001"): applying ``plan_undo()`` restores them.
    kept: Optional[str]
    #: Programs run again after the restore, with their results ("`update-initramfs -u -k all` (exit 0)").
    reran: Tuple[str, ...]

_BY_KIND: Dict[str, Type[NestcoreError]]

def _from_native(
    kind: str,
    message: str,
    errno: Optional[int],
    strerror: Optional[str],
    filename: Optional[str],
    extra: Optional[Mapping[str, Any]] = None,
) -> NestcoreError:
    """The exception for an error of the native module (called from Rust, nowhere else)."""
