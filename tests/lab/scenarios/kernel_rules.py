"""The kernel's own rules that the lab's host checks predict with (imported by NN-*.host.py,
which run with this folder on sys.path)."""

import re


def kstrtoint(s):
    """The kernel's kstrtoint(s, 0): sign, 0x hex, leading-0 octal, digits only, within int;
    None where the kernel refuses the value."""
    m = re.fullmatch(r"([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\n?", s)
    if not m:
        return None
    body = m.group(2)
    n = int(body, 16) if body[:2].lower() == "0x" else int(body, 8) if body.startswith("0") else int(body)
    n = -n if m.group(1) == "-" else n
    return n if -(2**31) <= n < 2**31 else None
