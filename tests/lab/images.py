"""Every image the lab boots, built in one place: Debian's kernels (apt-get download, cached under
target/lab/kernels), the L1 and L2 initramfs images (busybox, kmod, jq, QEMU and the freshly built
nestcore), and the boot disks (extlinux, systemd-boot, GRUB on a Debian root). Scenarios never
build anything themselves: they name a boot kind in their header and get the same images.
"""

from __future__ import annotations

import os
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
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("LAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The Debian L1 root (scenarios 05c, 02, 08): GRUB's tools (grub-install, update-grub; not the
# grub-pc package, whose postinst would install GRUB on this machine's disks), Python with pip and
# venv for the wheel, libvirt with its QEMU driver and QEMU itself.
DEBIAN_PACKAGES = [
    "grub-pc-bin", "grub2-common", "python3", "python3-pip", "python3-venv", "kmod", "procps",
    "libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients", "qemu-system-x86",
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
        sh("apt-get", "-o", "Acquire::Retries=3", "download", pkg, cwd=debs)  # a dropped connection is retried
        deb = next(debs.glob(f"{pkg}_*.deb"), None)
        if deb is None:
            raise LabError(f"apt-get download {pkg} left no {pkg}_*.deb in {debs}")
        if tree.exists():
            shutil.rmtree(tree)
        tree.parent.mkdir(parents=True, exist_ok=True)
        sh("dpkg-deb", "-x", deb, tree)
        kver = kernel_release(tree, pkg)
        sh("depmod", "-b", tree, kver)
        version = sh("dpkg-deb", "-f", deb, "Version", capture=True).strip()
        (tree / ".version").write_text(version + "\n")
        deb.unlink()
        (tree / ".ok").write_text("")
    return Kernel(series, pkg, kernel_release(tree, pkg), tree)


def kernel_release(tree: Path, pkg: str) -> str:
    """The one release under the extracted package's lib/modules (a LabError, not a crash, when
    the package holds none)."""
    mods = tree / "lib" / "modules"
    found = sorted(d.name for d in mods.iterdir()) if mods.is_dir() else []
    if len(found) != 1:
        raise LabError(f"{pkg}: expected one kernel release in {mods}, found {found or 'none'}")
    return found[0]


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
        # The staging tree is in the archive now; on a CI machine's disk every MB counts.
        shutil.rmtree(self.path)
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
    # The old stamp goes first: a build that fails half way (a full disk) must not leave a
    # half-written image that a later run with the old inputs takes as current.
    stamp.unlink(missing_ok=True)
    t = time.monotonic()
    build(out)
    stamp.write_text(want)
    log(f"lab: built {out.relative_to(REPO)} ({out.stat().st_size // 1024} KiB, {time.monotonic() - t:.1f} s)")
    return out


def copy_modules(k: Kernel, root: Path) -> None:
    """The L1's modules (L1_MODULES and what they depend on) into root/lib/modules/KVER, with
    their modules.dep made by depmod."""
    mods = Path("lib/modules") / k.kver
    for rel in module_closure(k, L1_MODULES) + [mods / f for f in
                                                 ("modules.builtin", "modules.builtin.modinfo", "modules.order")]:
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(k.tree / rel, dest)
    sh("depmod", "-b", root, k.kver)


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
        copy_modules(k, t.path)
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
        l1_image(k, sc.setting("image", 1, "l1") == "l1")
        return None
    if kind == "extlinux":
        return {"qemu": ["-drive", f"file={extlinux_disk(k, sc, outdir)},format=raw,if=virtio"]}
    if kind == "debian":
        # One boot of the Debian root; QEMU keeps the writes in a throw-away overlay.
        return {"qemu": ["-drive", f"file={debian_image(k)},format=raw,if=virtio,snapshot=on"],
                "direct": {n: {"initrd": l1_image(k, with_l2=False), "append": "root=/dev/vda1"}
                           for n in range(1, sc.boots() + 1)}}
    if kind == "grub":
        # Boot 1 straight into the root (which installs GRUB), the next ones through GRUB.
        disk = outdir / "disk.img"
        sh("cp", "--sparse=always", debian_image(k), disk)
        return {"qemu": ["-drive", f"file={disk},format=raw,if=virtio"],
                "direct": {1: {"initrd": l1_image(k, with_l2=False), "append": "root=/dev/vda1"}}}
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


# ---------------------------------------------------------------------------------------------
# The Debian root (debootstrap, cached) and its disk image (mke2fs -d: no mount)


def debian_root() -> Path:
    """A Debian root made by debootstrap from Debian's registry, cached under target/lab/debian.
    debootstrap mounts /proc and /sys inside the root while it configures packages: it runs in a
    private mount namespace (unshare -m), so nothing is mounted on this machine."""
    root = LAB / "debian" / "root"
    stamp = LAB / "debian" / "packages"
    want = f"{DEBIAN_SUITE} {DEBIAN_MIRROR}\n" + "\n".join(DEBIAN_PACKAGES) + "\n"
    if stamp.exists() and stamp.read_text() == want and (root / "usr/bin/python3").exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    log(f"lab: debootstrap {DEBIAN_SUITE} into {root.relative_to(REPO)} (a few minutes, once)")
    t = time.monotonic()
    logf = LAB / "debian" / "debootstrap.log"
    # Twice at most: debootstrap has no retry of its own, and a download cut off by the network
    # must not fail three scenarios; a second failure is reported with its log.
    for attempt in (1, 2):
        if attempt == 2:
            log("lab: debootstrap failed; once more from an empty root")
            shutil.rmtree(root, ignore_errors=True)
        with open(logf, "wb") as f:
            r = subprocess.run(["unshare", "--mount", "--propagation", "private", "debootstrap",
                                "--variant=minbase", "--include=" + ",".join(DEBIAN_PACKAGES),
                                DEBIAN_SUITE, str(root), DEBIAN_MIRROR], stdout=f, stderr=subprocess.STDOUT)
        if r.returncode == 0:
            break
    if r.returncode != 0:
        raise LabError(f"debootstrap failed (exit {r.returncode}): {logf.read_text(errors='replace')[-1500:]}")
    # Package caches are not needed in the image.
    for d in [root / "var/cache/apt/archives", root / "var/lib/apt/lists"]:
        for f in d.glob("*"):
            if f.is_file():
                f.unlink()
    stamp.write_text(want)
    log(f"lab: debootstrap done ({time.monotonic() - t:.0f} s)")
    return root


def latest_wheel() -> Path | None:
    wheels = sorted((REPO / "target" / "wheels").glob("nestcore-*.whl"), key=lambda p: p.stat().st_mtime)
    return wheels[-1] if wheels else None


def replace_file(path: Path, text: str) -> None:
    """Writes a file of the staging tree without touching a hard-linked original."""
    if path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def debian_image(k: Kernel) -> Path:
    """A disk (MBR, one ext4 partition from 1 MiB on, room for GRUB's core image before it) with
    the Debian root plus the kernel and the light L1 image as /boot/vmlinuz-KVER and
    /boot/initrd.img-KVER, its modules, /etc/default/grub from GRUB's own template, the release
    nestcore in /usr/local/bin, the wheel in /root/wheels, an L2 kernel and image for libvirt in
    /var/lib/lab, and qemu.conf settings for a root-run libvirtd without cgroups or namespaces."""
    root = debian_root()
    lite = l1_image(k, with_l2=False)
    l2 = l2_image(k)
    wheel = latest_wheel()
    inputs = [LAB / "debian" / "packages", lite, l2, NESTCORE, k.vmlinuz] + ([wheel] if wheel else [])

    def build(out: Path) -> None:
        stage = LAB / "build" / f"debian-{k.kver}"
        if stage.exists():
            shutil.rmtree(stage)
        sh("cp", "-al", root, stage)
        boot = stage / "boot"
        shutil.copy(k.vmlinuz, boot / f"vmlinuz-{k.kver}")
        shutil.copy(lite, boot / f"initrd.img-{k.kver}")
        copy_modules(k, stage)
        grub = (root / "usr/share/grub/default/grub").read_text()
        grub = re.sub(r"(?m)^GRUB_TIMEOUT=.*$", "GRUB_TIMEOUT=0", grub)
        grub = re.sub(r'(?m)^GRUB_CMDLINE_LINUX=.*$', 'GRUB_CMDLINE_LINUX="console=ttyS0 panic=-1 kvm-amd.nested=0"',
                      grub)
        # GRUB on the serial console: what it does shows in the boot's console log.
        grub += '\nGRUB_TERMINAL="serial"\nGRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"\n'
        replace_file(stage / "etc/default/grub", grub)
        shutil.copy(NESTCORE, stage / "usr/local/bin/nestcore")
        if wheel:
            (stage / "root/wheels").mkdir(parents=True, exist_ok=True)
            shutil.copy(wheel, stage / "root/wheels" / wheel.name)
        (stage / "var/lib/lab").mkdir(parents=True, exist_ok=True)
        shutil.copy(k.vmlinuz, stage / "var/lib/lab/vmlinuz")
        shutil.copy(l2, stage / "var/lib/lab/l2.cpio")
        qconf = stage / "etc/libvirt/qemu.conf"
        replace_file(qconf, (qconf.read_text() if qconf.exists() else "")
                     + "\n# nestcore lab: libvirtd runs as root in a chroot\n"
                     'user = "root"\ngroup = "root"\nsecurity_driver = "none"\nnamespaces = []\n'
                     "cgroup_controllers = []\n")
        replace_file(stage / "etc/hostname", "lab-debian\n")
        # What libvirt-daemon-system's postinst adds: libvirt resolves its build-time QEMU user
        # before it reads qemu.conf ("Failed to parse user 'libvirt-qemu'" otherwise).
        for f, line in [("etc/group", "kvm:x:990:\nlibvirt-qemu:x:64055:\n"),
                        ("etc/passwd", "libvirt-qemu:x:64055:990:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n")]:
            text = (stage / f).read_text()
            if "libvirt-qemu" not in text:
                replace_file(stage / f, text + line)
        out.unlink(missing_ok=True)
        size = 3 * 1024  # MiB, sparse
        with open(out, "wb") as f:
            f.truncate(size * MiB)
        subprocess.run(["sfdisk", "-q", str(out)], input=b"label: dos\nstart=2048, type=83, bootable\n", check=True)
        sh("mke2fs", "-q", "-F", "-t", "ext4", "-L", "labroot", "-d", stage, "-E", f"offset={MiB}", out,
           f"{(size - 1) * 1024}k")
        shutil.rmtree(stage)
    return cached(LAB / "images" / f"debian-{k.kver}.img", inputs, build)
