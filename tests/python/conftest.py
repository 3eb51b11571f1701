"""Shared fixtures: small recorded hosts built under tmp_path (laid out like / plus a cpuid -r
dump), the repository paths, and the Rust CLI when it was built."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]

_INTEL_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx "
    "fxsr sse sse2 ss ht tm pbe syscall nx rdtscp lm constant_tsc arch_perfmon pebs bts rep_good "
    "nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est "
    "tm2 ssse3 cx16 xtpr pdcm pcid sse4_1 sse4_2 x2apic popcnt tsc_deadline_timer aes xsave avx "
    "f16c rdrand lahf_lm cpuid_fault epb pti ssbd ibrs ibpb stibp tpr_shadow flexpriority ept vpid "
    "fsgsbase smep erms xsaveopt dtherm ida arat pln pts md_clear flush_l1d"
)
_AMD_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse "
    "sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc "
    "cpuid extd_apicid aperfmperf pni pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt "
    "aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse "
    "3dnowprefetch osvw skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx "
    "cpb hw_pstate ssbd ibpb vmmcall fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt sha_ni "
    "xsaveopt xsavec xgetbv1 xsaves clzero irperf xsaveerptr arat npt lbrv svm_lock nrip_save "
    "tsc_scale vmcb_clean flushbyasid decodeassists pausefilter pfthreshold avic v_vmsave_vmload vgif"
)

# cpuid -r dumps (leaf, subleaf, eax, ebx, ecx, edx), CPU 0 only.
_INTEL_CPUID = [
    (0x00000000, 0, 0x0000000D, 0x756E6547, 0x6C65746E, 0x49656E69),  # GenuineIntel
    (0x00000001, 0, 0x000306A9, 0x00100800, 0x7FBAE3FF, 0xBFEBFBFF),  # Ivy Bridge, VMX, no hypervisor
    (0x80000000, 0, 0x80000008, 0x00000000, 0x00000000, 0x00000000),
    (0x80000001, 0, 0x00000000, 0x00000000, 0x00000001, 0x28100800),
]
_AMD_CPUID = [
    (0x00000000, 0, 0x00000010, 0x68747541, 0x444D4163, 0x69746E65),  # AuthenticAMD
    (0x00000001, 0, 0x00A20F10, 0x00100800, 0x7ED8320B, 0x178BFBFF),  # Zen 3, no hypervisor bit
    (0x80000000, 0, 0x80000021, 0x68747541, 0x444D4163, 0x69746E65),
    (0x80000001, 0, 0x00A20F10, 0x20000000, 0x75C237FF, 0x2FD3FBFF),  # SVM (ecx bit 2)
    (0x8000000A, 0, 0x00000001, 0x00008000, 0x00000000, 0x1EBFBCFF),  # SVM rev 1, 32768 ASIDs
]


def cpuid_dump(leaves) -> str:
    lines = ["CPU 0:"]
    for leaf, sub, a, b, c, d in leaves:
        lines.append(f"   0x{leaf:08x} 0x{sub:02x}: eax=0x{a:08x} ebx=0x{b:08x} ecx=0x{c:08x} edx=0x{d:08x}")
    return "\n".join(lines) + "\n"


def _cpuinfo(vendor: str, family: int, model: int, stepping: int, name: str, flags: str) -> str:
    return (
        f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        f"model name\t: {name}\nstepping\t: {stepping}\nflags\t\t: {flags}\nbogomips\t: 6800.00\n\n"
    )


def write_tree(root: Path, files: Dict[str, Optional[str]]) -> None:
    """Writes `files` (path as the host sees it -> content; None makes a folder) under `root`."""
    for path, content in files.items():
        p = root / path.lstrip("/")
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)


def _module(name: str, params: Dict[str, str]) -> Dict[str, Optional[str]]:
    files: Dict[str, Optional[str]] = {
        f"/sys/module/{name}/initstate": "live\n",
        f"/sys/module/{name}/refcnt": "0\n",
        f"/sys/module/{name}/holders": None,
    }
    for k, v in params.items():
        files[f"/sys/module/{name}/parameters/{k}"] = v + "\n"
    return files


class Host:
    """A recorded host: `root` (laid out like /) and `cpuid` (a cpuid -r dump)."""

    def __init__(self, base: Path, files: Dict[str, Optional[str]], leaves) -> None:
        self.root = base / "root"
        self.root.mkdir(parents=True)
        write_tree(self.root, files)
        self.cpuid = base / "cpuid.txt"
        self.cpuid.write_text(cpuid_dump(leaves))


def build_intel_nested_off(base: Path) -> Host:
    """Intel VT-x on bare metal, kvm_intel loaded with nested=N."""
    files: Dict[str, Optional[str]] = {
        "/proc/cpuinfo": _cpuinfo(
            "GenuineIntel", 6, 58, 9, "Intel(R) Core(TM) i7-3770 CPU @ 3.40GHz", _INTEL_FLAGS
        ),
        "/proc/cmdline": "BOOT_IMAGE=/vmlinuz-6.1.0-18-amd64 root=/dev/sda1 ro quiet\n",
        "/proc/sys/kernel/osrelease": "6.1.0-18-amd64\n",
        "/dev/kvm": "",
        **_module("kvm", {"halt_poll_ns": "200000"}),
        **_module("kvm_intel", {"nested": "N", "ept": "Y", "vpid": "Y", "enable_shadow_vmcs": "Y"}),
    }
    return Host(base / "intel-nested-off", files, _INTEL_CPUID)


def build_amd_nested_on(base: Path) -> Host:
    """AMD-V on bare metal, kvm_amd loaded with nested=1, kvm_amd.nested=1 on the command line."""
    files: Dict[str, Optional[str]] = {
        "/proc/cpuinfo": _cpuinfo("AuthenticAMD", 25, 33, 0, "AMD Ryzen 7 5800X 8-Core Processor", _AMD_FLAGS),
        "/proc/cmdline": "BOOT_IMAGE=/vmlinuz ro quiet kvm-amd.nested=1\n",
        "/proc/sys/kernel/osrelease": "6.8.0-45-generic\n",
        "/dev/kvm": "",
        **_module("kvm", {"halt_poll_ns": "200000"}),
        **_module("kvm_amd", {"nested": "1", "npt": "Y", "avic": "N"}),
    }
    return Host(base / "amd-nested-on", files, _AMD_CPUID)


@pytest.fixture
def intel_nested_off(tmp_path: Path) -> Host:
    return build_intel_nested_off(tmp_path)


@pytest.fixture
def amd_nested_on(tmp_path: Path) -> Host:
    return build_amd_nested_on(tmp_path)


@pytest.fixture
def empty_root(tmp_path: Path) -> Path:
    """A recorded host with nothing recorded: every answer unknown."""
    root = tmp_path / "empty"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def rust_cli() -> Path:
    """target/release/nestcore, built by scripts/test-all before the Python suite."""
    exe = Path(os.environ.get("NESTCORE_CLI", REPO / "target" / "release" / "nestcore"))
    if not exe.is_file():
        pytest.skip(f"the Rust CLI is not built ({exe}); cargo build --release -p nestcore --features cli")
    return exe
