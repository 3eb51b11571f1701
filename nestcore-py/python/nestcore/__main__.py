"""``python -m nestcore``: the ``nestcore`` command itself, for hosts that have the wheel but not
the binary. Every subcommand (check, snapshot, cpuid, enable, kargs, guest-cpu, completions,
man, and whatever the binary gains) with the same options, output and exit status (0: KVM usable
and nested virtualization available to guests, or the subcommand's success; 1: not; 2: an
error), because it runs the same code: the native module's ``_main``, which is the binary's
``nestcore::cli::main``. Nothing to add here when the command gains a subcommand.

It writes to the process's standard output and error directly (file descriptors 1 and 2).
"""

import sys

from . import _nestcore


def main(argv=None):
    """Runs ``nestcore`` with ``argv`` (default: ``sys.argv[1:]``) and returns its exit status."""
    # What Python buffered must come out before what the native code writes to the descriptors.
    sys.stdout.flush()
    sys.stderr.flush()
    return _nestcore._main(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
