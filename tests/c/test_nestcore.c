/*
 * Tests of libnestcore's C ABI through include/nestcore.h: every function, NULL arguments, buffers
 * that are too small, invalid UTF-8, out-of-range integers, a recorded fixture host, the last-error
 * text, and several threads at once. Built by scripts/test-c (static, shared, valgrind, ASan).
 *
 * Usage: test_nestcore FIXTURE_DIR   (FIXTURE_DIR holds root/ and cpuid.txt)
 * Set NESTCORE_TEST_SKIP_LIVE=1 to skip the checks of the live machine.
 */
#define _POSIX_C_SOURCE 200809L

#include "nestcore.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
                                nestcore_report_finding_message, nestcore_report_finding_remedy};
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
    CHECK(effective == NESTCORE_ANSWER_UNKNOWN); /* recorded roots are never opened */
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

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
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
    test_empty_root();
    test_threads();
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
