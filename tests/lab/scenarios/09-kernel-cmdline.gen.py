"""The command lines of 09-kernel-cmdline, one per boot, generated from a fixed seed (the lab
runs this at load time; the same lines every run, so CI never varies). Prints them as a JSON
list. Every line is hostile but bootable: the kernel takes at most 32 init arguments and 32
environment entries, and every line stays far below that.

Each boot gets a shuffled sample of each kind below, plus a share of the special tokens (dealt
out in a seeded order), and a value for kvm_amd's `nested` in a random spelling (`kvm-amd`,
`kvm_amd`), written more than once where the seed says so (the last one wins)."""

import json
import random

SEED = 20261201
BOOTS = 4

# Bare names the kernel does not know: init's arguments (argv).
BARE = ["labflag", "lab-flag", "lab_flag", "labx", "\"lab word\"", "lab\"q\"uote"]
# Unknown names with a value: init's environment; the same name twice, the last wins in place.
ENV = ["labenv=1", "labenv=2", "lab-env=3", "lab_env=4", "labsp=\"a b  c\"", "\"labq=x y\"",
       "labeq=a=b", "labdq=a\"b c\"d", "labempty=", "labempty2=\"\"", "labdot=1.5"]
# Tokens the kernel treats specially or that test the tokenizer's corners.
SPECIAL = ["HOME=/lab", "TERM=vt100", "--=1", "=x", "==y", "lab.mod=1", "kvm_amd.nested",
           "quiet", "ro", "labtab=1\tlabtab2", "labvt=1\x0blabvt2"]
# kvm_amd's nested: values as written (None for a bare name).
NESTED = ["0", "1", "Y", "N", "on", "", None, "\"1\"", "0x1", "010"]
# After a bare `--`: init's arguments, and kmod still reads module parameters there.
AFTER = ["labafter", "lab_after=1", "\"after word\"", "after=\"x y\"", "=z"]


def nested(rng):
    name = rng.choice(["kvm-amd.nested", "kvm_amd.nested"])
    v = rng.choice(NESTED)
    return name if v is None else f"{name}={v}"


def lines():
    rng = random.Random(SEED)
    specials = SPECIAL[:]
    rng.shuffle(specials)
    out = []
    for b in range(BOOTS):
        toks = rng.sample(BARE, 2) + rng.sample(ENV, 4) + specials[b::BOOTS]
        toks += [nested(rng) for _ in range(rng.randint(1, 2))]
        rng.shuffle(toks)
        # One name twice in every boot: the environment keeps the last value, in the first's place.
        toks = [f"labrep={b}a"] + toks[:3] + [f"labrep={b}z"] + toks[3:]
        # Boot 1 without `--`, boot 2 with `"--"` quoted, then one `--`, then a second one.
        if b >= 1:
            toks.append("\"--\"" if b == 1 else "--")
            toks += rng.sample(AFTER, 2)
            if rng.random() < 0.7:
                toks.append(nested(rng))
        if b == 3:
            toks += ["--", "labgone", nested(rng)]
        out.append(" ".join(toks))
    return out


if __name__ == "__main__":
    print(json.dumps(lines()))
