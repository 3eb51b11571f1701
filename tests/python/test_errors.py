"""nestcore errors become the Python exceptions of nestcore._errors, one kind at a time."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import nestcore
from nestcore import _errors


def test_missing_root_is_file_not_found(tmp_path):
    missing = tmp_path / "no-such-root"
    with pytest.raises(FileNotFoundError) as info:
        nestcore.check(missing)
    e = info.value
    assert type(e) is nestcore.NestcoreNotFoundError
    assert isinstance(e, nestcore.NestcoreError) and isinstance(e, OSError)
    assert e.errno == errno.ENOENT
    assert e.filename == str(missing)
    assert e.strerror == os.strerror(errno.ENOENT)
    assert str(e) == f"[Errno 2] {os.strerror(errno.ENOENT)}: {str(missing)!r}"
    assert e.message == f"Cannot access {missing}: {os.strerror(errno.ENOENT)} (os error 2)"
    assert e.kind == "not_found"


def test_missing_cpuid_dump_is_file_not_found(empty_root, tmp_path):
    missing = tmp_path / "cpuid.txt"
    with pytest.raises(nestcore.NestcoreNotFoundError) as info:
        nestcore.check(empty_root, cpuid=missing)
    assert info.value.filename == str(missing)


def test_root_that_is_a_file_is_an_os_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(OSError) as info:
        nestcore.check(f)
    e = info.value
    assert type(e) is nestcore.NestcoreIOError
    assert not isinstance(e, FileNotFoundError)
    assert e.filename == str(f)
    assert e.errno is None
    assert str(e) == e.message == f"Cannot access {f}: not a folder"


@pytest.mark.parametrize(
    "content",
    [
        "CPU 0:\n   0x00000001 0x00: eax=0x000306a9 ebx=0x00100800 ecx=0x7fba",  # truncated
        "CPU 0:\n   0x00000001 0x00: eax=0xZZZ ebx=0x0 ecx=0x0 edx=0x0\n",  # not hex
        "this is not a CPUID dump\n",
        "",
    ],
)
def test_bad_cpuid_dump_is_value_error(empty_root, tmp_path, content):
    dump = tmp_path / "cpuid.txt"
    dump.write_text(content)
    with pytest.raises(ValueError) as info:
        nestcore.check(empty_root, cpuid=dump)
    e = info.value
    assert type(e) is nestcore.NestcoreParseError
    assert e.kind == "parse"
    assert str(e) == e.message and e.message.startswith("Cannot parse")


def test_snapshot_into_a_folder_that_is_not_empty_is_invalid_input(tmp_path):
    (tmp_path / "something").write_text("x")
    with pytest.raises(ValueError) as info:
        nestcore.snapshot(tmp_path)
    assert type(info.value) is nestcore.NestcoreInvalidInput
    assert str(info.value) == f"Invalid input: {tmp_path} is not empty"
    assert list(tmp_path.iterdir()) == [tmp_path / "something"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads every file")
def test_unreadable_root_is_permission_error(tmp_path):
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    dump = tmp_path / "cpuid.txt"
    dump.write_text("CPU 0:\n")
    dump.chmod(0)
    try:
        with pytest.raises(PermissionError) as info:
            nestcore.check(root, cpuid=dump)
        assert type(info.value) is nestcore.NestcorePermissionError
        assert info.value.errno == errno.EACCES
        assert info.value.filename == str(dump)
    finally:
        dump.chmod(0o600)


# The mapping itself, kind by kind (the kinds that no test above can provoke on this machine
# included): nestcore's ErrorKind JSON name -> class and built-in base.
@pytest.mark.parametrize(
    "kind, cls, builtin",
    [
        ("not_found", nestcore.NestcoreNotFoundError, FileNotFoundError),
        ("permission_denied", nestcore.NestcorePermissionError, PermissionError),
        ("parse", nestcore.NestcoreParseError, ValueError),
        ("invalid_input", nestcore.NestcoreInvalidInput, ValueError),
        ("io", nestcore.NestcoreIOError, OSError),
        ("unsupported", nestcore.NestcoreUnsupported, NotImplementedError),
    ],
)
def test_mapping(kind, cls, builtin):
    assert cls.kind == kind
    assert _errors._BY_KIND[kind] is cls
    if issubclass(cls, OSError):
        e = _errors._from_native(kind, "Cannot access /x: denied", errno.EACCES, "denied", "/x")
        assert (e.errno, e.strerror, e.filename) == (errno.EACCES, "denied", "/x")
        assert str(e) == "[Errno 13] denied: '/x'"
    else:
        e = _errors._from_native(kind, "Something failed", None, None, None)
        assert str(e) == "Something failed"
    assert type(e) is cls
    assert isinstance(e, builtin) and isinstance(e, nestcore.NestcoreError)
    assert e.message.startswith(("Cannot access", "Something"))


def test_mapping_covers_every_class_once():
    classes = [getattr(nestcore, n) for n in nestcore.__all__ if n.startswith("Nestcore")]
    assert sorted(_errors._BY_KIND.values(), key=lambda c: c.__name__) == sorted(
        (c for c in classes if c is not nestcore.NestcoreError), key=lambda c: c.__name__
    )


def test_unknown_kind_falls_back_to_the_base_class():
    e = _errors._from_native("something_new", "New failure", None, None, None)
    assert type(e) is nestcore.NestcoreError and str(e) == "New failure"


def test_errors_are_catchable_as_nestcore_error(tmp_path):
    with pytest.raises(nestcore.NestcoreError):
        nestcore.check(Path(tmp_path) / "missing")
