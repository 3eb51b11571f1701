# -*- coding: utf-8 -*-
# Copyright: nestcore developers
# SPDX-License-Identifier: Apache-2.0 OR MIT
"""Shared helpers of the nestcore.kvm modules.

The modules keep their logic in plain functions that take the module parameters and the
``nestcore`` Python module and either return the result dictionary or raise
:class:`NestcoreModuleFailure`; ``main()`` only wires these to ``AnsibleModule``. This keeps
argument handling testable without a host, and lets tests pass a fake ``nestcore``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import traceback

NESTCORE_IMPORT_ERROR = None
try:
    import nestcore  # noqa: F401  (re-exported for the modules)

    HAS_NESTCORE = True
except ImportError:  # pragma: no cover - depends on the target
    nestcore = None
    HAS_NESTCORE = False
    NESTCORE_IMPORT_ERROR = traceback.format_exc()


class NestcoreModuleFailure(Exception):
    """A failure to report with ``fail_json``: ``msg`` names the host and the reason."""

    def __init__(self, msg, **extra):
        super(NestcoreModuleFailure, self).__init__(msg)
        self.msg = msg
        self.extra = extra


def host_label(root=None):
    """How messages name the host: the machine's name, plus the recorded root if any.

    A module cannot see ``inventory_hostname``; the name of the machine it runs on and the
    recorded root (when one is checked) identify the host in a fleet's log.
    """
    name = socket.gethostname()
    if root:
        return "%s (recorded root %s)" % (name, root)
    return name


def error_kind(exc):
    """nestcore's stable error kind (``not_found``, ``unsupported``, ...) or the class name."""
    return getattr(exc, "kind", None) or type(exc).__name__


def error_message(exc):
    """nestcore's full message when the exception carries one, else ``str(exc)``."""
    return getattr(exc, "message", None) or str(exc)


def fail_from_error(nc, exc, root, doing):
    """A :class:`NestcoreModuleFailure` for an exception raised by nestcore while ``doing``."""
    extra = {"kind": error_kind(exc)}
    rolled_back = getattr(exc, "rolled_back", None)
    if rolled_back is not None:
        extra["rolled_back"] = list(rolled_back)
    return NestcoreModuleFailure(
        "nestcore on %s: %s failed: %s" % (host_label(root), doing, error_message(exc)), **extra
    )


def check_host(nc, root=None, cpuid=None, probe=False):
    """``nestcore.check()`` with nestcore's errors turned into a failure that names the host."""
    try:
        return nc.check(root=root, cpuid=cpuid, probe=probe)
    except nc.NestcoreError as exc:
        raise fail_from_error(nc, exc, root, "checking the host")


def problems(report, level="fail"):
    """The findings at ``level`` or worse as short dictionaries (code, level, message, remedy)."""
    out = []
    for f in report.verdict.at_least(level):
        out.append({"code": f.code, "level": f.level, "message": f.message, "remedy": f.remedy})
    return out


def summary(report, root=None):
    """The short view of a report that playbooks test: the answers, not the evidence."""
    kvm = report.kvm
    modules = [m.name for m in kvm.modules]
    return {
        "host": host_label(root),
        "root": root,
        "kvm_usable": report.verdict.kvm_usable,
        "nested_for_guests": report.verdict.nested_for_guests,
        "vendor_id": report.cpu.vendor_id,
        "extension": report.cpu.extension,
        "firmware": report.cpu.firmware,
        "hypervisor": report.virtualization.hypervisor,
        "nested": kvm.nested,
        "modules": modules,
        "exit_code": report.exit_code,
        "problems": [p["code"] for p in problems(report, "warn")],
        "reason": "; ".join(p["message"] for p in problems(report, "fail")) or None,
    }
