"""Every image the lab boots, built in one place: Debian's kernels (apt-get download, cached under
target/lab/kernels), the L1 and L2 initramfs images (busybox, kmod, jq, QEMU and the freshly built
nestcore), and the boot disks (extlinux, systemd-boot, GRUB on a Debian root). Scenarios never
build anything themselves: they name a boot kind in their header and get the same images.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LAB = REPO / "target" / "lab"
NESTCORE = REPO / "target" / "release" / "nestcore"

# Kernel series -> the Debian meta package whose dependency is that series' kernel.
KERNELS = {"6.1": "linux-image-amd64", "6.12": "linux-image-6.12-amd64"}

# Modules the L1 image carries (their dependencies come along).
L1_MODULES = [
    "kvm_amd", "kvm_intel", "qemu_fw_cfg", "virtio_blk", "virtio_pci", "ext4", "vfat",
    "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859_1", "efivarfs", "tun", "bridge",
    "virtio_net", "loop",
]
QEMU_FILES = [
    "/usr/share/qemu/kvmvapic.bin", "/usr/share/qemu/linuxboot_dma.bin",
    "/usr/share/qemu/linuxboot.bin", "/usr/share/qemu/multiboot_dma.bin",
    "/usr/share/qemu/pvh.bin", "/usr/share/seabios/bios-256k.bin", "/usr/share/seabios/bios.bin",
]
SYSLINUX_MBR = "/usr/lib/syslinux/mbr/mbr.bin"
SYSTEMD_BOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
KMOD_TOOLS = ["modprobe", "insmod", "rmmod", "lsmod", "depmod", "modinfo"]


def log(msg: str) -> None:
    print(msg, flush=True)


def sh(*cmd, cwd=None, capture=False, env=None, check=True) -> str:
    """Runs a command (no shell); returns stdout when `capture`."""
    r = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, check=False,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(map(str, cmd))}: exit {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return r.stdout.decode(errors="replace") if capture else ""


class LabError(Exception):
    """Something the lab could not build or run (the scenario fails with this message)."""


# ---------------------------------------------------------------------------------------------
# Kernels


@dataclass
class Kernel:
    series: str
    package: str
    kver: str
    tree: Path  # the extracted package (boot/, lib/modules/KVER/)

    @property
    def vmlinuz(self) -> Path:
        return self.tree / "boot" / f"vmlinuz-{self.kver}"


def resolve_kernel_package(meta: str) -> str:
    """The linux-image-* package a meta package depends on (asked of apt-cache, not hard-coded)."""
    out = sh("apt-cache", "depends", meta, capture=True)
    for line in out.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
        if m:
            return m.group(1)
    raise LabError(f"apt-cache depends {meta}: no linux-image dependency in {out!r}")


def kernel(series: str) -> Kernel:
    pkg = resolve_kernel_package(KERNELS[series])
    tree = LAB / "kernels" / pkg
    if not (tree / ".ok").exists():
        debs = LAB / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        for old in debs.glob(f"{pkg}_*.deb"):
            old.unlink()
        log(f"lab: apt-get download {pkg}")
        sh("apt-get", "download", pkg, cwd=debs)
        deb = next(debs.glob(f"{pkg}_*.deb"))
        if tree.exists():
            shutil.rmtree(tree)
        tree.parent.mkdir(parents=True, exist_ok=True)
        sh("dpkg-deb", "-x", deb, tree)
        kver = next((tree / "lib" / "modules").iterdir()).name
        sh("depmod", "-b", tree, kver)
        version = sh("dpkg-deb", "-f", deb, "Version", capture=True).strip()
        (tree / ".version").write_text(version + "\n")
        deb.unlink()
        (tree / ".ok").write_text("")
    kver = next((tree / "lib" / "modules").iterdir()).name
    return Kernel(series, pkg, kver, tree)


def module_closure(k: Kernel, names: list[str]) -> list[Path]:
    """The module files `modprobe NAME` would insert, dependencies first, relative to the tree."""
    out: list[Path] = []
    for n in names:
        text = sh("modprobe", "-d", k.tree, "-S", k.kver, "--show-depends", n, capture=True, check=False)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod":
                p = Path(parts[1]).relative_to(k.tree)
                if p not in out:
                    out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# Images


class Tree:
    """A root folder being filled for an initramfs, with ELF programs and their libraries."""

    def __init__(self, path: Path):
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        self.path = path
        for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc/modprobe.d", "proc", "sys", "dev",
                  "tmp", "run", "root", "lab", "var/lib", "mnt"]:
            (path / d).mkdir(parents=True, exist_ok=True)

    def copy(self, src, dest: str | None = None, mode: int | None = None) -> None:
        d = self.path / (dest or str(src)).lstrip("/")
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, d)  # follows symlinks
        if mode is not None:
            d.chmod(mode)

    def program(self, src, dest: str | None = None) -> None:
        """An ELF program and every shared library ldd names."""
        self.copy(src, dest, 0o755)
        out = sh("ldd", src, capture=True, check=False)
        for line in out.splitlines():
            m = re.search(r"(/\S+)\s+\(0x", line)
            if m and Path(m.group(1)).exists():
                lib = m.group(1)
                if not (self.path / lib.lstrip("/")).exists():
                    self.copy(lib)

    def busybox(self) -> None:
        self.copy("/bin/busybox", "/bin/busybox", 0o755)
        applets = sh("/bin/busybox", "--list", capture=True).split()
        for a in applets:
            if a in KMOD_TOOLS or a == "busybox":
                continue
            link = self.path / "bin" / a
            if not link.exists():
                link.symlink_to("busybox")

    def symlink(self, target: str, link: str) -> None:
        p = self.path / link.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists() or p.is_symlink():
            p.unlink()
        p.symlink_to(target)

    def cpio(self, out: Path) -> Path:
        files = subprocess.run(["find", "."], cwd=self.path, check=True, stdout=subprocess.PIPE).stdout
        with open(out, "wb") as f:
            subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=self.path,
                           input=files, stdout=f, check=True)
        return out


def stamp_of(*paths) -> str:
    """A cheap fingerprint (size and mtime) of the inputs of an image, to rebuild when they change."""
    parts = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                if q.is_file():
                    st = q.stat()
                    parts.append(f"{q}:{st.st_size}:{int(st.st_mtime)}")
        elif p.exists():
            st = p.stat()
            parts.append(f"{p}:{st.st_size}:{int(st.st_mtime)}")
    return "\n".join(parts)


def cached(out: Path, inputs: list, build) -> Path:
    """Builds `out` with `build(out)` unless its stamp says the inputs are unchanged."""
    stamp = out.with_name(out.name + ".stamp")
    want = stamp_of(*inputs, __file__)
    if out.exists() and stamp.exists() and stamp.read_text() == want:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    build(out)
    stamp.write_text(want)
    log(f"lab: built {out.relative_to(REPO)} ({out.stat().st_size // 1024} KiB, {time.monotonic() - t:.1f} s)")
    return out


def l2_image(k: Kernel) -> Path:
    """The L2 guest's initramfs: busybox, jq, nestcore and an init that reports `check`."""
    def build(out: Path) -> None:
        t = Tree(LAB / "build" / f"l2-{k.kver}")
        t.busybox()
        t.program("/usr/bin/jq")
        t.program(NESTCORE, "/usr/bin/nestcore")
        t.copy(HERE / "guest" / "l2init", "/init", 0o755)
        t.cpio(out)
    return cached(LAB / "images" / f"l2-{k.kver}.cpio", [NESTCORE, HERE / "guest"], build)


def l1_image(k: Kernel, with_l2: bool = True) -> Path:
    """The L1 initramfs: busybox, kmod's modprobe, jq, nestcore, the KVM and disk modules, and
    (`with_l2`) QEMU with the L2's kernel and image. Boot loaders load the lighter one (12 MB
    instead of 80)."""
    l2 = l2_image(k) if with_l2 else None
    name = "l1" if with_l2 else "l1lite"

    def build(out: Path) -> None:
        t = Tree(LAB / "build" / f"{name}-{k.kver}")
        t.busybox()
        t.program("/usr/bin/kmod", "/sbin/kmod")
        for tool in KMOD_TOOLS:
            t.symlink("kmod", f"/sbin/{tool}")
        t.program("/usr/bin/jq")
        t.program(NESTCORE, "/usr/bin/nestcore")
        if with_l2:
            t.program("/usr/bin/qemu-system-x86_64")
            for f in QEMU_FILES:
                t.copy(f)
        mods = Path("lib/modules") / k.kver
        for rel in module_closure(k, L1_MODULES):
            t.copy(k.tree / rel, "/" + str(rel))
        for f in ["modules.builtin", "modules.builtin.modinfo", "modules.order"]:
            t.copy(k.tree / mods / f, "/" + str(mods / f))
        sh("depmod", "-b", t.path, k.kver)
        if l2:
            t.copy(k.vmlinuz, "/l2/vmlinuz")
            t.copy(l2, "/l2/initrd")
        t.copy(HERE / "guest" / "init", "/init", 0o755)
        t.copy(HERE / "guest" / "lib.sh", "/lab/lib.sh")
        t.copy(HERE / "guest" / "boot.sh", "/lab/boot.sh")
        (t.path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (t.path / "etc" / "group").write_text("root:x:0:\nkvm:x:104:\n")
        t.cpio(out)
    return cached(LAB / "images" / f"{name}-{k.kver}.cpio",
                  [NESTCORE, HERE / "guest", k.vmlinuz] + ([l2] if l2 else []), build)


# ---------------------------------------------------------------------------------------------
# Boot kinds


def prepare(kind: str, sc, k: Kernel, outdir: Path) -> dict | None:
    """What a scenario's `boot:` kind needs: None for a plain initramfs boot (QEMU loads the
    kernel and the L1 image), else a dict with the extra QEMU arguments (`qemu`) and, per boot
    number, a direct kernel boot to use instead of the disk's boot loader (`direct`)."""
    if kind == "initramfs":
        l1_image(k)
        return None
    if kind == "extlinux":
        return {"qemu": ["-drive", f"file={extlinux_disk(k, sc, outdir)},format=raw,if=virtio"]}
    if kind == "systemd-boot":
        vars_fd = outdir / "OVMF_VARS.fd"
        shutil.copy(OVMF_VARS, vars_fd)
        return {"qemu": ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                         "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}",
                         "-drive", f"file={esp_disk(k, sc, outdir)},format=raw,if=virtio"]}
    raise LabError(f"unknown boot kind {kind!r} (initramfs, extlinux, systemd-boot, grub)")


# ---------------------------------------------------------------------------------------------
# Disks (built without mounting anything: sfdisk, mkfs.vfat --offset, mtools, syslinux --offset)

MiB = 1024 * 1024


def fat_disk(path: Path, size_mib: int, label: str, gpt: bool = False) -> str:
    """A disk image with one FAT partition from 1 MiB on (MBR and bootable, or GPT and an EFI
    system partition); returns the mtools image spec of the partition (`IMG@@1M`)."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(size_mib * MiB)
    table = ("label: gpt\nstart=2048, type=uefi\n" if gpt
             else "label: dos\nstart=2048, type=c, bootable\n")
    subprocess.run(["sfdisk", "-q", str(path)], input=table.encode(), check=True)
    blocks = (size_mib * MiB - 2048 * 512 - (34 * 512 if gpt else 0)) // 1024
    sh("mkfs.vfat", "--offset", "2048", "-h", "2048", "-n", label, path, blocks)
    return f"{path}@@1M"


def mcopy(spec: str, src, dest: str) -> None:
    sh("mcopy", "-o", "-i", spec, src, f"::{dest}")


def mkdirs(spec: str, *dirs: str) -> None:
    for d in dirs:
        sh("mmd", "-D", "s", "-i", spec, f"::{d}", check=False)


def extlinux_disk(k: Kernel, sc, outdir: Path) -> Path:
    """An MBR disk (syslinux's mbr.bin) with a FAT partition on which `syslinux --install`
    installed the boot loader in /syslinux, its syslinux.cfg (the scenario's `append` on the
    APPEND line), the kernel and the light L1 image."""
    disk = outdir / "disk.img"
    spec = fat_disk(disk, 64, "LABBOOT")
    mkdirs(spec, "/syslinux")
    sh("syslinux", "--offset", str(MiB), "--install", "-d", "/syslinux", disk)
    with open(disk, "r+b") as f, open(SYSLINUX_MBR, "rb") as m:
        f.write(m.read(440))
    cfg = outdir / "syslinux.cfg"
    cfg.write_text(
        "# Written by nestcore's lab (tests/lab/images.py)\n"
        "PROMPT 0\n"
        "TIMEOUT 1\n"
        "DEFAULT lab\n"
        "\n"
        "LABEL lab\n"
        "    LINUX /vmlinuz\n"
        "    INITRD /initrd.img\n"
        f"    APPEND console=ttyS0 panic=-1 {sc.setting('append', 1)}\n".replace(" \n", "\n")
    )
    mcopy(spec, cfg, "/syslinux/syslinux.cfg")
    mcopy(spec, k.vmlinuz, "/vmlinuz")
    mcopy(spec, l1_image(k, with_l2=False), "/initrd.img")
    return disk


def esp_disk(k: Kernel, sc, outdir: Path) -> Path:
    """A GPT disk whose EFI system partition holds systemd-boot as the removable-media loader
    (EFI/BOOT/BOOTX64.EFI), loader.conf, one Boot Loader Specification entry (the scenario's
    `append` in `options`), the kernel and the light L1 image."""
    disk = outdir / "disk.img"
    spec = fat_disk(disk, 64, "LABESP", gpt=True)
    mkdirs(spec, "/EFI", "/EFI/BOOT", "/loader", "/loader/entries")
    mcopy(spec, SYSTEMD_BOOT, "/EFI/BOOT/BOOTX64.EFI")
    conf = outdir / "loader.conf"
    conf.write_text("timeout 0\ndefault lab.conf\neditor no\n")
    mcopy(spec, conf, "/loader/loader.conf")
    entry = outdir / "lab.conf"
    entry.write_text(
        "title nestcore lab\n"
        "linux /vmlinuz\n"
        "initrd /initrd.img\n"
        f"options console=ttyS0 panic=-1 {sc.setting('append', 1)}".rstrip() + "\n"
    )
    mcopy(spec, entry, "/loader/entries/lab.conf")
    mcopy(spec, k.vmlinuz, "/vmlinuz")
    mcopy(spec, l1_image(k, with_l2=False), "/initrd.img")
    return disk
