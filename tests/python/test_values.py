"""Value semantics of the result classes: equality, hashing, pickling, repr."""

from __future__ import annotations

import copy
import pickle

import pytest

import nestcore


@pytest.fixture
def report(amd_nested_on) -> nestcore.Report:
    return nestcore.check(amd_nested_on.root, amd_nested_on.cpuid)


def _all_objects(r):
    from test_check import _objects

    return list(_objects(r))


def test_equal_reports_compare_and_hash_equal(amd_nested_on):
    a = nestcore.check(amd_nested_on.root, amd_nested_on.cpuid)
    b = nestcore.check(amd_nested_on.root, amd_nested_on.cpuid)
    assert a == b and not (a != b)
    assert hash(a) == hash(b)
    assert a.cpu == b.cpu and hash(a.cpu) == hash(b.cpu)
    assert len({a, b}) == 1


def test_different_reports_differ(amd_nested_on, intel_nested_off):
    a = nestcore.check(amd_nested_on.root, amd_nested_on.cpuid)
    b = nestcore.check(intel_nested_off.root, intel_nested_off.cpuid)
    assert a != b
    assert a.cpu != b.cpu
    assert a.verdict.findings[0] != a.verdict.findings[1]


def test_comparison_with_other_types(report):
    assert report != report.to_dict()
    assert report.cpu != report.cpu.to_dict()
    assert report.cpu != report.host
    assert (report == object()) is False


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_report_pickles(report, protocol):
    back = pickle.loads(pickle.dumps(report, protocol=protocol))
    assert type(back) is nestcore.Report
    assert back == report and hash(back) == hash(report)
    assert back.to_json() == report.to_json()
    assert back.text() == report.text()
    assert back.text(color=True) == report.text(color=True)
    assert back.exit_code == report.exit_code
    assert repr(back) == repr(report)
    # A pickled copy pickles again.
    assert pickle.loads(pickle.dumps(back, protocol=protocol)) == report


def test_every_class_pickles_and_copies(report):
    objects = _all_objects(report)
    assert len({type(o).__name__ for o in objects}) >= 12
    for obj in objects:
        back = pickle.loads(pickle.dumps(obj))
        assert type(back) is type(obj)
        assert back == obj and hash(back) == hash(obj)
        assert back.to_dict() == obj.to_dict()
        assert copy.copy(obj) == obj and copy.deepcopy(obj) == obj


def test_pickles_name_the_public_classes(report):
    data = pickle.dumps(report.cpu)
    assert b"nestcore._nestcore" in data and b"_from_json" in data


def test_corrupt_pickle_data_is_rejected():
    from nestcore._nestcore import _from_json, _report_from_json

    with pytest.raises(ValueError, match="Cannot parse"):
        _from_json("Evidence", "{not json")
    with pytest.raises(ValueError, match=r"Evidence.detail: expected a string"):
        _from_json("Evidence", '{"source": "x", "detail": 3}')
    with pytest.raises(ValueError, match="Unknown nestcore class"):
        _from_json("Nope", "{}")
    with pytest.raises(ValueError, match=r"report.host: expected an object"):
        _report_from_json('{"schema_version": 1, "nestcore_version": "0", "host": 1}', "", "", 1)


def test_repr_is_python_style(report):
    ev = report.cpu.evidence[0]
    assert repr(ev) == f"Evidence(source={ev.source!r}, detail={ev.detail!r})"
    assert eval(repr(ev), {"Evidence": lambda **kw: kw}) == ev.to_dict()
    cpu = repr(report.cpu)
    assert cpu.startswith("CpuReport(vendor_id='AuthenticAMD', vendor='amd', family=25, model=33,")
    assert "svm_features=SvmFeatures(npt=True," in cpu
    assert "hypervisor_bit=False" in cpu and "vmx_features=None" in cpu
    m = [m for m in report.kvm.modules if m.name == "kvm_amd"][0]
    assert repr(m) == "ModuleReport(name='kvm_amd', state='loaded', refcnt=0, holders=[], parameters={'avic': False, 'nested': True, 'npt': True})"
    r = repr(report)
    assert r.startswith("Report(schema_version=1, nestcore_version=")
    assert "verdict=Verdict(kvm_usable=True, nested_for_guests='available', findings=[Finding(" in r
