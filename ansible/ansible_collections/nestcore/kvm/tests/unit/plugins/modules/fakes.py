"""A stand-in for the parts of ``nestcore`` the modules call that need no host: plan_nested()
and recommend() return canned objects with the documented attributes, check() is the real one
(recorded hosts) or a canned report. Tests record the calls."""

from __future__ import annotations

import nestcore


class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class FakePlan:
    def __init__(self, actions=(), blockers=(), warnings=(), notes=(), timeline=(), reboot_required=False,
                 apply_error=None, changed=True, on_apply=None):
        self.actions = [Obj(kind=k, description=d, path=p, diff=df) for (k, d, p, df) in actions]
        # blockers: (code, reason, remedy) triples, like nestcore.PlanBlocker.
        self.blockers = [Obj(code=c, reason=r, remedy=m) for (c, r, m) in blockers]
        self.warnings = list(warnings)
        self.notes = list(notes)
        self.timeline = list(timeline)
        self.reboot_required = reboot_required
        self.is_empty = not self.actions
        self.apply_error = apply_error
        self.changed = changed
        self.on_apply = on_apply
        self.applied = 0

    def text(self):
        return "PLAN: %d actions" % len(self.actions)

    def apply(self, defer_commands=None):
        self.applied += 1
        if self.apply_error is not None:
            raise self.apply_error
        if self.on_apply:
            self.on_apply()
        return Obj(written=[a.path for a in self.actions if a.path], removed=[], backups=[],
                   commands=[(("update-grub",), 0)], deferred=[("modprobe", "-r", "kvm_intel")], rolled_back=[],
                   verified=None, transaction="/var/lib/nestcore/backup/0001/manifest.json", changed=self.changed)


class FakeNestcore:
    """Module-like: the real exceptions and check(), canned plan_nested() and recommend()."""

    NestcoreError = nestcore.NestcoreError
    NestcoreUnsupported = nestcore.NestcoreUnsupported

    def __init__(self, plan=None, plan_error=None, recommendation=None):
        self.plan = plan if plan is not None else FakePlan()
        self.plan_error = plan_error
        self.recommendation = recommendation
        self.plan_calls = []
        self.recommend_calls = []

    def check(self, root=None, cpuid=None, probe=True):
        return nestcore.check(root, cpuid=cpuid, probe=probe)

    def plan_nested(self, root=None, want="on", persist=("modprobe",), neutralise_conflicts=False, *, force=False,
                    cpuid=None, dialect="python"):
        self.plan_calls.append(dict(root=root, want=want, persist=persist, neutralise_conflicts=neutralise_conflicts,
                                    force=force, cpuid=cpuid, dialect=dialect))
        if self.plan_error is not None:
            raise self.plan_error
        return self.plan

    def plan_undo(self, root=None):
        self.plan_calls.append(dict(root=root, want="undo"))
        if self.plan_error is not None:
            raise self.plan_error
        return self.plan

    def recommend(self, report=None, vendor=None, migratable=False, model=None):
        self.recommend_calls.append(dict(report=report, vendor=vendor, migratable=migratable, model=model))
        return self.recommendation
