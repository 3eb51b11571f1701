"""nestcore_guest_cpu: arguments, the snippets it returns and nova's settings as a dictionary."""

from __future__ import annotations

import pytest

nestcore = pytest.importorskip("nestcore")

from ansible_collections.nestcore.kvm.plugins.modules import nestcore_guest_cpu  # noqa: E402

from fakes import FakeNestcore, Obj  # noqa: E402

NOVA = "# nestcore\n[libvirt]\ncpu_mode = custom\ncpu_models = Cascadelake-Server\ncpu_model_extra_flags = vmx\n"


def _rec():
    return Obj(
        libvirt_xml="<cpu mode='custom'><model>Cascadelake-Server</model><feature policy='require' name='vmx'/></cpu>",
        qemu_cpu="Cascadelake-Server,+vmx",
        nova_ini=NOVA,
        rationale=["migratable across the fleet"],
        caveats=("a named model hides newer features",),
    )


def test_argument_spec():
    spec = nestcore_guest_cpu.ARGUMENT_SPEC
    assert set(spec) == {"root", "cpuid", "migratable", "model"}
    assert spec["migratable"]["default"] is False


def test_parse_ini():
    assert nestcore_guest_cpu.parse_ini(NOVA) == {
        "libvirt": {"cpu_mode": "custom", "cpu_models": "Cascadelake-Server", "cpu_model_extra_flags": "vmx"}
    }
    assert nestcore_guest_cpu.parse_ini("") == {}
    assert nestcore_guest_cpu.parse_ini("[a]\nx=1\n; c\n[b]\ny = 2 = 3\n") == {"a": {"x": "1"}, "b": {"y": "2 = 3"}}


def test_run_checks_the_host_then_recommends(fixtures):
    d = fixtures / "hosts" / "intel-nested-on"
    nc = FakeNestcore(recommendation=_rec())
    result = nestcore_guest_cpu.run(
        {"root": str(d / "root"), "cpuid": str(d / "cpuid.txt"), "migratable": True, "model": "Cascadelake-Server"}, nc
    )
    (call,) = nc.recommend_calls
    assert call["migratable"] is True and call["model"] == "Cascadelake-Server"
    assert call["report"] == nestcore.check(str(d / "root"), cpuid=str(d / "cpuid.txt"), probe=False)
    assert result["changed"] is False
    assert result["qemu_cpu"] == "Cascadelake-Server,+vmx"
    assert result["nova"]["libvirt"]["cpu_mode"] == "custom"
    assert result["rationale"] == ["migratable across the fleet"]
    assert result["caveats"] == ["a named model hides newer features"]
    assert str(d / "root") in result["host"]


def test_recommend_error_names_the_host(fixtures):
    d = fixtures / "hosts" / "no-extension"

    class Failing(FakeNestcore):
        def recommend(self, **kw):
            raise nestcore.NestcoreUnsupported("no VMX/SVM to pass to guests")

    with pytest.raises(Exception) as e:
        nestcore_guest_cpu.run({"root": str(d / "root"), "cpuid": None, "migratable": False, "model": None}, Failing())
    assert "no VMX/SVM" in e.value.msg and str(d / "root") in e.value.msg
    assert e.value.extra["kind"] == "unsupported"


def test_main_rejects_bad_types(run_main):
    status, result = run_main(nestcore_guest_cpu, {"migratable": "perhaps"})
    assert status == "fail" and "migratable" in result["msg"]


@pytest.mark.skipif(not hasattr(nestcore, "recommend"), reason="nestcore.recommend() not in this build yet")
def test_main_with_the_real_recommend(run_main, fixtures):
    d = fixtures / "hosts" / "intel-nested-on"
    status, result = run_main(nestcore_guest_cpu, {"root": str(d / "root"), "cpuid": str(d / "cpuid.txt")})
    assert status == "exit", result
    assert "<cpu" in result["libvirt_xml"]
    assert result["nova"], result["nova_ini"]


@pytest.mark.skipif(not hasattr(nestcore, "recommend"), reason="nestcore.recommend() not in this build yet")
def test_a_control_character_never_reaches_the_configuration(run_main, fixtures):
    """Issue 13: a newline in a model name is refused by nestcore (named), never written."""
    d = fixtures / "hosts" / "intel-nested-on"
    args = {"root": str(d / "root"), "cpuid": str(d / "cpuid.txt"), "migratable": True, "model": "Haswell\ninitrd /evil"}
    status, result = run_main(nestcore_guest_cpu, args)
    assert status == "exit", result
    for key in ("libvirt_xml", "qemu_cpu", "nova_ini"):
        assert "initrd /evil" not in result[key] and "Haswell" not in result[key], result[key]
    assert any("U+000A (line feed)" in c for c in result["caveats"]), result["caveats"]
