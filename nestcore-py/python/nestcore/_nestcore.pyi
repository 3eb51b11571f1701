"""Type stubs of the native module (checked against it by ``python -m mypy.stubtest nestcore._nestcore``).

Every result class is frozen and mirrors one object of the JSON report (schema/report.schema.json):
its attributes are read-only, enumerations are ``str`` values exactly as in the JSON, ``to_dict()``
and ``to_json()`` give the JSON form, objects compare and hash by value and pickle through JSON.
"""

import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union, final

_StrPath = Union[str, os.PathLike[str]]
_Level = Literal["pass", "info", "warn", "fail"]
_When = Literal["now", "after_reload", "after_reboot", "after_restart"]

__all__ = [
    "__version__",
    "SCHEMA_VERSION",
    "check",
    "snapshot",
    "_from_json",
    "_main",
    "_report_from_json",
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
    "_plan_from_json",
    "Plan",
    "PlanAction",
    "PlanBlocker",
    "ApplyReport",
    "guest_cpu",
    "ensure_nested",
    "recommend",
    "Recommendation",
    "kargs_edit",
    "cmdline_edit",
    "parse_cmdline",
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
]
__version__: str
SCHEMA_VERSION: int

def _main(argv: Sequence[str]) -> int:
    """Runs the ``nestcore`` command with ``argv`` (without the program name) and returns its exit
    status; writes to file descriptors 1 and 2. ``python -m nestcore`` is this."""

def check(root: Optional[_StrPath] = None, cpuid: Optional[_StrPath] = None, probe: bool = True) -> Report:
    """Checks a host and returns its report.

    ``root=None`` checks this machine; a folder checks a recorded one (laid out like ``/``).
    ``cpuid`` is a recorded CPUID dump (``cpuid -r`` output, libvirt ``<cpudata>`` XML or nestcore
    JSON). ``probe`` runs the functional probe (a throw-away VM); it applies to the live host only.
    The GIL is released while the host is read.

    Raises NestcoreNotFoundError (a FileNotFoundError) when ``root`` or ``cpuid`` does not exist,
    NestcoreIOError when ``root`` is not a folder, NestcoreParseError (a ValueError) when ``cpuid``
    is not a dump, NestcorePermissionError (a PermissionError) when access is denied.
    """

def snapshot(dir: _StrPath) -> Snapshot:
    """Records this host's relevant files and CPUID into ``dir`` (created if missing; must be
    empty), without serial numbers, UUIDs or MAC addresses.

    Raises NestcoreInvalidInput when ``dir`` is not empty, an OSError subclass when it cannot be
    written.
    """

# Pickle reconstructors (see __reduce__).
def _from_json(kind: str, json: str) -> Any: ...
def _report_from_json(json: str, text: str, color_text: str, exit_code: int) -> Report: ...

class _Value:
    def to_dict(self) -> Dict[str, Any]:
        """The JSON form as plain Python data."""
    def to_json(self) -> str:
        """The JSON form, pretty-printed like ``nestcore check --json``."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> Any: ...

@final
class Report:
    """The whole report of ``check()``."""

    @property
    def schema_version(self) -> int: ...
    @property
    def nestcore_version(self) -> str: ...
    @property
    def host(self) -> HostInfo: ...
    @property
    def cpu(self) -> CpuReport: ...
    @property
    def virtualization(self) -> VirtReport: ...
    @property
    def kvm(self) -> KvmReport: ...
    @property
    def vmm(self) -> VmmReport: ...
    @property
    def cmdline(self) -> CmdlineReport: ...
    @property
    def verdict(self) -> Verdict: ...
    @property
    def exit_code(self) -> int:
        """0 when KVM is usable and nested virtualization is available to guests, 1 otherwise."""
    def text(self, color: bool = False) -> str:
        """The readable report, exactly as ``nestcore check`` prints it."""
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self) -> str:
        """The JSON report, exactly as ``nestcore check --json`` prints it."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> Any: ...

@final
class HostInfo(_Value):
    @property
    def root(self) -> str: ...
    @property
    def live(self) -> bool: ...
    @property
    def cpuid_source(self) -> Literal["native", "recorded", "none"]: ...
    @property
    def kernel(self) -> Optional[str]: ...

@final
class Evidence(_Value):
    @property
    def source(self) -> str: ...
    @property
    def detail(self) -> str: ...

@final
class SvmFeatures(_Value):
    @property
    def npt(self) -> bool: ...
    @property
    def svm_lock(self) -> bool: ...
    @property
    def nrips(self) -> bool: ...
    @property
    def vmcb_clean(self) -> bool: ...
    @property
    def decode_assists(self) -> bool: ...
    @property
    def avic(self) -> bool: ...
    @property
    def v_vmsave_vmload(self) -> bool: ...
    @property
    def vgif(self) -> bool: ...
    @property
    def asids(self) -> Optional[int]: ...
    @property
    def source(self) -> Literal["cpuid", "flags"]: ...

@final
class CpuReport(_Value):
    @property
    def vendor_id(self) -> Optional[str]: ...
    @property
    def vendor(self) -> Literal["intel", "amd", "hygon", "zhaoxin", "centaur", "other", "unknown"]: ...
    @property
    def family(self) -> Optional[int]: ...
    @property
    def model(self) -> Optional[int]: ...
    @property
    def stepping(self) -> Optional[int]: ...
    @property
    def brand(self) -> Optional[str]: ...
    @property
    def arch(self) -> Optional[str]: ...
    @property
    def extension(self) -> Literal["vmx", "svm", "none", "unknown"]: ...
    @property
    def hypervisor_bit(self) -> Optional[bool]: ...
    @property
    def cpuid_vmx(self) -> Optional[bool]: ...
    @property
    def cpuid_svm(self) -> Optional[bool]: ...
    @property
    def flags_vmx(self) -> Optional[bool]: ...
    @property
    def flags_svm(self) -> Optional[bool]: ...
    @property
    def flags_hypervisor(self) -> Optional[bool]: ...
    @property
    def vmx_features(self) -> Optional[List[str]]: ...
    @property
    def svm_features(self) -> Optional[SvmFeatures]: ...
    @property
    def firmware(self) -> Literal["enabled", "disabled", "unknown", "not_applicable"]: ...
    @property
    def evidence(self) -> List[Evidence]: ...

@final
class Signature(_Value):
    @property
    def leaf(self) -> str: ...
    @property
    def signature(self) -> str: ...
    @property
    def max_leaf(self) -> str: ...

@final
class Dmi(_Value):
    @property
    def sys_vendor(self) -> Optional[str]: ...
    @property
    def product_name(self) -> Optional[str]: ...
    @property
    def product_version(self) -> Optional[str]: ...
    @property
    def board_vendor(self) -> Optional[str]: ...
    @property
    def bios_vendor(self) -> Optional[str]: ...

@final
class XenInfo(_Value):
    @property
    def role(self) -> Literal["dom0", "domU"]: ...
    @property
    def mode(self) -> Literal["pv", "hvm", "pvh", "unknown"]: ...

@final
class VirtReport(_Value):
    @property
    def hypervisor(self) -> str:
        """systemd-detect-virt's id: "none", "kvm", "qemu", "xen", "microsoft", ..., "vm-other"."""
    @property
    def hypervisor_name(self) -> Optional[str]: ...
    @property
    def type(self) -> Literal["none", "full", "para", "container"]:
        """lscpu's "Virtualization type"."""
    @property
    def signatures(self) -> List[Signature]: ...
    @property
    def dmi(self) -> Optional[Dmi]: ...
    @property
    def xen(self) -> Optional[XenInfo]: ...
    @property
    def container(self) -> str:
        """"none", "docker", "podman", "lxc", ..., "container-other"."""
    @property
    def cloud(self) -> Optional[str]: ...
    @property
    def evidence(self) -> List[Evidence]: ...

@final
class Capabilities(_Value):
    @property
    def nested_state(self) -> bool: ...
    @property
    def get_msr_features(self) -> bool: ...
    @property
    def hyperv_enlightened_vmcs(self) -> bool: ...

@final
class DeviceReport(_Value):
    @property
    def path(self) -> str: ...
    @property
    def state(
        self,
    ) -> Literal[
        "absent", "present", "permission_denied", "blocked", "no_driver", "wrong_api_version", "usable", "error"
    ]: ...
    @property
    def api_version(self) -> Optional[int]: ...
    @property
    def errno(self) -> Optional[int]: ...
    @property
    def error(self) -> Optional[str]: ...
    @property
    def capabilities(self) -> Optional[Capabilities]: ...
    @property
    def offers_extension(self) -> Optional[bool]: ...
    @property
    def access(self) -> Optional[AccessReport]: ...

@final
class AccessReport(_Value):
    @property
    def owner_uid(self) -> int: ...
    @property
    def owner(self) -> Optional[str]: ...
    @property
    def group_gid(self) -> int: ...
    @property
    def group(self) -> Optional[str]: ...
    @property
    def mode(self) -> str: ...
    @property
    def acl(self) -> List[str]: ...
    @property
    def uid(self) -> int: ...
    @property
    def user(self) -> Optional[str]: ...
    @property
    def process_groups(self) -> Optional[List[int]]: ...
    @property
    def user_in_group(self) -> Optional[bool]: ...
    @property
    def process_in_group(self) -> Optional[bool]: ...
    @property
    def allowed_by_mode(self) -> Optional[bool]: ...

@final
class ModuleReport(_Value):
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> Literal["loaded", "builtin", "loadable", "absent"]: ...
    @property
    def refcnt(self) -> Optional[int]: ...
    @property
    def holders(self) -> List[str]: ...
    @property
    def parameters(self) -> Dict[str, Union[bool, int, str]]: ...

@final
class ProbeReport(_Value):
    @property
    def ok(self) -> bool: ...
    @property
    def duration_us(self) -> int: ...
    @property
    def instructions(self) -> int: ...
    @property
    def stage(self) -> Literal["open", "create_vm", "memory", "create_vcpu", "registers", "run", "done"]: ...
    @property
    def error(self) -> Optional[str]: ...
    @property
    def errno(self) -> Optional[int]: ...

@final
class KvmReport(_Value):
    @property
    def device(self) -> DeviceReport: ...
    @property
    def backend(self) -> Optional[str]: ...
    @property
    def modules(self) -> List[ModuleReport]: ...
    @property
    def nested(self) -> Literal["enabled", "disabled", "unknown"]: ...
    @property
    def nested_effective(self) -> Optional[bool]: ...
    @property
    def probe(self) -> Optional[ProbeReport]: ...
    @property
    def other_hypervisors(self) -> List[str]: ...
    @property
    def evidence(self) -> List[Evidence]: ...

@final
class VmmReadiness(_Value):
    @property
    def name(self) -> Literal["qemu", "firecracker", "cloud-hypervisor", "kata-containers", "incus"]: ...
    @property
    def ready(self) -> Optional[bool]: ...
    @property
    def missing(self) -> List[str]: ...
    @property
    def optional_missing(self) -> List[str]: ...
    @property
    def unknown(self) -> List[str]: ...

@final
class VmmReport(_Value):
    @property
    def kvm_capabilities(self) -> Optional[Dict[str, bool]]: ...
    @property
    def vmms(self) -> List[VmmReadiness]: ...

@final
class CmdlineParam(_Value):
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> Optional[str]: ...

@final
class CmdlineReport(_Value):
    @property
    def present(self) -> bool: ...
    @property
    def relevant(self) -> List[CmdlineParam]: ...

@final
class Finding(_Value):
    @property
    def code(self) -> str: ...
    @property
    def level(self) -> _Level: ...
    @property
    def check(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def evidence(self) -> List[Evidence]: ...
    @property
    def remedy(self) -> Optional[str]: ...
    @property
    def layer(self) -> Optional[str]:
        """The hypervisor below (a ``virtualization.hypervisor`` id) when the remedy is for it."""

@final
class Verdict(_Value):
    @property
    def kvm_usable(self) -> Optional[bool]: ...
    @property
    def nested_for_guests(self) -> Literal["available", "disabled", "unsupported", "unknown"]: ...
    @property
    def findings(self) -> List[Finding]: ...
    def at_least(self, level: _Level) -> List[Finding]:
        """The findings at ``level`` or worse, in check order."""
    def finding(self, code: str) -> Optional[Finding]:
        """The finding with ``code``, or None."""

@final
class Snapshot(_Value):
    @property
    def dir(self) -> str: ...
    @property
    def files(self) -> List[str]: ...
    @property
    def cpuid(self) -> Optional[str]: ...
    @property
    def written(self) -> List[str]: ...

# Nested virtualization on or off: plan, apply (nestcore enable), undo (nestcore enable --undo).

def plan_nested(
    root: Optional[_StrPath] = None,
    want: Literal["on", "off"] = "on",
    persist: Sequence[str] = ...,  # ("modprobe",)
    neutralise_conflicts: bool = False,
    *,
    force: bool = False,
    cpuid: Optional[_StrPath] = None,
    dialect: Literal["python", "cli", "ansible", "c", "rust"] = "python",
) -> Plan:
    """Plans turning nested virtualization ``want`` ("on" or "off") for the layers in ``persist``
    (any of "runtime", "modprobe", "cmdline") on this machine (``root=None``) or a recorded root
    (``cpuid``: its CPUID dump, for the check). Reads the host only (the GIL is released
    meanwhile); ``Plan.apply()`` changes it. ``neutralise_conflicts`` comments out (or
    overrides) modprobe.d lines that set the opposite value instead of reporting them as
    blockers.

    "off" is off in every persistent layer that sets nesting on (the running module keeps it
    until it loads again unless ``persist`` has "runtime"); a layer that overrides the one written is
    named in the warnings; "on" where the check says it cannot work here (no VMX/SVM, disabled in
    the firmware, not passed on by the hypervisor below, a PVM guest) is blocked with the
    check's reason and remedy, unless ``force``. ``dialect``: whose words messages use for
    options ("python": ``force=True``; "cli": ``--force``; "ansible": ``force: true``).

    Raises NestcoreInvalidInput (a ValueError) for another want, layer or dialect,
    NestcoreUnsupported when a runtime reload is impossible (built in, in use),
    NestcoreParseError for a configuration nestcore cannot edit safely, an OSError subclass when
    ``root`` cannot be read.
    """

def plan_undo(root: Optional[_StrPath] = None) -> Plan:
    """The plan that puts back exactly what the newest ``Plan.apply()`` not yet undone on this
    machine (``root=None``) or a recorded root changed, from its backup store
    (/var/lib/nestcore/backup): files byte for byte, created files removed, modules reloaded back,
    the boot configuration regenerated. ``Plan.apply()`` carries it out and marks that apply
    undone (the next ``plan_undo()`` puts back the apply before it). No apply recorded (or all
    undone) gives an empty plan; a file changed since the apply is a blocker.

    Raises NestcoreIOError / NestcoreParseError when the store's manifest cannot be read.
    """

def enable(
    root: Optional[_StrPath] = None,
    off: bool = False,
    persist: Sequence[str] = ...,  # ("modprobe",)
    apply: bool = False,
    neutralise_conflicts: bool = False,
    *,
    json: bool = False,
    force: bool = False,
    undo: bool = False,
    cpuid: Optional[_StrPath] = None,
) -> Tuple[str, int]:
    """What ``nestcore enable`` prints and its exit status (0: the host is, or ends, as wanted; 1:
    not, a plan not applied, blocked, or forced past the check). Programs are deferred (listed,
    not run) for a recorded root and run on this machine. ``json=True`` is ``nestcore enable
    --json``, ``force=True`` ``--force``, ``undo=True`` ``--undo``, ``cpuid`` ``--cpuid``.
    """

def _plan_from_json(root: Optional[_StrPath], want: str, persist: Sequence[str], core: str) -> Plan: ...

@final
class PlanAction(_Value):
    """One step of a plan."""

    @property
    def kind(self) -> Literal["write_file", "remove_file", "reload_module", "run"]: ...
    @property
    def description(self) -> str: ...
    @property
    def path(self) -> Optional[str]: ...
    @property
    def diff(self) -> Optional[str]: ...

@final
class PlanBlocker(_Value):
    """Why a plan cannot be applied as it is; ``str()`` is "reason. Remedy: remedy"."""

    @property
    def code(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def remedy(self) -> Optional[str]: ...

@final
class ApplyReport(_Value):
    """What ``Plan.apply()`` did."""

    @property
    def written(self) -> Tuple[str, ...]: ...
    @property
    def removed(self) -> Tuple[str, ...]: ...
    @property
    def backups(self) -> Tuple[str, ...]: ...
    @property
    def commands(self) -> Tuple[Tuple[str, int], ...]: ...
    @property
    def deferred(self) -> Tuple[str, ...]: ...
    @property
    def rolled_back(self) -> Tuple[str, ...]: ...
    @property
    def verified(self) -> Optional[bool]: ...
    @property
    def transaction(self) -> Optional[str]: ...
    @property
    def undone(self) -> Optional[str]: ...
    @property
    def changed(self) -> bool: ...

@final
class Plan:
    """A plan to turn nested virtualization on or off, made by ``plan_nested()``, or to put back
    the last apply, made by ``plan_undo()``; frozen, compares by value, pickles (and a pickled
    plan still applies)."""

    @property
    def root(self) -> Optional[str]: ...
    @property
    def want(self) -> Literal["on", "off", "undo"]: ...
    @property
    def persist(self) -> Tuple[str, ...]: ...
    @property
    def summary(self) -> str: ...
    @property
    def is_empty(self) -> bool: ...
    @property
    def actions(self) -> Tuple[PlanAction, ...]: ...
    @property
    def blockers(self) -> Tuple[PlanBlocker, ...]: ...
    @property
    def notes(self) -> Tuple[str, ...]: ...
    @property
    def warnings(self) -> Tuple[str, ...]: ...
    @property
    def undoes(self) -> Optional[str]: ...
    @property
    def timeline(self) -> Tuple[Tuple[_When, str], ...]: ...
    @property
    def reboot_required(self) -> bool: ...
    def diff(self) -> str:
        """Every file's unified diff, concatenated ("" when the plan writes no file)."""
    def text(self) -> str:
        """The plan as ``nestcore enable`` prints it."""
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self) -> str: ...
    def apply(self, defer_commands: Optional[bool] = None) -> ApplyReport:
        """Carries the plan out on the root it was made for: the only call that changes a host.

        ``defer_commands=None`` defers programs for a recorded root (listed in
        ``ApplyReport.deferred``) and runs them on this machine. Raises NestcoreUnsupported while
        the plan has blockers, NestcoreApplyError (``rolled_back``, the failure as ``__cause__``)
        when a step failed after writing began.
        """
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> Any: ...

# The guest CPU configuration that gives guests VT-x/AMD-V (nestcore guest-cpu).

def guest_cpu(
    format: Literal["libvirt", "qemu", "nova"] = "libvirt",
    mode: Optional[Literal["custom", "host-model", "host-passthrough", "maximum"]] = None,
    model: Optional[str] = None,
    features: Sequence[str] = ...,  # ()
    topology: Optional[str] = None,
    report: Optional[Report] = None,
    vendor: Optional[Literal["intel", "amd"]] = None,
) -> str:
    """The guest CPU configuration that gives guests VMX/SVM, exactly as ``nestcore guest-cpu``
    prints it: a libvirt ``<cpu>`` element, a QEMU ``-cpu`` argument or nova.conf's ``[libvirt]``
    keys. ``features`` are ``"POLICY:NAME"`` (force, require, optional, disable, forbid),
    ``topology`` is ``"S,C,T"`` or ``"S,D,C,T"``. Without mode and model: the recommendation for a
    single host.

    The host: ``report`` (its vendor, extension and nesting state), else ``vendor``, else this
    machine's CPU vendor (checked without the probe; a ``vendor`` given with a report overrides
    its vendor). Raises NestcoreInvalidInput (a ValueError) for a bad argument or a vendor that does
    not tell vmx from svm.
    """

def ensure_nested(
    domain_xml: str,
    vendor: Optional[Literal["intel", "amd"]] = None,
    disable: bool = False,
    report: Optional[Report] = None,
) -> str:
    """The libvirt domain definition edited so that its guest gets VMX/SVM (``disable=True``:
    takes it away), as ``nestcore guest-cpu --ensure-nested`` prints it; everything outside the
    edited ``<cpu>`` stays byte for byte. The host as for ``guest_cpu()``. Raises
    NestcoreParseError (a ValueError) for XML that is not a domain.
    """

def recommend(
    report: Optional[Report] = None,
    vendor: Optional[Literal["intel", "amd"]] = None,
    migratable: bool = False,
    model: Optional[str] = None,
) -> Recommendation:
    """The recommended guest CPU configuration in libvirt, QEMU and nova form, with the rationale
    and caveats. ``migratable=True``: guests migrate between hosts, ``model`` is the pool's common
    named CPU model if there is one. The host as for ``guest_cpu()``.
    """

@final
class Recommendation(_Value):
    """The guest CPU configuration recommended for a host and what the guests need."""

    @property
    def libvirt_xml(self) -> str: ...
    @property
    def qemu_cpu(self) -> str: ...
    @property
    def nova_ini(self) -> str: ...
    @property
    def rationale(self) -> Tuple[str, ...]: ...
    @property
    def caveats(self) -> Tuple[str, ...]: ...

# Which guests will get VMX/SVM (nestcore guests).

_Source = Literal["libvirt", "nova", "proxmox"]

def guests(
    root: Optional[_StrPath] = None,
    cpuid: Optional[_StrPath] = None,
    *,
    apply: bool = False,
    virsh: Optional[bool] = None,
    defer_commands: Optional[bool] = None,
) -> Guests:
    """Every guest defined on this machine (root=None) or a recorded one, judged against the
    host's verdict, with the fix for each; apply=True carries the fixes out."""

def guests_cli(
    root: Optional[_StrPath] = None,
    cpuid: Optional[_StrPath] = None,
    apply: bool = False,
    *,
    json: bool = False,
) -> Tuple[str, int]:
    """What ``nestcore guests [--apply] [--json]`` prints and its exit status."""

@final
class GuestsHost(_Value):
    """The host as the guests' verdicts see it."""

    @property
    def root(self) -> str: ...
    @property
    def live(self) -> bool: ...
    @property
    def vendor(self) -> Literal["intel", "amd", "hygon", "zhaoxin", "centaur", "other", "unknown"]: ...
    @property
    def extension(self) -> Optional[Literal["vmx", "svm"]]: ...
    @property
    def nested_for_guests(self) -> Literal["available", "disabled", "unsupported", "unknown"]: ...
    @property
    def kvm_usable(self) -> Optional[bool]: ...

@final
class GuestSource(_Value):
    """How one source was read."""

    @property
    def source(self) -> _Source: ...
    @property
    def read(self) -> Literal["files", "virsh", "none"]: ...
    @property
    def paths(self) -> Tuple[str, ...]: ...
    @property
    def detail(self) -> str: ...

@final
class GuestReason(_Value):
    """Why a guest gets the extension or not: a stable code and one sentence."""

    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...

@final
class GuestAction(_Value):
    """One step of a guest's fix."""

    @property
    def kind(self) -> Literal["write_file", "reload_module", "run"]: ...
    @property
    def description(self) -> str: ...
    @property
    def path(self) -> Optional[str]: ...
    @property
    def diff(self) -> Optional[str]: ...
    @property
    def reason(self) -> str: ...
    @property
    def when(self) -> _When: ...

@final
class GuestFix(_Value):
    """A guest's fix (a plan); one with blockers is not applied."""

    @property
    def summary(self) -> str: ...
    @property
    def actions(self) -> Tuple[GuestAction, ...]: ...
    @property
    def timeline(self) -> Tuple[Tuple[_When, str], ...]: ...
    @property
    def warnings(self) -> Tuple[str, ...]: ...
    @property
    def blockers(self) -> Tuple[PlanBlocker, ...]: ...

@final
class Guest(_Value):
    """One guest definition and its verdict."""

    @property
    def source(self) -> _Source: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> Optional[str]: ...
    @property
    def id(self) -> Optional[str]: ...
    @property
    def scope(self) -> Optional[str]: ...
    @property
    def read_from(self) -> Literal["file", "virsh"]: ...
    @property
    def managed_by(self) -> Optional[Literal["nova"]]: ...
    @property
    def running(self) -> Optional[bool]: ...
    @property
    def cpu(self) -> Optional[str]: ...
    @property
    def gets_extension(self) -> Optional[bool]: ...
    @property
    def reason(self) -> GuestReason: ...
    @property
    def fix(self) -> Optional[GuestFix]: ...
    @property
    def caveats(self) -> Tuple[str, ...]: ...

@final
class GuestCounts(_Value):
    """Counts over the guests."""

    @property
    def total(self) -> int: ...
    @property
    def gets_extension(self) -> int: ...
    @property
    def lacks_extension(self) -> int: ...
    @property
    def unknown(self) -> int: ...
    @property
    def fixable(self) -> int: ...

@final
class GuestApplied(_Value):
    """What applying one guest's fix did, or why it failed."""

    @property
    def source(self) -> _Source: ...
    @property
    def name(self) -> str: ...
    @property
    def report(self) -> Optional[ApplyReport]: ...
    @property
    def error(self) -> Optional[str]: ...

@final
class Guests(_Value):
    """Every guest of a host, judged (``nestcore guests --json``)."""

    @property
    def schema_version(self) -> int: ...
    @property
    def nestcore_version(self) -> str: ...
    @property
    def host(self) -> GuestsHost: ...
    @property
    def sources(self) -> Tuple[GuestSource, ...]: ...
    @property
    def guests(self) -> Tuple[Guest, ...]: ...
    @property
    def summary(self) -> GuestCounts: ...
    @property
    def applied(self) -> Optional[Tuple[GuestApplied, ...]]: ...
    @property
    def after(self) -> Optional[Guests]: ...
    @property
    def exit_code(self) -> int: ...

# Kernel arguments (nestcore kargs): pure text in, text out.

def kargs_edit(
    config_text: str,
    loader: Literal["grub", "grub2", "bls", "extlinux", "kernel-cmdline"],
    update_kernel: str = "ALL",
    args: Optional[str] = None,
    remove_args: Optional[str] = None,
    boot_filesystem: Optional[str] = None,
) -> str:
    """The configuration text with kernel arguments edited grubby-compatibly, as ``nestcore kargs``
    prints it. ``args``: ``k=v`` replaces an existing ``k`` in place or is appended;
    ``remove_args``: ``k`` removes any value, ``k=v`` only that one. ``update_kernel``: "ALL",
    "DEFAULT", indexes or a kernel path. Raises NestcoreInvalidInput for an unknown loader or bad
    arguments, NestcoreParseError for a configuration that cannot be edited safely.
    """

def cmdline_edit(line: str, args: Optional[str] = None, remove_args: Optional[str] = None) -> str:
    """A bare kernel command line with grubby's ``--args`` then ``--remove-args`` applied (``-``
    equals ``_`` in names); every other byte stays."""

def parse_cmdline(line: str) -> Tuple[Tuple[str, Optional[str]], ...]:
    """The kernel's parameters as (name, value) by the kernel's rules: names as written, value
    None for a bare name, quotes around a value dropped, init arguments after ``--`` left out."""
