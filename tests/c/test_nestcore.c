/*
 * Tests of libnestcore's C ABI through include/nestcore.h: every function, NULL arguments, buffers
 * that are too small, invalid UTF-8, out-of-range integers, a recorded fixture host, the last-error
 * text, several threads at once, a nested-virtualization plan applied to a copy of a recorded
 * host (twice), and the text editors (kernel arguments, guest CPUs). Built by scripts/test-c
 * (static, shared, valgrind, ASan).
 *
 * Usage: test_nestcore FIXTURE_DIR ENABLE_FIXTURE_DIR
 *   FIXTURE_DIR holds root/ and cpuid.txt (tests/c/fixtures/intel-nested-off);
 *   ENABLE_FIXTURE_DIR holds root/, expected/ and plan.txt (tests/fixtures/enable/debian-grub2),
 *   whose root/ is copied into a temporary folder before the plan is applied.
 * Set NESTCORE_TEST_SKIP_LIVE=1 to skip the checks of the live machine.
 */
#define _POSIX_C_SOURCE 200809L

#include "nestcore.h"

#include <limits.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_int passed;
static atomic_int failed;

static void check_at(int ok, const char *file, int line, const char *what) {
    if (ok) {
        atomic_fetch_add(&passed, 1);
    } else {
        atomic_fetch_add(&failed, 1);
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    }
}
#define CHECK(cond) check_at((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

/* The last error of this thread, in a static-size buffer (messages here are short). */
static const char *last_error(char *buf, size_t len) {
    size_t needed = 0;
    if (nestcore_last_error_message(buf, len, &needed) != NESTCORE_STATUS_OK) {
        snprintf(buf, len, "<last error needs %zu bytes>", needed);
    }
    return buf;
}

static void expect_status_at(nestcore_status got, nestcore_status want, const char *file, int line,
                             const char *expr) {
    if (got == want) {
        atomic_fetch_add(&passed, 1);
        return;
    }
    char msg[1024];
    atomic_fetch_add(&failed, 1);
    fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n", file, line, expr,
            nestcore_status_name(got), nestcore_status_name(want), last_error(msg, sizeof msg));
}
#define EXPECT(expr, want) expect_status_at((expr), (want), __FILE__, __LINE__, #expr)
#define EXPECT_OK(expr) EXPECT(expr, NESTCORE_STATUS_OK)

/* The last error contains `part`. */
static int last_error_contains(const char *part) {
    char msg[1024];
    return strstr(last_error(msg, sizeof msg), part) != NULL;
}

static char fixture_root[PATH_MAX];
static char fixture_cpuid[PATH_MAX];
static char tmpdir[PATH_MAX];

/* A non-NULL pointer that must be replaced by NULL when a function fails. */
#define SENTINEL ((void *)(uintptr_t)0x1)

static void test_versions(void) {
    CHECK(nestcore_abi_version() == NESTCORE_ABI_VERSION);
    const char *v = nestcore_version();
    CHECK(v != NULL);
    CHECK(v != NULL && strlen(v) >= 5 && strchr(v, '.') != NULL);
}

static void test_status_names(void) {
    CHECK(strcmp(nestcore_status_name(NESTCORE_STATUS_OK), "NESTCORE_STATUS_OK") == 0);
    CHECK(strcmp(nestcore_status_name(NESTCORE_STATUS_BUFFER_TOO_SMALL),
                 "NESTCORE_STATUS_BUFFER_TOO_SMALL") == 0);
    CHECK(strcmp(nestcore_status_name(NESTCORE_STATUS_PANIC), "NESTCORE_STATUS_PANIC") == 0);
    for (uint32_t s = 0; s <= NESTCORE_STATUS_OTHER; s++) {
        CHECK(strncmp(nestcore_status_name(s), "NESTCORE_STATUS_", 16) == 0);
        CHECK(strcmp(nestcore_status_name(s), "NESTCORE_STATUS_UNKNOWN") != 0);
    }
    CHECK(strcmp(nestcore_status_name(NESTCORE_STATUS_OTHER + 1), "NESTCORE_STATUS_UNKNOWN") == 0);
    CHECK(strcmp(nestcore_status_name(UINT32_MAX), "NESTCORE_STATUS_UNKNOWN") == 0);
}

static void test_last_error_buffer(void) {
    char buf[512];
    size_t needed = 0;
    nestcore_host *h = NULL;

    /* A success clears it: the message is "" and needs 1 byte. */
    EXPECT_OK(nestcore_host_new_live(&h));
    nestcore_host_free(h);
    EXPECT_OK(nestcore_last_error_message(buf, sizeof buf, &needed));
    CHECK(needed == 1 && buf[0] == '\0');

    /* A failure sets it. */
    EXPECT(nestcore_host_new_root("/nonexistent/nestcore-c-test", NULL, &h), NESTCORE_STATUS_NOT_FOUND);
    CHECK(h == NULL);

    /* out_needed is required. */
    EXPECT(nestcore_last_error_message(buf, sizeof buf, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    /* The size query. */
    needed = 0;
    EXPECT(nestcore_last_error_message(NULL, 0, &needed), NESTCORE_STATUS_BUFFER_TOO_SMALL);
    size_t want = strlen("Cannot access /nonexistent/nestcore-c-test") + 1;
    CHECK(needed > want);
    /* NULL with a length is a NULL argument, not a crash. */
    EXPECT(nestcore_last_error_message(NULL, 10, &needed), NESTCORE_STATUS_NULL_ARGUMENT);
    /* One byte short: nothing but an empty string is written, the size is reported. */
    char *small = malloc(needed - 1);
    CHECK(small != NULL);
    if (small != NULL) {
        memset(small, 'x', needed - 1);
        size_t again = 0;
        EXPECT(nestcore_last_error_message(small, needed - 1, &again), NESTCORE_STATUS_BUFFER_TOO_SMALL);
        CHECK(again == needed);
        CHECK(small[0] == '\0');
        CHECK(needed < 3 || small[1] == 'x'); /* nothing written past the first byte */
        free(small);
    }
    /* A zero-length non-NULL buffer is not written at all. */
    char untouched = 'u';
    EXPECT(nestcore_last_error_message(&untouched, 0, &needed), NESTCORE_STATUS_BUFFER_TOO_SMALL);
    CHECK(untouched == 'u');
    /* Exactly the size needed: the whole message; the failed calls above did not change it. */
    char *exact = malloc(needed);
    CHECK(exact != NULL);
    if (exact != NULL) {
        size_t again = 0;
        EXPECT_OK(nestcore_last_error_message(exact, needed, &again));
        CHECK(again == needed && strlen(exact) == needed - 1);
        CHECK(strstr(exact, "Cannot access /nonexistent/nestcore-c-test") == exact);
        CHECK(strstr(exact, "No such file or directory") != NULL);
        free(exact);
    }
}

static void test_host_new(void) {
    nestcore_host *h = SENTINEL;
    char path[PATH_MAX + 32];

    EXPECT(nestcore_host_new_live(NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(last_error_contains("`out`"));
    EXPECT_OK(nestcore_host_new_live(&h));
    CHECK(h != NULL && h != SENTINEL);
    int live = -1;
    EXPECT_OK(nestcore_host_is_live(h, &live));
    CHECK(live == 1);
    EXPECT(nestcore_host_is_live(NULL, &live), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_host_is_live(h, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    nestcore_host_free(h);

    h = SENTINEL;
    EXPECT(nestcore_host_new_root(NULL, NULL, &h), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(h == NULL);
    CHECK(last_error_contains("`root`"));
    EXPECT(nestcore_host_new_root(fixture_root, NULL, NULL), NESTCORE_STATUS_NULL_ARGUMENT);

    h = SENTINEL;
    EXPECT(nestcore_host_new_root("/tmp/\xff\xfe-not-utf8", NULL, &h), NESTCORE_STATUS_INVALID_UTF8);
    CHECK(h == NULL);
    CHECK(last_error_contains("not valid UTF-8"));
    EXPECT(nestcore_host_new_root(fixture_root, "cpuid-\xc3(.txt", &h), NESTCORE_STATUS_INVALID_UTF8);
    CHECK(last_error_contains("`cpuid_or_null`"));

    EXPECT(nestcore_host_new_root("", NULL, &h), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_host_new_root(fixture_root, "", &h), NESTCORE_STATUS_INVALID_ARGUMENT);

    EXPECT(nestcore_host_new_root("/nonexistent/nestcore-root", NULL, &h), NESTCORE_STATUS_NOT_FOUND);
    CHECK(last_error_contains("/nonexistent/nestcore-root"));
    EXPECT(nestcore_host_new_root(fixture_root, "/nonexistent/cpuid.txt", &h), NESTCORE_STATUS_NOT_FOUND);
    CHECK(h == NULL);

    /* A file is not a root. */
    EXPECT(nestcore_host_new_root(fixture_cpuid, NULL, &h), NESTCORE_STATUS_IO);
    CHECK(h == NULL);

    /* A CPUID dump that does not parse. */
    snprintf(path, sizeof path, "%s/garbage-cpuid.txt", tmpdir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("CPU 0:\n   0x00000000 0x00: eax=0xZZ ebx=0 ecx=0 edx=0\n", f);
        fclose(f);
    }
    EXPECT(nestcore_host_new_root(fixture_root, path, &h), NESTCORE_STATUS_PARSE);
    CHECK(h == NULL);
    CHECK(last_error_contains("Cannot parse"));

    /* Recorded roots, with and without a dump. */
    EXPECT_OK(nestcore_host_new_root(fixture_root, NULL, &h));
    CHECK(h != NULL);
    EXPECT_OK(nestcore_host_is_live(h, &live));
    CHECK(live == 0);
    nestcore_host_free(h);
    EXPECT_OK(nestcore_host_new_root(fixture_root, fixture_cpuid, &h));
    CHECK(h != NULL);
    nestcore_host_free(h);

    /* Freeing NULL does nothing. */
    nestcore_host_free(NULL);
    nestcore_report_free(NULL);
    nestcore_string_free(NULL);
}

static int contains(const char *s, const char *part) {
    return s != NULL && strstr(s, part) != NULL;
}

static void test_check_arguments(void) {
    nestcore_host *h = NULL;
    nestcore_report *r = SENTINEL;
    EXPECT_OK(nestcore_host_new_root(fixture_root, fixture_cpuid, &h));
    EXPECT(nestcore_check(NULL, 0, &r), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(r == NULL);
    CHECK(last_error_contains("`host`"));
    EXPECT(nestcore_check(h, 0, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    r = SENTINEL;
    EXPECT(nestcore_check(h, 2, &r), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(r == NULL);
    CHECK(last_error_contains("`probe` must be 0 or 1, not 2"));
    EXPECT(nestcore_check(h, -1, &r), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_check(h, INT_MAX, &r), NESTCORE_STATUS_INVALID_ARGUMENT);
    /* A recorded host is never probed: probe=1 is accepted and harmless. */
    EXPECT_OK(nestcore_check(h, 1, &r));
    CHECK(r != NULL);
    nestcore_report_free(r);
    nestcore_host_free(h);
}

/* Every accessor rejects a NULL report and a NULL out-parameter. */
static void test_accessor_nulls(const nestcore_report *r) {
    char *s = SENTINEL;
    int i = 0;
    size_t n = 0;
    uint32_t e = 0;

    EXPECT(nestcore_report_to_json(NULL, &s), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(s == NULL);
    EXPECT(nestcore_report_to_json(r, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    s = SENTINEL;
    EXPECT(nestcore_report_to_text(NULL, 0, &s), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(s == NULL);
    EXPECT(nestcore_report_to_text(r, 0, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_exit_code(NULL, &i), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_exit_code(r, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_kvm_usable(NULL, &e), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_kvm_usable(r, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_nested_for_guests(NULL, &e), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_nested_for_guests(r, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_cpu_extension(NULL, &e), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_cpu_extension(r, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_kvm_nested(NULL, &e), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_kvm_nested(r, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_kvm_nested_effective(NULL, &e), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_kvm_nested_effective(r, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_kvm_device_state(NULL, &e), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_kvm_device_state(r, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_findings_count(NULL, &n), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_findings_count(r, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_findings_count_at_least(NULL, NESTCORE_LEVEL_WARN, &n),
           NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_findings_count_at_least(r, NESTCORE_LEVEL_WARN, NULL),
           NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_finding_level(NULL, 0, &e), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_report_finding_level(r, 0, NULL), NESTCORE_STATUS_NULL_ARGUMENT);

    typedef nestcore_status (*string_fn)(const nestcore_report *, char **);
    string_fn string_fns[] = {nestcore_report_cpu_vendor_id, nestcore_report_hypervisor,
                              nestcore_report_container};
    for (size_t k = 0; k < sizeof string_fns / sizeof string_fns[0]; k++) {
        s = SENTINEL;
        EXPECT(string_fns[k](NULL, &s), NESTCORE_STATUS_NULL_ARGUMENT);
        CHECK(s == NULL);
        EXPECT(string_fns[k](r, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    }
    typedef nestcore_status (*finding_fn)(const nestcore_report *, size_t, char **);
    finding_fn finding_fns[] = {nestcore_report_finding_code, nestcore_report_finding_check,
                                nestcore_report_finding_message, nestcore_report_finding_remedy,
                                nestcore_report_finding_layer};
    for (size_t k = 0; k < sizeof finding_fns / sizeof finding_fns[0]; k++) {
        s = SENTINEL;
        EXPECT(finding_fns[k](NULL, 0, &s), NESTCORE_STATUS_NULL_ARGUMENT);
        CHECK(s == NULL);
        EXPECT(finding_fns[k](r, 0, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
        /* Out of range: an error with the count in the message, *out NULL. */
        s = SENTINEL;
        EXPECT(finding_fns[k](r, 1000, &s), NESTCORE_STATUS_INVALID_ARGUMENT);
        CHECK(s == NULL);
        CHECK(last_error_contains("out of range"));
        EXPECT(finding_fns[k](r, SIZE_MAX, &s), NESTCORE_STATUS_INVALID_ARGUMENT);
    }
    e = 99;
    EXPECT(nestcore_report_finding_level(r, 1000, &e), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(e == 99); /* scalar out-parameters are left alone on failure */
}

/* The fixture: Intel, VT-x on, kvm_intel loaded with nested=N, /dev/kvm recorded as present. */
static void test_fixture_report(void) {
    nestcore_host *h = NULL;
    nestcore_report *r = NULL;
    EXPECT_OK(nestcore_host_new_root(fixture_root, fixture_cpuid, &h));
    EXPECT_OK(nestcore_check(h, 0, &r));
    /* The report does not borrow the host. */
    nestcore_host_free(h);
    if (r == NULL) {
        return;
    }

    nestcore_extension ext = 99;
    EXPECT_OK(nestcore_report_cpu_extension(r, &ext));
    CHECK(ext == NESTCORE_EXTENSION_VMX);
    nestcore_answer usable = 99;
    EXPECT_OK(nestcore_report_kvm_usable(r, &usable));
    CHECK(usable == NESTCORE_ANSWER_YES);
    nestcore_nested nested = 99;
    EXPECT_OK(nestcore_report_nested_for_guests(r, &nested));
    CHECK(nested == NESTCORE_NESTED_DISABLED);
    nestcore_setting param = 99;
    EXPECT_OK(nestcore_report_kvm_nested(r, &param));
    CHECK(param == NESTCORE_SETTING_DISABLED);
    nestcore_answer effective = 99;
    EXPECT_OK(nestcore_report_kvm_nested_effective(r, &effective));
    /* Never opened (a recorded root), yet known: with nested=N KVM cannot offer VMX (issue 15). */
    CHECK(effective == NESTCORE_ANSWER_NO);
    nestcore_device_state dev = 99;
    EXPECT_OK(nestcore_report_kvm_device_state(r, &dev));
    CHECK(dev == NESTCORE_DEVICE_STATE_PRESENT);
    int code = -1;
    EXPECT_OK(nestcore_report_exit_code(r, &code));
    CHECK(code == 1);

    char *s = NULL;
    EXPECT_OK(nestcore_report_cpu_vendor_id(r, &s));
    CHECK(s != NULL && strcmp(s, "GenuineIntel") == 0);
    nestcore_string_free(s);
    EXPECT_OK(nestcore_report_hypervisor(r, &s));
    CHECK(s != NULL && strcmp(s, "none") == 0);
    nestcore_string_free(s);
    EXPECT_OK(nestcore_report_container(r, &s));
    CHECK(s != NULL && strcmp(s, "none") == 0);
    nestcore_string_free(s);

    /* JSON and text. */
    EXPECT_OK(nestcore_report_to_json(r, &s));
    CHECK(contains(s, "\"schema_version\": 1"));
    CHECK(contains(s, "\"nested_for_guests\": \"disabled\""));
    CHECK(contains(s, "\"code\": \"kvm.nested_off\""));
    nestcore_string_free(s);
    EXPECT_OK(nestcore_report_to_text(r, 0, &s));
    CHECK(contains(s, "Verdict: KVM usable: yes; nested virtualization for guests: disabled"));
    CHECK(contains(s, "FAIL") && !contains(s, "\x1b["));
    nestcore_string_free(s);
    EXPECT_OK(nestcore_report_to_text(r, 1, &s));
    CHECK(contains(s, "\x1b[31mFAIL\x1b[0m"));
    nestcore_string_free(s);
    s = SENTINEL;
    EXPECT(nestcore_report_to_text(r, 2, &s), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK(last_error_contains("`color`"));

    /* Findings. */
    size_t n = 0, warn = 0, all = 0;
    EXPECT_OK(nestcore_report_findings_count(r, &n));
    CHECK(n >= 3);
    EXPECT_OK(nestcore_report_findings_count_at_least(r, NESTCORE_LEVEL_PASS, &all));
    CHECK(all == n);
    EXPECT_OK(nestcore_report_findings_count_at_least(r, NESTCORE_LEVEL_WARN, &warn));
    CHECK(warn >= 1 && warn < n);
    size_t unchanged = 77;
    EXPECT(nestcore_report_findings_count_at_least(r, NESTCORE_LEVEL_FAIL + 1, &unchanged),
           NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(unchanged == 77);
    CHECK(last_error_contains("`min_level`"));
    EXPECT(nestcore_report_findings_count_at_least(r, UINT32_MAX, &unchanged),
           NESTCORE_STATUS_INVALID_ARGUMENT);

    int saw_nested_off = 0, saw_extension = 0;
    size_t counted_warn = 0;
    for (size_t i = 0; i < n; i++) {
        char *fcode = NULL, *check = NULL, *message = NULL, *remedy = SENTINEL;
        nestcore_level level = 99;
        EXPECT_OK(nestcore_report_finding_code(r, i, &fcode));
        EXPECT_OK(nestcore_report_finding_check(r, i, &check));
        EXPECT_OK(nestcore_report_finding_message(r, i, &message));
        EXPECT_OK(nestcore_report_finding_remedy(r, i, &remedy));
        EXPECT_OK(nestcore_report_finding_level(r, i, &level));
        char *layer = SENTINEL;
        EXPECT_OK(nestcore_report_finding_layer(r, i, &layer));
        CHECK(layer == NULL); /* bare metal: every fix is on this host */
        CHECK(fcode != NULL && strchr(fcode, '.') != NULL);
        CHECK(check != NULL && strncmp(check, "Checking", 8) == 0);
        CHECK(message != NULL && message[0] != '\0');
        CHECK(remedy != SENTINEL);
        CHECK(level <= NESTCORE_LEVEL_FAIL);
        if (level >= NESTCORE_LEVEL_WARN) {
            counted_warn++;
            CHECK(remedy != NULL); /* every problem says what to do */
        }
        if (level == NESTCORE_LEVEL_PASS) {
            CHECK(remedy == NULL);
        }
        if (fcode != NULL && strcmp(fcode, "kvm.nested_off") == 0) {
            saw_nested_off = 1;
            CHECK(level == NESTCORE_LEVEL_FAIL);
            CHECK(contains(message, "/sys/module/kvm_intel/parameters/nested = N"));
            CHECK(contains(remedy, "kvm_intel nested=1"));
        }
        if (fcode != NULL && strcmp(fcode, "cpu.extension_present") == 0) {
            saw_extension = 1;
            CHECK(level == NESTCORE_LEVEL_PASS);
        }
        nestcore_string_free(fcode);
        nestcore_string_free(check);
        nestcore_string_free(message);
        nestcore_string_free(remedy);
    }
    CHECK(saw_nested_off && saw_extension);
    CHECK(counted_warn == warn);

    test_accessor_nulls(r);
    nestcore_report_free(r);
}

static int write_file(const char *path, const char *text);

/* A VMware guest without VT-x: the finding names the layer below and its switch. */
static void test_layer_below(void) {
    char root[PATH_MAX + 64], path[PATH_MAX + 128];
    snprintf(root, sizeof root, "%s/vmware-root", tmpdir);
    const char *dirs[] = {"", "/proc", "/sys", "/sys/class", "/sys/class/dmi", "/sys/class/dmi/id"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s%s", root, dirs[i]);
        CHECK(mkdir(path, 0755) == 0);
    }
    snprintf(path, sizeof path, "%s/proc/cpuinfo", root);
    CHECK(write_file(path, "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
                           "flags\t\t: fpu lm hypervisor\n\n") == 0);
    snprintf(path, sizeof path, "%s/sys/class/dmi/id/sys_vendor", root);
    CHECK(write_file(path, "VMware, Inc.\n") == 0);
    nestcore_host *h = NULL;
    nestcore_report *r = NULL;
    EXPECT_OK(nestcore_host_new_root(root, NULL, &h));
    EXPECT_OK(nestcore_check(h, 0, &r));
    size_t n = 0;
    EXPECT_OK(nestcore_report_findings_count(r, &n));
    int saw = 0;
    for (size_t i = 0; i < n; i++) {
        char *fcode = NULL, *layer = NULL, *remedy = NULL;
        EXPECT_OK(nestcore_report_finding_code(r, i, &fcode));
        EXPECT_OK(nestcore_report_finding_layer(r, i, &layer));
        EXPECT_OK(nestcore_report_finding_remedy(r, i, &remedy));
        if (fcode != NULL && strcmp(fcode, "cpu.extension_hidden_by_hypervisor") == 0) {
            saw = 1;
            CHECK(layer != NULL && strcmp(layer, "vmware") == 0);
            CHECK(contains(remedy, "vhv.enable"));
        }
        nestcore_string_free(fcode);
        nestcore_string_free(layer);
        nestcore_string_free(remedy);
    }
    CHECK(saw);
    nestcore_report_free(r);
    nestcore_host_free(h);
    for (size_t i = sizeof dirs / sizeof dirs[0]; i-- > 0;) {
        if (i == 5) {
            snprintf(path, sizeof path, "%s/sys/class/dmi/id/sys_vendor", root);
            remove(path);
        }
        if (i == 1) {
            snprintf(path, sizeof path, "%s/proc/cpuinfo", root);
            remove(path);
        }
        snprintf(path, sizeof path, "%s%s", root, dirs[i]);
        rmdir(path);
    }
}

/* A recorded root with nothing in it: every answer unknown, and still no error. */
static void test_empty_root(void) {
    nestcore_host *h = NULL;
    nestcore_report *r = NULL;
    EXPECT_OK(nestcore_host_new_root(tmpdir, NULL, &h));
    EXPECT_OK(nestcore_check(h, 0, &r));
    nestcore_extension ext = 99;
    EXPECT_OK(nestcore_report_cpu_extension(r, &ext));
    CHECK(ext == NESTCORE_EXTENSION_UNKNOWN);
    char *vendor = SENTINEL;
    EXPECT_OK(nestcore_report_cpu_vendor_id(r, &vendor));
    CHECK(vendor == NULL); /* unknown is NULL, and a success */
    nestcore_answer usable = 99;
    EXPECT_OK(nestcore_report_kvm_usable(r, &usable));
    CHECK(usable != NESTCORE_ANSWER_YES);
    int code = -1;
    EXPECT_OK(nestcore_report_exit_code(r, &code));
    CHECK(code == 1);
    nestcore_report_free(r);
    nestcore_host_free(h);
}

/* The live machine: only invariants (this test runs on many machines). */
static void test_live(int probe) {
    nestcore_host *h = NULL;
    nestcore_report *r = NULL;
    EXPECT_OK(nestcore_host_new_live(&h));
    EXPECT_OK(nestcore_check(h, probe, &r));
    nestcore_host_free(h);
    if (r == NULL) {
        return;
    }
    nestcore_extension ext = 99;
    EXPECT_OK(nestcore_report_cpu_extension(r, &ext));
    CHECK(ext <= NESTCORE_EXTENSION_NONE);
    nestcore_answer usable = 99;
    EXPECT_OK(nestcore_report_kvm_usable(r, &usable));
    CHECK(usable <= NESTCORE_ANSWER_YES);
    nestcore_nested nested = 99;
    EXPECT_OK(nestcore_report_nested_for_guests(r, &nested));
    CHECK(nested <= NESTCORE_NESTED_UNSUPPORTED);
    nestcore_device_state dev = 99;
    EXPECT_OK(nestcore_report_kvm_device_state(r, &dev));
    CHECK(dev <= NESTCORE_DEVICE_STATE_ERROR && dev != NESTCORE_DEVICE_STATE_PRESENT);
    int code = -1;
    EXPECT_OK(nestcore_report_exit_code(r, &code));
    CHECK(code == 0 || code == 1);
    CHECK((code == 0) == (usable == NESTCORE_ANSWER_YES && nested == NESTCORE_NESTED_AVAILABLE));
    char *json = NULL;
    EXPECT_OK(nestcore_report_to_json(r, &json));
    CHECK(contains(json, "\"live\": true"));
    nestcore_string_free(json);
    char *hv = NULL;
    EXPECT_OK(nestcore_report_hypervisor(r, &hv));
    CHECK(hv != NULL && hv[0] != '\0');
    nestcore_string_free(hv);
    nestcore_report_free(r);
}

/* Threads: one shared host and one shared report used at once, plus each thread's own handles and
 * its own last error. */
struct shared {
    const nestcore_host *host;
    const nestcore_report *report;
    const char *json;
    int index;
};

#define THREADS 8
#define ROUNDS 5

static void *thread_main(void *arg) {
    const struct shared *sh = arg;
    char path[128];
    for (int round = 0; round < ROUNDS; round++) {
        nestcore_report *r = NULL;
        EXPECT_OK(nestcore_check(sh->host, 0, &r));
        char *json = NULL;
        EXPECT_OK(nestcore_report_to_json(r, &json));
        CHECK(json != NULL && strcmp(json, sh->json) == 0);
        nestcore_string_free(json);
        nestcore_report_free(r);

        size_t n = 0;
        EXPECT_OK(nestcore_report_findings_count(sh->report, &n));
        for (size_t i = 0; i < n; i++) {
            char *msg = NULL;
            EXPECT_OK(nestcore_report_finding_message(sh->report, i, &msg));
            nestcore_string_free(msg);
        }
        char *text = NULL;
        EXPECT_OK(nestcore_report_to_text(sh->report, round % 2, &text));
        nestcore_string_free(text);

        /* This thread's own failure, and only its own, in its last error. */
        snprintf(path, sizeof path, "/nonexistent/nestcore-thread-%d-round-%d", sh->index, round);
        nestcore_host *h = SENTINEL;
        EXPECT(nestcore_host_new_root(path, NULL, &h), NESTCORE_STATUS_NOT_FOUND);
        CHECK(h == NULL);
        sched_yield();
        CHECK(last_error_contains(path));
        /* A success on this thread clears this thread's message. */
        nestcore_extension ext;
        EXPECT_OK(nestcore_report_cpu_extension(sh->report, &ext));
        CHECK(!last_error_contains("nestcore-thread-"));
    }
    return NULL;
}

static void test_threads(void) {
    nestcore_host *h = NULL;
    nestcore_report *r = NULL;
    char *json = NULL;
    EXPECT_OK(nestcore_host_new_root(fixture_root, fixture_cpuid, &h));
    EXPECT_OK(nestcore_check(h, 0, &r));
    EXPECT_OK(nestcore_report_to_json(r, &json));
    if (json == NULL) {
        return;
    }
    pthread_t threads[THREADS];
    struct shared args[THREADS];
    int started = 0;
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct shared){.host = h, .report = r, .json = json, .index = i};
        if (pthread_create(&threads[i], NULL, thread_main, &args[i]) == 0) {
            started++;
        } else {
            CHECK(!"pthread_create");
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
    }
    CHECK(started == THREADS);
    nestcore_string_free(json);
    nestcore_report_free(r);
    nestcore_host_free(h);
}

/* ---- Files and folders for the plan tests (the test harness may copy; the library never does) */

/* The whole content of `path`, malloc'd and NUL-terminated, or NULL when it cannot be read. */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            break;
        }
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL) {
        buf[len] = '\0';
    }
    return buf;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Copies the tree at `from` to `to` (which must not exist): folders, regular files with their
 * mode, symlinks as symlinks. 0 on success. */
static int copy_tree(const char *from, const char *to) {
    struct stat st;
    if (lstat(from, &st) != 0) {
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(from, target, sizeof target - 1);
        if (n < 0) {
            return -1;
        }
        target[n] = '\0';
        return symlink(target, to);
    }
    if (S_ISREG(st.st_mode)) {
        FILE *in = fopen(from, "rb");
        FILE *out = in != NULL ? fopen(to, "wb") : NULL;
        int rc = in != NULL && out != NULL ? 0 : -1;
        char buf[4096];
        size_t n;
        while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0) {
            if (fwrite(buf, 1, n, out) != n) {
                rc = -1;
            }
        }
        if (in != NULL && ferror(in)) {
            rc = -1;
        }
        if (out != NULL && fclose(out) != 0) {
            rc = -1;
        }
        if (in != NULL) {
            fclose(in);
        }
        return rc == 0 ? chmod(to, st.st_mode & 07777) : rc;
    }
    if (!S_ISDIR(st.st_mode) || mkdir(to, 0755) != 0) {
        return -1;
    }
    DIR *d = opendir(from);
    if (d == NULL) {
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char a[PATH_MAX], b[PATH_MAX];
        if (snprintf(a, sizeof a, "%s/%s", from, e->d_name) >= (int)sizeof a ||
            snprintf(b, sizeof b, "%s/%s", to, e->d_name) >= (int)sizeof b) {
            rc = -1;
            break;
        }
        rc = copy_tree(a, b);
    }
    closedir(d);
    return rc == 0 ? chmod(to, st.st_mode & 07777) : rc;
}

/* Removes the tree at `path` (symlinks are removed, not followed). 0 on success. */
static int remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        return unlink(path);
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p || remove_tree(p) != 0) {
            rc = -1;
        }
    }
    closedir(d);
    return rc == 0 ? rmdir(path) : rc;
}

/* The number of regular files under `dir` whose content differs in `other` (or is missing
 * there), reporting each; `*count` receives the number of files compared. */
static int tree_differences(const char *dir, const char *other, int *count) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "cannot open %s\n", dir);
        return 1;
    }
    int diffs = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char a[PATH_MAX], b[PATH_MAX];
        struct stat st;
        if (snprintf(a, sizeof a, "%s/%s", dir, e->d_name) >= (int)sizeof a ||
            snprintf(b, sizeof b, "%s/%s", other, e->d_name) >= (int)sizeof b || lstat(a, &st) != 0) {
            diffs++;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            diffs += tree_differences(a, b, count);
        } else if (S_ISREG(st.st_mode)) {
            char *x = read_file(a), *y = read_file(b);
            (*count)++;
            if (x == NULL || y == NULL || strcmp(x, y) != 0) {
                fprintf(stderr, "%s differs from %s\n", b, a);
                diffs++;
            }
            free(x);
            free(y);
        }
    }
    closedir(d);
    return diffs;
}

/* ---- Plans */

/* Every plan accessor rejects a NULL plan and a NULL out-parameter, and indexes out of range. */
static void test_plan_accessor_nulls(const nestcore_plan *p) {
    char *s = SENTINEL;
    int i = 7;
    size_t n = 7;

    EXPECT(nestcore_plan_is_empty(NULL, &i), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_plan_is_empty(p, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(i == 7);
    EXPECT(nestcore_plan_actions_count(NULL, &n), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_plan_actions_count(p, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_plan_blockers_count(NULL, &n), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_plan_blockers_count(p, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_plan_warnings_count(NULL, &n), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_plan_warnings_count(p, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_plan_notes_count(NULL, &n), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_plan_notes_count(p, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(n == 7);

    typedef nestcore_status (*string_fn)(const nestcore_plan *, char **);
    string_fn string_fns[] = {nestcore_plan_summary, nestcore_plan_render, nestcore_plan_to_json};
    for (size_t k = 0; k < sizeof string_fns / sizeof string_fns[0]; k++) {
        s = SENTINEL;
        EXPECT(string_fns[k](NULL, &s), NESTCORE_STATUS_NULL_ARGUMENT);
        CHECK(s == NULL);
        CHECK(last_error_contains("`plan`"));
        EXPECT(string_fns[k](p, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    }
    typedef nestcore_status (*index_fn)(const nestcore_plan *, size_t, char **);
    index_fn index_fns[] = {nestcore_plan_action_description, nestcore_plan_blocker, nestcore_plan_warning,
                            nestcore_plan_note, nestcore_plan_blocker_code, nestcore_plan_blocker_remedy};
    for (size_t k = 0; k < sizeof index_fns / sizeof index_fns[0]; k++) {
        s = SENTINEL;
        EXPECT(index_fns[k](NULL, 0, &s), NESTCORE_STATUS_NULL_ARGUMENT);
        CHECK(s == NULL);
        EXPECT(index_fns[k](p, 0, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
        s = SENTINEL;
        EXPECT(index_fns[k](p, 1000, &s), NESTCORE_STATUS_INVALID_ARGUMENT);
        CHECK(s == NULL);
        CHECK(last_error_contains("out of range"));
        EXPECT(index_fns[k](p, SIZE_MAX, &s), NESTCORE_STATUS_INVALID_ARGUMENT);
    }
}

static void test_plan_arguments(void) {
    char empty[PATH_MAX + 32], blocked[PATH_MAX + 32], path[PATH_MAX + 64];
    nestcore_host *h = NULL;
    nestcore_plan *p = SENTINEL;
    const uint32_t mc = NESTCORE_PERSIST_MODPROBE | NESTCORE_PERSIST_CMDLINE;

    /* A root whose CPU vendor cannot be told. */
    snprintf(empty, sizeof empty, "%s/empty-root", tmpdir);
    CHECK(mkdir(empty, 0755) == 0);
    EXPECT_OK(nestcore_host_new_root(empty, NULL, &h));

    EXPECT(nestcore_plan_nested(NULL, 1, mc, 0, &p), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(p == NULL);
    CHECK(last_error_contains("`host`"));
    EXPECT(nestcore_plan_nested(h, 1, mc, 0, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    p = SENTINEL;
    EXPECT(nestcore_plan_nested(h, 2, mc, 0, &p), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(p == NULL);
    CHECK(last_error_contains("`want_on` must be 0 or 1, not 2"));
    EXPECT(nestcore_plan_nested(h, -1, mc, 0, &p), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_plan_nested(h, 1, mc, 2, &p), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("`neutralise_conflicts`"));
    EXPECT(nestcore_plan_nested(h, 1, 0, 0, &p), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("`persist_flags` is 0"));
    EXPECT(nestcore_plan_nested(h, 1, 8, 0, &p), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("unknown bits 0x8"));
    EXPECT(nestcore_plan_nested(h, 1, UINT32_MAX, 0, &p), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(p == NULL);
    /* nestcore_plan_nested_with's flags. */
    p = SENTINEL;
    EXPECT(nestcore_plan_nested_with(NULL, 1, mc, 0, &p), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(p == NULL);
    EXPECT(nestcore_plan_nested_with(h, 1, mc, 0, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_plan_nested_with(h, 3, mc, 0, &p), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_plan_nested_with(h, 1, 0, 0, &p), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_plan_nested_with(h, 1, mc, 4, &p), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("`plan_flags` has unknown bits 0x4"));
    CHECK(p == NULL);
    /* Valid arguments, but no vendor module to plan for: a plan with that blocker. */
    p = NULL;
    EXPECT_OK(nestcore_plan_nested(h, 1, mc, 0, &p));
    if (p != NULL) {
        size_t n = 0;
        EXPECT_OK(nestcore_plan_blockers_count(p, &n));
        CHECK(n == 1);
        char *code = NULL;
        EXPECT_OK(nestcore_plan_blocker_code(p, 0, &code));
        CHECK(code != NULL && strcmp(code, "plan.no_vendor_module") == 0);
        nestcore_string_free(code);
    }
    nestcore_plan_free(p);
    p = NULL;
    /* No apply recorded: the undo plan is empty. */
    EXPECT(nestcore_plan_undo(NULL, &p), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_plan_undo(h, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT_OK(nestcore_plan_undo(h, &p));
    if (p != NULL) {
        int is_empty = -1;
        EXPECT_OK(nestcore_plan_is_empty(p, &is_empty));
        CHECK(is_empty == 1);
        char *s = NULL;
        EXPECT_OK(nestcore_plan_summary(p, &s));
        CHECK(contains(s, "Nothing to undo"));
        nestcore_string_free(s);
    }
    nestcore_plan_free(p);
    nestcore_host_free(h);
    h = NULL;

    /* Issue 13: an Intel CPU without VMX. The check says nesting cannot work: blocked with the
     * check's reason and remedy; NESTCORE_PLAN_FORCE plans it anyway, the blocker a warning. */
    char novmx[PATH_MAX + 32];
    snprintf(novmx, sizeof novmx, "%s/no-vmx-root", tmpdir);
    snprintf(path, sizeof path, "%s/proc", novmx);
    CHECK(mkdir(novmx, 0755) == 0 && mkdir(path, 0755) == 0);
    snprintf(path, sizeof path, "%s/proc/cpuinfo", novmx);
    CHECK(write_file(path, "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2\n") == 0);
    EXPECT_OK(nestcore_host_new_root(novmx, NULL, &h));
    p = NULL;
    EXPECT_OK(nestcore_plan_nested_with(h, 1, NESTCORE_PERSIST_MODPROBE, 0, &p));
    if (p != NULL) {
        size_t n = 0;
        EXPECT_OK(nestcore_plan_blockers_count(p, &n));
        CHECK(n == 1);
        char *code = NULL, *remedy = NULL, *whole = NULL;
        EXPECT_OK(nestcore_plan_blocker_code(p, 0, &code));
        CHECK(code != NULL && strcmp(code, "cpu.extension_missing") == 0);
        EXPECT_OK(nestcore_plan_blocker_remedy(p, 0, &remedy));
        CHECK(contains(remedy, "Use a CPU with VT-x or AMD-V"));
        CHECK(contains(remedy, "NESTCORE_PLAN_FORCE"));
        EXPECT_OK(nestcore_plan_blocker(p, 0, &whole));
        CHECK(contains(whole, "neither VMX (VT-x) nor SVM") && contains(whole, ". Remedy: Use a CPU"));
        nestcore_string_free(code);
        nestcore_string_free(remedy);
        nestcore_string_free(whole);
        char *json = SENTINEL;
        EXPECT(nestcore_plan_apply(p, h, 1, &json), NESTCORE_STATUS_UNSUPPORTED);
        CHECK(json == NULL);
    }
    nestcore_plan_free(p);
    p = NULL;
    EXPECT_OK(nestcore_plan_nested_with(h, 1, NESTCORE_PERSIST_MODPROBE, NESTCORE_PLAN_FORCE, &p));
    if (p != NULL) {
        size_t n = 9, w = 0;
        EXPECT_OK(nestcore_plan_blockers_count(p, &n));
        CHECK(n == 0);
        EXPECT_OK(nestcore_plan_warnings_count(p, &w));
        int forced = 0;
        for (size_t i = 0; i < w; i++) {
            char *s = NULL;
            EXPECT_OK(nestcore_plan_warning(p, i, &s));
            forced |= contains(s, "forced past (NESTCORE_PLAN_FORCE)");
            nestcore_string_free(s);
        }
        CHECK(forced);
        /* A remedy-less blocker gives NULL, not an error: none here, so index 0 is out of range. */
        char *r = SENTINEL;
        EXPECT(nestcore_plan_blocker_remedy(p, 0, &r), NESTCORE_STATUS_INVALID_ARGUMENT);
        CHECK(r == NULL);
    }
    nestcore_plan_free(p);
    nestcore_host_free(h);
    h = NULL;
    CHECK(remove_tree(novmx) == 0);

    /* An Intel root without any boot loader configuration: a plan with a blocker. */
    snprintf(blocked, sizeof blocked, "%s/blocked-root", tmpdir);
    snprintf(path, sizeof path, "%s/proc", blocked);
    CHECK(mkdir(blocked, 0755) == 0 && mkdir(path, 0755) == 0);
    snprintf(path, sizeof path, "%s/proc/cpuinfo", blocked);
    CHECK(write_file(path, "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: vmx\n") == 0);
    EXPECT_OK(nestcore_host_new_root(blocked, NULL, &h));
    p = NULL;
    EXPECT_OK(nestcore_plan_nested(h, 1, NESTCORE_PERSIST_CMDLINE, 0, &p));
    CHECK(p != NULL);
    if (p != NULL) {
        size_t n = 0;
        EXPECT_OK(nestcore_plan_blockers_count(p, &n));
        CHECK(n == 1);
        char *b = NULL;
        EXPECT_OK(nestcore_plan_blocker(p, 0, &b));
        CHECK(contains(b, "No boot loader configuration found"));
        nestcore_string_free(b);
        b = NULL;
        EXPECT_OK(nestcore_plan_blocker_code(p, 0, &b));
        CHECK(b != NULL && strcmp(b, "plan.no_boot_loader") == 0);
        nestcore_string_free(b);
        b = NULL;
        EXPECT_OK(nestcore_plan_blocker_remedy(p, 0, &b));
        CHECK(contains(b, "add kvm-intel.nested=1 to the kernel command line by hand"));
        nestcore_string_free(b);
        char *text = NULL;
        EXPECT_OK(nestcore_plan_render(p, &text));
        CHECK(contains(text, "blocked: No boot loader configuration found"));
        nestcore_string_free(text);
        int is_empty = -1;
        EXPECT_OK(nestcore_plan_is_empty(p, &is_empty));
        CHECK(is_empty == 1);
        /* A blocked plan is refused and changes nothing. */
        char *json = SENTINEL;
        EXPECT(nestcore_plan_apply(p, h, 1, &json), NESTCORE_STATUS_UNSUPPORTED);
        CHECK(json == NULL);
        CHECK(last_error_contains("blocked"));
        /* apply's own arguments. */
        json = SENTINEL;
        EXPECT(nestcore_plan_apply(NULL, h, 1, &json), NESTCORE_STATUS_NULL_ARGUMENT);
        CHECK(json == NULL);
        CHECK(last_error_contains("`plan`"));
        EXPECT(nestcore_plan_apply(p, NULL, 1, &json), NESTCORE_STATUS_NULL_ARGUMENT);
        CHECK(last_error_contains("`host`"));
        EXPECT(nestcore_plan_apply(p, h, 1, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
        CHECK(last_error_contains("`report_json_out`"));
        json = SENTINEL;
        EXPECT(nestcore_plan_apply(p, h, 2, &json), NESTCORE_STATUS_INVALID_ARGUMENT);
        CHECK(json == NULL);
        CHECK(last_error_contains("`defer_commands` must be 0 or 1"));
        EXPECT(nestcore_plan_apply(p, h, -1, &json), NESTCORE_STATUS_INVALID_ARGUMENT);
        test_plan_accessor_nulls(p);
    }
    nestcore_plan_free(p);
    nestcore_plan_free(NULL);
    nestcore_host_free(h);
    CHECK(remove_tree(empty) == 0);
    CHECK(remove_tree(blocked) == 0);
}

/* `dir` is tests/fixtures/enable/debian-grub2: root/ (an Intel Debian host, kvm_intel nested=N,
 * GRUB 2), expected/ (the root after `nestcore enable --persist modprobe,cmdline --apply`) and
 * plan.txt (the rendered plan and the apply summary). */
static void test_plan_apply(const char *dir) {
    char src[PATH_MAX], expected[PATH_MAX], root[PATH_MAX + 32], path[PATH_MAX + 96];
    snprintf(src, sizeof src, "%s/root", dir);
    snprintf(expected, sizeof expected, "%s/expected", dir);
    snprintf(root, sizeof root, "%s/enable-root", tmpdir);
    CHECK(copy_tree(src, root) == 0);
    snprintf(path, sizeof path, "%s/etc/default/grub", root);
    char *grub_before = read_file(path);
    CHECK(contains(grub_before, "kvm_intel.nested=0"));

    nestcore_host *h = NULL;
    nestcore_plan *p = NULL;
    EXPECT_OK(nestcore_host_new_root(root, NULL, &h));
    EXPECT_OK(nestcore_plan_nested(h, 1, NESTCORE_PERSIST_MODPROBE | NESTCORE_PERSIST_CMDLINE, 0, &p));
    if (p == NULL) {
        nestcore_host_free(h);
        free(grub_before);
        return;
    }

    int is_empty = -1;
    EXPECT_OK(nestcore_plan_is_empty(p, &is_empty));
    CHECK(is_empty == 0);
    size_t actions = 0, blockers = 9, warnings = 0;
    EXPECT_OK(nestcore_plan_actions_count(p, &actions));
    CHECK(actions == 5);
    EXPECT_OK(nestcore_plan_blockers_count(p, &blockers));
    CHECK(blockers == 0);
    char *s = SENTINEL;
    EXPECT(nestcore_plan_blocker(p, 0, &s), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(s == NULL);
    EXPECT_OK(nestcore_plan_warnings_count(p, &warnings));
    for (size_t i = 0; i < warnings; i++) {
        EXPECT_OK(nestcore_plan_warning(p, i, &s));
        CHECK(s != NULL && s[0] != '\0');
        CHECK(!contains(s, "chosen from")); /* information is a note, not a warning */
        nestcore_string_free(s);
    }
    size_t notes = 0;
    EXPECT_OK(nestcore_plan_notes_count(p, &notes));
    CHECK(notes >= 1);
    int saw_vendor = 0;
    for (size_t i = 0; i < notes; i++) {
        EXPECT_OK(nestcore_plan_note(p, i, &s));
        CHECK(s != NULL && s[0] != '\0');
        saw_vendor |= contains(s, "kvm_intel chosen from /proc/cpuinfo");
        nestcore_string_free(s);
    }
    CHECK(saw_vendor);
    EXPECT_OK(nestcore_plan_summary(p, &s));
    CHECK(contains(s, "Turn kvm_intel nested on"));
    nestcore_string_free(s);
    for (size_t i = 0; i < actions; i++) {
        s = NULL;
        EXPECT_OK(nestcore_plan_action_description(p, i, &s));
        CHECK(s != NULL && s[0] != '\0');
        if (i == 0) {
            CHECK(contains(s, "create /etc/modprobe.d/nestcore-kvm.conf"));
        }
        if (i == actions - 1) {
            CHECK(contains(s, "run `update-grub`"));
        }
        nestcore_string_free(s);
    }

    /* The text is what `nestcore enable` prints: the golden plan.txt without its apply line. */
    char *render = NULL;
    EXPECT_OK(nestcore_plan_render(p, &render));
    snprintf(path, sizeof path, "%s/plan.txt", dir);
    char *golden = read_file(path);
    CHECK(golden != NULL && render != NULL);
    if (golden != NULL && render != NULL) {
        size_t len = strlen(render);
        CHECK(strncmp(golden, render, len) == 0);
        CHECK(strcmp(golden + (strlen(golden) >= len ? len : 0), "\napplied: 3 written, 0 unchanged\n") == 0);
    }
    free(golden);
    nestcore_string_free(render);

    char *json = NULL;
    EXPECT_OK(nestcore_plan_to_json(p, &json));
    CHECK(contains(json, "\"kind\": \"write_file\""));
    CHECK(contains(json, "\"kind\": \"run\""));
    CHECK(contains(json, "\"blockers\": []"));
    CHECK(contains(json, "kvm-intel.nested=1"));
    nestcore_string_free(json);

    /* Programs are not run for a recorded root: with defer_commands=0 apply fails on the first
     * program and restores what it wrote. */
    json = SENTINEL;
    EXPECT(nestcore_plan_apply(p, h, 0, &json), NESTCORE_STATUS_UNSUPPORTED);
    CHECK(json == NULL);
    nestcore_string_free(json); /* NULL unless the check above failed */
    CHECK(last_error_contains("recorded host"));
    snprintf(path, sizeof path, "%s/etc/default/grub", root);
    char *grub_now = read_file(path);
    CHECK(grub_now != NULL && grub_before != NULL && strcmp(grub_now, grub_before) == 0);
    free(grub_now);
    snprintf(path, sizeof path, "%s/etc/modprobe.d/nestcore-kvm.conf", root);
    CHECK(!exists(path));

    /* Deferred: the files are written, the programs listed. */
    json = NULL;
    EXPECT_OK(nestcore_plan_apply(p, h, 1, &json));
    CHECK(contains(json, "\"deferred\": ["));
    CHECK(contains(json, "\"program\": \"update-grub\""));
    CHECK(contains(json, "\"backup\": \"/var/lib/nestcore/backup/0001/files/etc/default/grub\""));
    CHECK(contains(json, "\"transaction\": \"/var/lib/nestcore/backup/0001/manifest.json\""));
    CHECK(contains(json, "\"unchanged\": []"));
    nestcore_string_free(json);
    snprintf(path, sizeof path, "%s/etc/default/grub", root);
    grub_now = read_file(path);
    CHECK(contains(grub_now, "GRUB_CMDLINE_LINUX=\"console=ttyS0,115200n8 kvm-intel.nested=1\""));
    CHECK(!contains(grub_now, "kvm_intel.nested=0"));
    free(grub_now);
    /* The original is in the backup store, never beside the file. */
    snprintf(path, sizeof path, "%s/etc/default/grub.nestcore-bak", root);
    CHECK(!exists(path));
    snprintf(path, sizeof path, "%s/var/lib/nestcore/backup/0001/files/etc/default/grub", root);
    char *backup = read_file(path);
    CHECK(backup != NULL && grub_before != NULL && strcmp(backup, grub_before) == 0);
    free(backup);
    snprintf(path, sizeof path, "%s/etc/modprobe.d/nestcore-kvm.conf", root);
    char *conf = read_file(path);
    CHECK(contains(conf, "options kvm_intel nested=1"));
    free(conf);
    int compared = 0;
    CHECK(tree_differences(expected, root, &compared) == 0);
    CHECK(compared >= 10);

    /* Applied again: nothing is written, the files are listed as unchanged. */
    json = NULL;
    EXPECT_OK(nestcore_plan_apply(p, h, 1, &json));
    CHECK(contains(json, "\"written\": []"));
    CHECK(contains(json, "\"/etc/default/grub\""));
    nestcore_string_free(json);
    compared = 0;
    CHECK(tree_differences(expected, root, &compared) == 0);
    nestcore_plan_free(p);

    /* Planned again on the changed root: nothing to do. */
    p = NULL;
    EXPECT_OK(nestcore_plan_nested(h, 1, NESTCORE_PERSIST_MODPROBE | NESTCORE_PERSIST_CMDLINE, 0, &p));
    is_empty = -1;
    EXPECT_OK(nestcore_plan_is_empty(p, &is_empty));
    CHECK(is_empty == 1);
    EXPECT_OK(nestcore_plan_summary(p, &s));
    CHECK(contains(s, "nothing to do"));
    nestcore_string_free(s);
    json = NULL;
    EXPECT_OK(nestcore_plan_apply(p, h, 1, &json));
    CHECK(contains(json, "\"written\": []"));
    nestcore_string_free(json);
    compared = 0;
    CHECK(tree_differences(expected, root, &compared) == 0);
    nestcore_plan_free(p);

    /* Off again, through the modprobe drop-in only: the plan rewrites nestcore's own file, and
     * the kernel command line too, which kmod applies after modprobe.d (issue 13). */
    p = NULL;
    EXPECT_OK(nestcore_plan_nested(h, 0, NESTCORE_PERSIST_MODPROBE, 1, &p));
    EXPECT_OK(nestcore_plan_actions_count(p, &actions));
    CHECK(actions >= 3);
    char *offjson = NULL;
    EXPECT_OK(nestcore_plan_to_json(p, &offjson));
    CHECK(contains(offjson, "kvm-intel.nested=0"));
    CHECK(contains(offjson, "options kvm_intel nested=0"));
    nestcore_string_free(offjson);
    nestcore_plan_free(p);

    /* Undo: the root comes back byte for byte, from the backup store. */
    p = NULL;
    EXPECT_OK(nestcore_plan_undo(h, &p));
    if (p != NULL) {
        EXPECT_OK(nestcore_plan_summary(p, &s));
        CHECK(contains(s, "Undo apply 0001"));
        nestcore_string_free(s);
        json = NULL;
        EXPECT_OK(nestcore_plan_apply(p, h, 1, &json));
        CHECK(contains(json, "\"undone\": \"0001\""));
        CHECK(contains(json, "\"removed\": true"));
        nestcore_string_free(json);
        compared = 0;
        CHECK(tree_differences(src, root, &compared) == 0);
        CHECK(compared >= 8);
        snprintf(path, sizeof path, "%s/etc/modprobe.d/nestcore-kvm.conf", root);
        CHECK(!exists(path));
    }
    nestcore_plan_free(p);
    p = NULL;
    EXPECT_OK(nestcore_plan_undo(h, &p));
    is_empty = -1;
    EXPECT_OK(nestcore_plan_is_empty(p, &is_empty));
    CHECK(is_empty == 1);
    nestcore_plan_free(p);

    nestcore_host_free(h);
    free(grub_before);
    CHECK(remove_tree(root) == 0);
}

/* ---- Kernel command lines and boot loader configurations */

static const char GRUB_LEGACY[] = "default=0\n"
                                  "timeout=5\n"
                                  "title Linux 1\n"
                                  "\troot (hd0,0)\n"
                                  "\tkernel /vmlinuz-1 ro root=/dev/sda1 quiet\n"
                                  "\tinitrd /initrd-1\n"
                                  "title Linux 2\n"
                                  "\troot (hd0,0)\n"
                                  "\tkernel /vmlinuz-2 ro root=/dev/sda1 quiet\n";

static void test_kargs(void) {
    char *out = NULL;
    EXPECT_OK(nestcore_kargs_edit(GRUB_LEGACY, "grub", "ALL", "kvm-intel.nested=1", "quiet", NULL, &out));
    CHECK(out != NULL && strcmp(out, "default=0\n"
                                     "timeout=5\n"
                                     "title Linux 1\n"
                                     "\troot (hd0,0)\n"
                                     "\tkernel /vmlinuz-1 ro root=/dev/sda1 kvm-intel.nested=1\n"
                                     "\tinitrd /initrd-1\n"
                                     "title Linux 2\n"
                                     "\troot (hd0,0)\n"
                                     "\tkernel /vmlinuz-2 ro root=/dev/sda1 kvm-intel.nested=1\n") == 0);
    /* The same edit again changes nothing; replacing a value works in place. */
    char *again = NULL;
    EXPECT_OK(nestcore_kargs_edit(out, "grub", "ALL", "kvm-intel.nested=1", "quiet", NULL, &again));
    CHECK(again != NULL && out != NULL && strcmp(again, out) == 0);
    nestcore_string_free(again);
    EXPECT_OK(nestcore_kargs_edit(out, "grub", "ALL", "kvm_intel.nested=0", NULL, NULL, &again));
    CHECK(contains(again, "root=/dev/sda1 kvm_intel.nested=0\n\tinitrd"));
    CHECK(!contains(again, "nested=1"));
    nestcore_string_free(again);
    nestcore_string_free(out);

    /* One kernel by path, relative to the boot file system; DEFAULT is entry 0. */
    out = NULL;
    EXPECT_OK(nestcore_kargs_edit(GRUB_LEGACY, "grub", "/boot/vmlinuz-2", "kvm-amd.nested=1", NULL, "/boot", &out));
    CHECK(contains(out, "vmlinuz-1 ro root=/dev/sda1 quiet\n"));
    CHECK(contains(out, "vmlinuz-2 ro root=/dev/sda1 quiet kvm-amd.nested=1\n"));
    nestcore_string_free(out);
    out = NULL;
    EXPECT_OK(nestcore_kargs_edit(GRUB_LEGACY, "grub", "DEFAULT", "x=\"a b\"", NULL, NULL, &out));
    CHECK(contains(out, "vmlinuz-1 ro root=/dev/sda1 quiet x=\"a b\"\n"));
    CHECK(contains(out, "vmlinuz-2 ro root=/dev/sda1 quiet\n"));
    nestcore_string_free(out);
    /* No edit at all: the text comes back as it was. */
    out = NULL;
    EXPECT_OK(nestcore_kargs_edit(GRUB_LEGACY, "grub", "ALL", NULL, NULL, NULL, &out));
    CHECK(out != NULL && strcmp(out, GRUB_LEGACY) == 0);
    nestcore_string_free(out);
    /* GRUB 2's /etc/default/grub. */
    out = NULL;
    EXPECT_OK(nestcore_kargs_edit("GRUB_CMDLINE_LINUX=\"quiet\"\n", "grub2", "ALL", "kvm-intel.nested=1", NULL,
                                  NULL, &out));
    CHECK(contains(out, "GRUB_CMDLINE_LINUX=\"quiet kvm-intel.nested=1\"\n"));
    nestcore_string_free(out);

    /* Errors. */
    out = SENTINEL;
    EXPECT(nestcore_kargs_edit(NULL, "grub", "ALL", "a", NULL, NULL, &out), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(out == NULL);
    CHECK(last_error_contains("`config_text`"));
    EXPECT(nestcore_kargs_edit(GRUB_LEGACY, NULL, "ALL", "a", NULL, NULL, &out), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(last_error_contains("`loader`"));
    EXPECT(nestcore_kargs_edit(GRUB_LEGACY, "grub", NULL, "a", NULL, NULL, &out), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(last_error_contains("`update_kernel`"));
    EXPECT(nestcore_kargs_edit(GRUB_LEGACY, "grub", "ALL", "a", NULL, NULL, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    out = SENTINEL;
    EXPECT(nestcore_kargs_edit(GRUB_LEGACY, "grub", "ALL", "a=\xff", NULL, NULL, &out), NESTCORE_STATUS_INVALID_UTF8);
    CHECK(out == NULL);
    CHECK(last_error_contains("`args_or_null`"));
    EXPECT(nestcore_kargs_edit("title \xc3(\n", "grub", "ALL", "a", NULL, NULL, &out), NESTCORE_STATUS_INVALID_UTF8);
    EXPECT(nestcore_kargs_edit(GRUB_LEGACY, "grub", "ALL", NULL, "q\xfe", NULL, &out), NESTCORE_STATUS_INVALID_UTF8);
    CHECK(last_error_contains("`remove_args_or_null`"));
    EXPECT(nestcore_kargs_edit(GRUB_LEGACY, "grub", "/vmlinuz-1", "a", NULL, "/bo\xffot", &out),
           NESTCORE_STATUS_INVALID_UTF8);
    CHECK(last_error_contains("`boot_filesystem_or_null`"));
    EXPECT(nestcore_kargs_edit(GRUB_LEGACY, "lilo", "ALL", "a", NULL, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_kargs_edit(GRUB_LEGACY, "grub", "", "a", NULL, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_kargs_edit(GRUB_LEGACY, "grub", "ALL", "a --", NULL, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("bare \"--\""));
    EXPECT(nestcore_kargs_edit(GRUB_LEGACY, "grub", "ALL", "a=\"b", NULL, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_kargs_edit("GRUB_CMDLINE_LINUX=\"\"\n", "grub2", "0", "a", NULL, NULL, &out),
           NESTCORE_STATUS_UNSUPPORTED);
    CHECK(out == NULL);

    /* Issue 13: a newline in an argument must never become a line of the configuration, in any
     * loader; nor any other control character. Refused, the character named. */
    static const char *const loaders[][2] = {
        {"grub", "title L\n\tkernel /vmlinuz-1 ro\n\tinitrd /i\n"},
        {"grub2", "GRUB_CMDLINE_LINUX=\"ro\"\n"},
        {"bls", "title T\nlinux /vmlinuz\noptions ro\n"},
        {"extlinux", "label l\n  kernel /vmlinuz\n  append ro\n"},
        {"kernel-cmdline", "ro\n"},
    };
    for (size_t i = 0; i < sizeof loaders / sizeof loaders[0]; i++) {
        out = SENTINEL;
        EXPECT(nestcore_kargs_edit(loaders[i][1], loaders[i][0], "ALL", "\"x\ninitrd /evil\"", NULL, NULL, &out),
               NESTCORE_STATUS_INVALID_ARGUMENT);
        CHECK(out == NULL);
        CHECK(last_error_contains("U+000A (line feed)"));
        EXPECT(nestcore_kargs_edit(loaders[i][1], loaders[i][0], "ALL", "a=1\rb", NULL, NULL, &out),
               NESTCORE_STATUS_INVALID_ARGUMENT);
        CHECK(last_error_contains("U+000D (carriage return)"));
        EXPECT(nestcore_kargs_edit(loaders[i][1], loaders[i][0], "ALL", NULL, "a\x1b", NULL, &out),
               NESTCORE_STATUS_INVALID_ARGUMENT);
        CHECK(last_error_contains("U+001B (escape)"));
    }
}

static void test_cmdline_edit(void) {
    const char *line = "ro  quiet kvm-intel.nested=0 -- init";
    char *out = NULL;
    EXPECT_OK(nestcore_cmdline_edit(line, "kvm_intel.nested=1 mitigations=off", "quiet", &out));
    CHECK(out != NULL && strcmp(out, "ro kvm_intel.nested=1 mitigations=off -- init") == 0);
    nestcore_string_free(out);
    /* Removal with a value removes only that value. */
    out = NULL;
    EXPECT_OK(nestcore_cmdline_edit("a=1 b a=2", NULL, "a=2", &out));
    CHECK(out != NULL && strcmp(out, "a=1 b") == 0);
    nestcore_string_free(out);
    out = NULL;
    EXPECT_OK(nestcore_cmdline_edit("a=1 b a=2", NULL, "a", &out));
    CHECK(out != NULL && strcmp(out, "b") == 0);
    nestcore_string_free(out);
    /* Nothing to do: byte for byte. */
    out = NULL;
    EXPECT_OK(nestcore_cmdline_edit(line, NULL, NULL, &out));
    CHECK(out != NULL && strcmp(out, line) == 0);
    nestcore_string_free(out);
    out = NULL;
    EXPECT_OK(nestcore_cmdline_edit("", "x=\"a b\"", NULL, &out));
    CHECK(out != NULL && strcmp(out, "x=\"a b\"") == 0);
    nestcore_string_free(out);

    out = SENTINEL;
    EXPECT(nestcore_cmdline_edit(NULL, "a", NULL, &out), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(out == NULL);
    CHECK(last_error_contains("`line`"));
    EXPECT(nestcore_cmdline_edit(line, "a", NULL, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_cmdline_edit("ro \xff", NULL, NULL, &out), NESTCORE_STATUS_INVALID_UTF8);
    CHECK(last_error_contains("`line`"));
    EXPECT(nestcore_cmdline_edit(line, "\xc3(", NULL, &out), NESTCORE_STATUS_INVALID_UTF8);
    EXPECT(nestcore_cmdline_edit(line, NULL, "\xe2\x82", &out), NESTCORE_STATUS_INVALID_UTF8);
    EXPECT(nestcore_cmdline_edit(line, "a -- b", NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_cmdline_edit(line, "=1", NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("no name"));
    EXPECT(nestcore_cmdline_edit("ro x=\"open", "a=1", NULL, &out), NESTCORE_STATUS_PARSE);
    CHECK(out == NULL);
    EXPECT(nestcore_cmdline_edit(line, "a=\"x\ny\"", NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(out == NULL);
    CHECK(last_error_contains("control character U+000A"));
}

/* ---- Guest CPUs */

static void test_guest_cpu(void) {
    char *out = NULL;
    /* The single-host recommendation in all three formats. */
    EXPECT_OK(nestcore_guest_cpu(NULL, NESTCORE_VENDOR_INTEL, NESTCORE_GUEST_FORMAT_LIBVIRT, NULL, NULL, NULL, 0,
                                 NULL, &out));
    CHECK(out != NULL && strcmp(out, "<cpu mode='host-passthrough'/>\n") == 0);
    nestcore_string_free(out);
    out = NULL;
    EXPECT_OK(nestcore_guest_cpu(NULL, NESTCORE_VENDOR_INTEL, NESTCORE_GUEST_FORMAT_QEMU, NULL, NULL, NULL, 0, NULL,
                                 &out));
    CHECK(out != NULL && strcmp(out, "host\n") == 0);
    nestcore_string_free(out);
    out = NULL;
    EXPECT_OK(nestcore_guest_cpu(NULL, NESTCORE_VENDOR_AMD, NESTCORE_GUEST_FORMAT_NOVA, NULL, NULL, NULL, 0, NULL,
                                 &out));
    CHECK(out != NULL && strcmp(out, "[libvirt]\ncpu_mode = host-passthrough\n") == 0);
    nestcore_string_free(out);

    /* A named model with features and a topology: require of the vendor's extension is added. */
    const char *features[] = {"require:pcid", "disable:x2apic"};
    out = NULL;
    EXPECT_OK(nestcore_guest_cpu(NULL, NESTCORE_VENDOR_AMD, NESTCORE_GUEST_FORMAT_LIBVIRT, NULL, "EPYC-Rome",
                                 features, 2, "1,2,2", &out));
    CHECK(contains(out, "<cpu mode='custom' match='exact' check='partial'>\n"));
    CHECK(contains(out, "<model fallback='forbid'>EPYC-Rome</model>"));
    CHECK(contains(out, "<topology sockets='1' cores='2' threads='2'/>"));
    CHECK(contains(out, "<feature policy='require' name='pcid'/>"));
    CHECK(contains(out, "<feature policy='disable' name='x2apic'/>"));
    CHECK(contains(out, "<feature policy='require' name='svm'/>"));
    nestcore_string_free(out);
    out = NULL;
    EXPECT_OK(nestcore_guest_cpu(NULL, NESTCORE_VENDOR_AMD, NESTCORE_GUEST_FORMAT_QEMU, NULL, "EPYC-Rome", features,
                                 1, NULL, &out));
    CHECK(out != NULL && strcmp(out, "EPYC-Rome,pcid=on,svm=on\n") == 0);
    nestcore_string_free(out);
    out = NULL;
    EXPECT_OK(nestcore_guest_cpu(NULL, NESTCORE_VENDOR_AMD, NESTCORE_GUEST_FORMAT_NOVA, NULL, "EPYC-Rome", NULL, 0,
                                 NULL, &out));
    CHECK(out != NULL &&
          strcmp(out, "[libvirt]\ncpu_mode = custom\ncpu_models = EPYC-Rome\ncpu_model_extra_flags = svm\n") == 0);
    nestcore_string_free(out);
    out = NULL;
    EXPECT_OK(nestcore_guest_cpu(NULL, NESTCORE_VENDOR_INTEL, NESTCORE_GUEST_FORMAT_LIBVIRT, "host-model", NULL, NULL,
                                 0, NULL, &out));
    CHECK(out != NULL && strcmp(out, "<cpu mode='host-model'>\n  <feature policy='require' name='vmx'/>\n</cpu>\n") == 0);
    nestcore_string_free(out);

    /* From a report: the fixture is Intel, so vmx; a vendor overrides the report's. */
    nestcore_host *h = NULL;
    nestcore_report *r = NULL;
    EXPECT_OK(nestcore_host_new_root(fixture_root, fixture_cpuid, &h));
    EXPECT_OK(nestcore_check(h, 0, &r));
    out = NULL;
    EXPECT_OK(nestcore_guest_cpu(r, NESTCORE_VENDOR_FROM_REPORT, NESTCORE_GUEST_FORMAT_QEMU, NULL, "Skylake-Server",
                                 NULL, 0, NULL, &out));
    CHECK(out != NULL && strcmp(out, "Skylake-Server,vmx=on\n") == 0);
    nestcore_string_free(out);
    out = NULL;
    EXPECT_OK(nestcore_guest_cpu(r, NESTCORE_VENDOR_AMD, NESTCORE_GUEST_FORMAT_QEMU, NULL, "EPYC-Rome", NULL, 0, NULL,
                                 &out));
    CHECK(out != NULL && strcmp(out, "EPYC-Rome,svm=on\n") == 0);
    nestcore_string_free(out);
    nestcore_report_free(r);
    nestcore_host_free(h);
    /* A report without a vendor cannot say: the vendor must be given. */
    h = NULL;
    r = NULL;
    EXPECT_OK(nestcore_host_new_root(tmpdir, NULL, &h));
    EXPECT_OK(nestcore_check(h, 0, &r));
    out = SENTINEL;
    EXPECT(nestcore_guest_cpu(r, NESTCORE_VENDOR_FROM_REPORT, NESTCORE_GUEST_FORMAT_QEMU, NULL, "qemu64", NULL, 0,
                              NULL, &out),
           NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(out == NULL);
    CHECK(last_error_contains("NESTCORE_VENDOR_INTEL"));
    out = NULL;
    EXPECT_OK(nestcore_guest_cpu(r, NESTCORE_VENDOR_INTEL, NESTCORE_GUEST_FORMAT_QEMU, NULL, "qemu64", NULL, 0, NULL,
                                 &out));
    CHECK(out != NULL && strcmp(out, "qemu64,vmx=on\n") == 0);
    nestcore_string_free(out);
    nestcore_report_free(r);
    nestcore_host_free(h);

    /* Errors. */
    const uint32_t I = NESTCORE_VENDOR_INTEL, L = NESTCORE_GUEST_FORMAT_LIBVIRT;
    out = SENTINEL;
    EXPECT(nestcore_guest_cpu(NULL, I, L, NULL, NULL, NULL, 0, NULL, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_guest_cpu(NULL, NESTCORE_VENDOR_FROM_REPORT, L, NULL, NULL, NULL, 0, NULL, &out),
           NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(out == NULL);
    CHECK(last_error_contains("`report_or_null` is NULL"));
    EXPECT(nestcore_guest_cpu(NULL, 3, L, NULL, NULL, NULL, 0, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("`vendor`"));
    EXPECT(nestcore_guest_cpu(NULL, UINT32_MAX, L, NULL, NULL, NULL, 0, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_guest_cpu(NULL, I, 3, NULL, NULL, NULL, 0, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("`format`"));
    EXPECT(nestcore_guest_cpu(NULL, I, UINT32_MAX, NULL, NULL, NULL, 0, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_guest_cpu(NULL, I, L, NULL, NULL, NULL, 1, NULL, &out), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(last_error_contains("`features` is NULL but `features_len` is 1"));
    const char *with_null[] = {"require:pcid", NULL};
    EXPECT(nestcore_guest_cpu(NULL, I, L, NULL, "qemu64", with_null, 2, NULL, &out), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(last_error_contains("`features[1]`"));
    const char *bad_utf8[] = {"require:pc\xff"};
    EXPECT(nestcore_guest_cpu(NULL, I, L, NULL, "qemu64", bad_utf8, 1, NULL, &out), NESTCORE_STATUS_INVALID_UTF8);
    CHECK(last_error_contains("`features[0]`"));
    const char *bad_policy[] = {"want:pcid"};
    EXPECT(nestcore_guest_cpu(NULL, I, L, NULL, "qemu64", bad_policy, 1, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_guest_cpu(NULL, I, L, "host-\xff", NULL, NULL, 0, NULL, &out), NESTCORE_STATUS_INVALID_UTF8);
    CHECK(last_error_contains("`mode_or_null`"));
    EXPECT(nestcore_guest_cpu(NULL, I, L, NULL, "Sky\xc3(", NULL, 0, NULL, &out), NESTCORE_STATUS_INVALID_UTF8);
    CHECK(last_error_contains("`model_or_null`"));
    EXPECT(nestcore_guest_cpu(NULL, I, L, NULL, NULL, NULL, 0, "1,\xff", &out), NESTCORE_STATUS_INVALID_UTF8);
    CHECK(last_error_contains("`topology_or_null`"));
    EXPECT(nestcore_guest_cpu(NULL, I, L, "weird", NULL, NULL, 0, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_guest_cpu(NULL, I, L, "custom", NULL, NULL, 0, NULL, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_guest_cpu(NULL, I, L, NULL, NULL, NULL, 0, "0,1,1", &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_guest_cpu(NULL, I, NESTCORE_GUEST_FORMAT_NOVA, "maximum", NULL, NULL, 0, NULL, &out),
           NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(out == NULL);
}

static void test_ensure_nested(void) {
    const char *domain = "<domain type='kvm'>\n  <name>g</name>\n</domain>\n";
    char *on = NULL, *off = NULL, *again = NULL;
    EXPECT_OK(nestcore_ensure_nested(domain, NESTCORE_VENDOR_INTEL, 0, &on));
    CHECK(on != NULL && strcmp(on, "<domain type='kvm'>\n"
                                   "  <name>g</name>\n"
                                   "  <cpu mode='host-model'>\n"
                                   "    <feature policy='require' name='vmx'/>\n"
                                   "  </cpu>\n"
                                   "</domain>\n") == 0);
    /* Already nested: unchanged. */
    EXPECT_OK(nestcore_ensure_nested(on, NESTCORE_VENDOR_INTEL, 0, &again));
    CHECK(again != NULL && on != NULL && strcmp(again, on) == 0);
    nestcore_string_free(again);
    EXPECT_OK(nestcore_ensure_nested(on, NESTCORE_VENDOR_INTEL, 1, &off));
    CHECK(contains(off, "<feature policy='disable' name='vmx'/>"));
    CHECK(!contains(off, "policy='require' name='vmx'"));
    CHECK(contains(off, "  <name>g</name>\n"));
    nestcore_string_free(off);
    nestcore_string_free(on);
    on = NULL;
    EXPECT_OK(nestcore_ensure_nested(domain, NESTCORE_VENDOR_AMD, 0, &on));
    CHECK(contains(on, "name='svm'"));
    nestcore_string_free(on);

    char *out = SENTINEL;
    EXPECT(nestcore_ensure_nested(NULL, NESTCORE_VENDOR_INTEL, 0, &out), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(out == NULL);
    CHECK(last_error_contains("`domain_xml`"));
    EXPECT(nestcore_ensure_nested(domain, NESTCORE_VENDOR_INTEL, 0, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_ensure_nested("<domain>\xff</domain>", NESTCORE_VENDOR_INTEL, 0, &out),
           NESTCORE_STATUS_INVALID_UTF8);
    EXPECT(nestcore_ensure_nested(domain, NESTCORE_VENDOR_FROM_REPORT, 0, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("there is no report"));
    EXPECT(nestcore_ensure_nested(domain, 3, 0, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_ensure_nested(domain, NESTCORE_VENDOR_INTEL, 2, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("`disable` must be 0 or 1"));
    out = SENTINEL;
    EXPECT(nestcore_ensure_nested("<domain><name>g</domain>", NESTCORE_VENDOR_INTEL, 0, &out), NESTCORE_STATUS_PARSE);
    CHECK(out == NULL);
}

/* nestcore_guests_*: the libvirt domains of a recorded AMD host (tests/fixtures/guests/libvirt-amd,
 * its CPUID dump, no sysfs and no /dev/kvm: KVM is not usable there), read, judged and fixed on a
 * copy. */
static void test_guests(const char *dir, const char *cpuid) {
    char src[PATH_MAX], root[PATH_MAX + 32], path[PATH_MAX + 96];
    snprintf(src, sizeof src, "%s/root", dir);
    snprintf(root, sizeof root, "%s/guests-root", tmpdir);
    CHECK(copy_tree(src, root) == 0);

    nestcore_host *h = NULL;
    nestcore_guests *g = NULL;
    EXPECT_OK(nestcore_host_new_root(root, cpuid, &h));
    EXPECT(nestcore_guests_scan(NULL, 0, &g), NESTCORE_STATUS_NULL_ARGUMENT);
    CHECK(g == NULL);
    EXPECT(nestcore_guests_scan(h, 2, &g), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_guests_scan(h, 0, NULL), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT_OK(nestcore_guests_scan(h, 0, &g));
    if (g == NULL) {
        nestcore_host_free(h);
        return;
    }
    size_t n = 0;
    EXPECT_OK(nestcore_guests_count(g, &n));
    CHECK(n == 5);
    int code = -1;
    EXPECT_OK(nestcore_guests_exit_code(g, &code));
    CHECK(code == 1);
    int fixable = 0, yes = 0, no = 0, unknown = 0;
    for (size_t i = 0; i < n; i++) {
        char *name = NULL, *source = NULL, *reason = NULL, *message = NULL;
        int gets = 9, fix = 9;
        EXPECT_OK(nestcore_guests_name(g, i, &name));
        EXPECT_OK(nestcore_guests_source(g, i, &source));
        EXPECT_OK(nestcore_guests_reason_code(g, i, &reason));
        EXPECT_OK(nestcore_guests_reason_message(g, i, &message));
        EXPECT_OK(nestcore_guests_gets_extension(g, i, &gets));
        EXPECT_OK(nestcore_guests_fixable(g, i, &fix));
        CHECK(source != NULL && strcmp(source, "libvirt") == 0);
        CHECK(message != NULL && message[0] != '\0');
        CHECK(gets == 1 || gets == 0 || gets == -1);
        yes += gets == 1;
        no += gets == 0;
        unknown += gets == -1;
        fixable += fix == 1;
        if (name != NULL && strcmp(name, "epyc") == 0) {
            /* A named model: no svm under KVM, whatever the host says. */
            CHECK(gets == 0 && fix == 1 && reason != NULL && strcmp(reason, "model_lacks") == 0);
        }
        if (name != NULL && strcmp(name, "passthrough") == 0) {
            /* Passes svm itself: the host is what stands in the way. */
            CHECK(gets == 0 && fix == 0 && strcmp(reason, "host_kvm_unusable") == 0);
        }
        nestcore_string_free(name);
        nestcore_string_free(source);
        nestcore_string_free(reason);
        nestcore_string_free(message);
    }
    CHECK(yes == 0 && no == 5 && unknown == 0 && fixable == 3);
    int out = 0;
    EXPECT(nestcore_guests_gets_extension(g, n, &out), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_contains("out of range"));
    char *s = SENTINEL;
    EXPECT(nestcore_guests_name(g, n, &s), NESTCORE_STATUS_INVALID_ARGUMENT);
    CHECK(s == NULL);
    EXPECT(nestcore_guests_count(NULL, &n), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT(nestcore_guests_fixable(g, 0, NULL), NESTCORE_STATUS_NULL_ARGUMENT);

    char *json = NULL, *text = NULL;
    EXPECT_OK(nestcore_guests_to_json(g, &json));
    CHECK(contains(json, "\"schema_version\": 1") && contains(json, "\"code\": \"host_model_lacks\""));
    EXPECT_OK(nestcore_guests_render(g, &text));
    CHECK(contains(text, "0 of 5 guests will get svm"));
    nestcore_string_free(json);
    nestcore_string_free(text);

    /* Applying changes only the copy; programs are listed (defer 1). */
    char *applied = NULL;
    EXPECT(nestcore_guests_apply(g, h, 5, &applied), NESTCORE_STATUS_INVALID_ARGUMENT);
    EXPECT(nestcore_guests_apply(g, NULL, 1, &applied), NESTCORE_STATUS_NULL_ARGUMENT);
    EXPECT_OK(nestcore_guests_apply(g, h, 1, &applied));
    CHECK(contains(applied, "virsh") && contains(applied, "/etc/libvirt/qemu/epyc.xml"));
    CHECK(!contains(applied, "\"error\": \""));
    nestcore_string_free(applied);
    snprintf(path, sizeof path, "%s/etc/libvirt/qemu/epyc.xml", root);
    char *edited = read_file(path);
    CHECK(contains(edited, "<feature policy='require' name='svm'/>"));
    free(edited);
    nestcore_guests_free(g);
    g = NULL;
    EXPECT_OK(nestcore_guests_scan(h, 0, &g));
    size_t fixed = 0;
    for (size_t i = 0; g != NULL && i < n; i++) {
        int fix = 1;
        EXPECT_OK(nestcore_guests_fixable(g, i, &fix));
        fixed += fix == 0;
    }
    CHECK(fixed == 5);
    nestcore_guests_free(g);
    nestcore_guests_free(NULL);
    nestcore_host_free(h);
    CHECK(remove_tree(root) == 0);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s FIXTURE_DIR ENABLE_FIXTURE_DIR GUESTS_FIXTURE_DIR GUESTS_CPUID\n", argv[0]);
        return 2;
    }
    snprintf(fixture_root, sizeof fixture_root, "%s/root", argv[1]);
    snprintf(fixture_cpuid, sizeof fixture_cpuid, "%s/cpuid.txt", argv[1]);
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/nestcore-c-test-XXXXXX", t != NULL && t[0] != '\0' ? t : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }

    test_versions();
    test_status_names();
    test_last_error_buffer();
    test_host_new();
    test_check_arguments();
    test_fixture_report();
    test_layer_below();
    test_empty_root();
    test_threads();
    test_plan_arguments();
    test_plan_apply(argv[2]);
    test_kargs();
    test_cmdline_edit();
    test_guest_cpu();
    test_ensure_nested();
    test_guests(argv[3], argv[4]);
    const char *skip_live = getenv("NESTCORE_TEST_SKIP_LIVE");
    if (skip_live != NULL && strcmp(skip_live, "1") == 0) {
        printf("live checks skipped: NESTCORE_TEST_SKIP_LIVE=1\n");
    } else {
        test_live(0);
        test_live(1);
    }

    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/garbage-cpuid.txt", tmpdir);
    remove(path);
    rmdir(tmpdir);

    int p = atomic_load(&passed), f = atomic_load(&failed);
    printf("%d passed, %d failed\n", p, f);
    return f == 0 ? 0 : 1;
}
