/*
 * nestcore_check: prints the verdict for this machine the way `nestcore check` does, through the
 * C ABI. Exit status: 0 when KVM is usable and nested virtualization is available to guests, 1
 * when not, 2 on an error.
 *
 * Build:  cc -std=c11 nestcore_check.c $(pkg-config --cflags --libs nestcore) -o nestcore_check
 * Usage:  nestcore_check [--json] [--no-probe] [--root DIR [--cpuid FILE]]
 */
#define _POSIX_C_SOURCE 200809L

#include <nestcore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Prints the last error of this thread after `what` failed with `status`, and returns 2. */
static int fail(const char *what, nestcore_status status) {
    size_t needed = 0;
    /* Ask for the size, then fetch the whole message: it is never truncated. */
    nestcore_last_error_message(NULL, 0, &needed);
    char *msg = malloc(needed);
    if (msg != NULL && nestcore_last_error_message(msg, needed, &needed) == NESTCORE_STATUS_OK) {
        fprintf(stderr, "nestcore_check: %s: %s (%s)\n", what, msg, nestcore_status_name(status));
    } else {
        fprintf(stderr, "nestcore_check: %s: %s\n", what, nestcore_status_name(status));
    }
    free(msg);
    return 2;
}

int main(int argc, char **argv) {
    int json = 0, probe = 1;
    const char *root = NULL, *cpuid = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--no-probe") == 0) {
            probe = 0;
        } else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else if (strcmp(argv[i], "--cpuid") == 0 && i + 1 < argc) {
            cpuid = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--json] [--no-probe] [--root DIR [--cpuid FILE]]\n", argv[0]);
            return 2;
        }
    }
    if (nestcore_abi_version() != NESTCORE_ABI_VERSION) {
        fprintf(stderr, "nestcore_check: built for C ABI %d, but libnestcore has %u\n",
                NESTCORE_ABI_VERSION, nestcore_abi_version());
        return 2;
    }

    nestcore_host *host = NULL;
    nestcore_status st = root != NULL ? nestcore_host_new_root(root, cpuid, &host)
                                      : nestcore_host_new_live(&host);
    if (st != NESTCORE_STATUS_OK) {
        return fail("cannot open the host", st);
    }
    nestcore_report *report = NULL;
    st = nestcore_check(host, probe && root == NULL, &report);
    nestcore_host_free(host);
    if (st != NESTCORE_STATUS_OK) {
        return fail("cannot check the host", st);
    }

    char *out = NULL;
    if (json) {
        st = nestcore_report_to_json(report, &out);
    } else {
        const char *no_color = getenv("NO_COLOR");
        int color = isatty(STDOUT_FILENO) && no_color == NULL; /* as nestcore check */
        st = nestcore_report_to_text(report, color, &out);
    }
    int code = 2;
    if (st == NESTCORE_STATUS_OK) {
        fputs(out, stdout);
        if (json) {
            fputc('\n', stdout);
        }
        st = nestcore_report_exit_code(report, &code);
    }
    nestcore_string_free(out);
    nestcore_report_free(report);
    if (st != NESTCORE_STATUS_OK) {
        return fail("cannot render the report", st);
    }
    return code;
}
