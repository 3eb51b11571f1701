"""nestcore: can this machine run virtual machines, can its guests run their own (nested
virtualization), and what must change to get there, with the evidence for every answer.

::

    import nestcore

    report = nestcore.check()  # this machine
    print(report.verdict.kvm_usable, report.verdict.nested_for_guests)
    for f in report.verdict.at_least("warn"):
        print(f.level, f.code, f.message, f.remedy)

A recorded machine (a folder laid out like ``/`` plus a CPUID dump)::

    nestcore.check("fixtures/intel/root", cpuid="fixtures/intel/cpuid.txt")

Results are frozen objects whose attributes mirror the JSON report (schema/report.schema.json):
enumerations are plain ``str`` values exactly as in the JSON (``report.cpu.extension == "vmx"``,
``finding.level == "warn"``). Every object has ``to_dict()`` and ``to_json()``, compares by value,
hashes and pickles.

Turning nested virtualization on (the plan shows every diff and command; only ``apply()`` changes
the host)::

    plan = nestcore.plan_nested(persist=("modprobe", "cmdline"))
    print(plan.text())
    if not plan.blockers and not plan.is_empty:
        report = plan.apply()       # the originals go to the backup store
    undo = nestcore.plan_undo()     # and back: exactly what that apply changed

The guest CPU configuration that gives guests VT-x/AMD-V, for this host::

    rec = nestcore.recommend(report=nestcore.check(probe=False))
    print(rec.nova_ini, rec.libvirt_xml, rec.caveats)

Which of this host's guests (libvirt domains, nova instances, Proxmox VMs) will get VT-x/AMD-V,
why, and the fix for each (``apply=True`` carries the fixes out)::

    for g in nestcore.guests().guests:
        print(g.source, g.name, g.gets_extension, g.reason.code, g.fix and g.fix.summary)
"""

from ._errors import (
    NestcoreApplyError,
    NestcoreCommandError,
    NestcoreError,
    NestcoreInvalidInput,
    NestcoreIOError,
    NestcoreNotFoundError,
    NestcoreParseError,
    NestcorePermissionError,
    NestcoreUnsupported,
)
from ._nestcore import (
    SCHEMA_VERSION,
    ApplyReport,
    Plan,
    PlanAction,
    PlanBlocker,
    Recommendation,
    Capabilities,
    CmdlineParam,
    CmdlineReport,
    CpuReport,
    AccessReport,
    DeviceReport,
    Dmi,
    Evidence,
    Finding,
    HostInfo,
    KvmReport,
    ModuleReport,
    ProbeReport,
    VmmReadiness,
    VmmReport,
    Report,
    Signature,
    Snapshot,
    SvmFeatures,
    Verdict,
    VirtReport,
    XenInfo,
    __version__,
    check,
    cmdline_edit,
    enable,
    ensure_nested,
    guest_cpu,
    guests,
    guests_cli,
    Guests,
    Guest,
    GuestsHost,
    GuestSource,
    GuestReason,
    GuestAction,
    GuestFix,
    GuestCounts,
    GuestApplied,
    kargs_edit,
    parse_cmdline,
    plan_nested,
    plan_undo,
    recommend,
    snapshot,
)

__all__ = [
    "__version__",
    "SCHEMA_VERSION",
    "check",
    "snapshot",
    "Report",
    "HostInfo",
    "CpuReport",
    "SvmFeatures",
    "VirtReport",
    "Signature",
    "Dmi",
    "XenInfo",
    "KvmReport",
    "DeviceReport",
    "AccessReport",
    "Capabilities",
    "ModuleReport",
    "ProbeReport",
    "VmmReport",
    "VmmReadiness",
    "CmdlineReport",
    "CmdlineParam",
    "Verdict",
    "Finding",
    "Evidence",
    "Snapshot",
    "plan_nested",
    "plan_undo",
    "enable",
    "Plan",
    "PlanAction",
    "PlanBlocker",
    "ApplyReport",
    "guest_cpu",
    "ensure_nested",
    "recommend",
    "Recommendation",
    "guests",
    "guests_cli",
    "Guests",
    "Guest",
    "GuestsHost",
    "GuestSource",
    "GuestReason",
    "GuestAction",
    "GuestFix",
    "GuestCounts",
    "GuestApplied",
    "kargs_edit",
    "cmdline_edit",
    "parse_cmdline",
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
