"""kargs_edit(), cmdline_edit() and parse_cmdline(): kernel arguments, text in and text out."""

from __future__ import annotations

import pytest

import nestcore

GRUB_CONF = (
    "default=0\ntimeout=5\n"
    "title A\n\troot (hd0,0)\n\tkernel /vmlinuz-1 ro root=/dev/sda1 kvm-intel.nested=0 quiet\n\tinitrd /initrd-1\n"
    "title B\n\troot (hd0,0)\n\tkernel /vmlinuz-2 ro root=/dev/sda1\n"
)


def test_kargs_edit_grub_legacy_replaces_in_place_and_appends():
    out = nestcore.kargs_edit(GRUB_CONF, "grub", args="kvm_intel.nested=1")
    assert out == GRUB_CONF.replace("kvm-intel.nested=0 quiet", "kvm_intel.nested=1 quiet").replace(
        "/vmlinuz-2 ro root=/dev/sda1\n", "/vmlinuz-2 ro root=/dev/sda1 kvm_intel.nested=1\n"
    )
    # Idempotent.
    assert nestcore.kargs_edit(out, "grub", args="kvm_intel.nested=1") == out


def test_kargs_edit_remove_and_select():
    out = nestcore.kargs_edit(GRUB_CONF, "grub", update_kernel="DEFAULT", remove_args="quiet")
    assert out == GRUB_CONF.replace(" quiet\n", "\n")
    out = nestcore.kargs_edit(GRUB_CONF, "grub", remove_args="kvm-intel.nested=1")
    assert out == GRUB_CONF  # k=v removes only that exact value
    out = nestcore.kargs_edit(GRUB_CONF, "grub", update_kernel="/vmlinuz-2", args='a="x y"')
    assert out.endswith('kernel /vmlinuz-2 ro root=/dev/sda1 a="x y"\n')
    assert "kernel /vmlinuz-1 ro root=/dev/sda1 kvm-intel.nested=0 quiet\n" in out


def test_kargs_edit_other_loaders():
    grub2 = 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="quiet"\n'
    assert nestcore.kargs_edit(grub2, "grub2", args="kvm-amd.nested=1") == (
        'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="quiet kvm-amd.nested=1"\n'
    )
    assert nestcore.kargs_edit("root=/dev/sda1 ro\n", "kernel-cmdline", remove_args="ro") == "root=/dev/sda1\n"


def test_kargs_edit_errors():
    with pytest.raises(nestcore.NestcoreInvalidInput):
        nestcore.kargs_edit(GRUB_CONF, "lilo", args="a=1")
    with pytest.raises(nestcore.NestcoreUnsupported):
        nestcore.kargs_edit('GRUB_CMDLINE_LINUX=""\n', "grub2", update_kernel="/vmlinuz-1", args="a=1")
    with pytest.raises(ValueError):
        nestcore.kargs_edit(GRUB_CONF, "grub", args="a=1 --")


def test_cmdline_edit_grubby_semantics():
    line = 'BOOT_IMAGE=/vmlinuz ro  quiet kvm-intel.nested=0 acpi="a b" -- single'
    assert nestcore.cmdline_edit(line, args="kvm_intel.nested=1") == (
        'BOOT_IMAGE=/vmlinuz ro  quiet kvm_intel.nested=1 acpi="a b" -- single'
    )
    assert nestcore.cmdline_edit(line, args="new=1") == 'BOOT_IMAGE=/vmlinuz ro  quiet kvm-intel.nested=0 acpi="a b" new=1 -- single'
    assert nestcore.cmdline_edit(line, remove_args="quiet acpi") == "BOOT_IMAGE=/vmlinuz ro kvm-intel.nested=0 -- single"
    assert nestcore.cmdline_edit(line) == line
    assert nestcore.cmdline_edit("", args="a=1") == "a=1"
    with pytest.raises(nestcore.NestcoreInvalidInput):
        nestcore.cmdline_edit(line, args='a="unbalanced')
    with pytest.raises(ValueError):
        nestcore.cmdline_edit('x="open', args="a=1")


def test_parse_cmdline_kernel_rules():
    parsed = nestcore.parse_cmdline('ro quiet kvm-intel.nested=1 a="x y" "b=c d" e= -- init=/bin/sh single')
    assert parsed == (
        ("ro", None),
        ("quiet", None),
        ("kvm-intel.nested", "1"),
        ("a", "x y"),
        ("b", "c d"),
        ("e", ""),
    )
    assert isinstance(parsed, tuple) and all(isinstance(p, tuple) for p in parsed)
    assert nestcore.parse_cmdline("") == ()
    assert nestcore.parse_cmdline("  \t\n") == ()
    assert nestcore.parse_cmdline("-- a b") == ()
    # Names as written: "-" and "_" are the same parameter to the kernel, the last one wins.
    p = dict(nestcore.parse_cmdline("kvm-intel.nested=0 kvm_intel.nested=1"))
    assert p == {"kvm-intel.nested": "0", "kvm_intel.nested": "1"}


@pytest.mark.parametrize(
    "loader,config",
    [
        ("grub", "default=0\ntitle L\n\troot (hd0,0)\n\tkernel /vmlinuz-1 ro\n\tinitrd /i\n"),
        ("grub2", 'GRUB_CMDLINE_LINUX="ro"\n'),
        ("bls", "title T\nlinux /vmlinuz\noptions ro\n"),
        ("extlinux", "label l\n  kernel /vmlinuz\n  append ro\n"),
        ("kernel-cmdline", "ro\n"),
    ],
)
@pytest.mark.parametrize(
    "arg,named",
    [
        ('"x\ninitrd /evil"', "U+000A (line feed)"),
        ("a=1\r", "U+000D (carriage return)"),
        ("a=\x00b", "U+0000 (NUL)"),
        ("a\x1b[2J", "U+001B (escape)"),
    ],
)
def test_control_characters_are_refused_in_every_loader(loader, config, arg, named):
    """Issue 13: a newline inside an argument became a new line of the boot configuration."""
    for kwargs in ({"args": arg}, {"remove_args": arg}):
        with pytest.raises(nestcore.NestcoreInvalidInput) as e:
            nestcore.kargs_edit(config, loader, **kwargs)
        assert named in str(e.value)
    with pytest.raises(ValueError) as e:
        nestcore.cmdline_edit("ro", args=arg)
    assert named in str(e.value)
