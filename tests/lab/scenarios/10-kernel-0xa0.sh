# The kernel's isspace() counts byte 0xA0 as white space (lib/ctype.c's Latin-1 table: the
# no-break space), also inside a UTF-8 character. Booted with `labsplit=1àx` (à is C3 A0), the
# kernel gives init the variable `labsplit=1<C3>` and the argument `x`; `labkeep=1éx` (C3 A9)
# stays whole. So nestcore refuses to write an argument holding such a character
# (input::refuse_kernel_split): `kargs --args` names it and leaves the file as it was; `é` is
# written.
# kernels: 6.1 6.12
# image: lite
# append: labsplit=1àx labkeep=1éx
# timeout: 120

# What the kernel did, compared byte for byte (printf's octal escapes; nothing non-ASCII is
# reported back).
env_has() { tr '\0' '\n' < /proc/1/environ | grep -qxF "$1" && echo yes || echo no; }
result env.split_piece "$(env_has "$(printf 'labsplit=1\303')")"
result env.whole "$(env_has "$(printf 'labsplit=1\303\240x')")"
result env.keep "$(env_has "$(printf 'labkeep=1\303\251x')")"
# busybox sh runs /init: the kernel's arguments for init are what follows it.
result argv "$(tr '\0' '\n' < /proc/1/cmdline | sed '1,/^\/init$/d' | tr '\n' ' ' | sed 's/ $//')"

printf 'ro quiet\n' > /tmp/cmdline
run split nestcore kargs --config /tmp/cmdline --loader kernel-cmdline --update-kernel ALL \
    --args "$(printf 'labsplit=1\303\240x')" --in-place
result split.says "$(grep -o 'contains U+00E0 at byte 10, whose UTF-8 holds byte 0xA0' $OUT/split.err)"
result split.file "$(cat /tmp/cmdline)"
result split.backup "$(ls /tmp/cmdline.nestcore-bak 2> /dev/null || echo none)"
run keep nestcore kargs --config /tmp/cmdline --loader kernel-cmdline --update-kernel ALL \
    --args "$(printf 'labkeep=1\303\251x')" --in-place
result keep.written "$(grep -cxF "$(printf 'ro quiet labkeep=1\303\251x')" /tmp/cmdline)"
