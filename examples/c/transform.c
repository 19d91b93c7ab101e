/*
 * transform: reads a file from a granted directory, converts its text as
 * $MODE says, writes the result, reports on stdout and stderr and exits with
 * the code given as third argument. Same behaviour as the Rust, C++, Go and
 * AssemblyScript examples.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage = "usage: transform INPUT OUTPUT [EXIT_CODE]";

static void fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("transform: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

/* Reads the whole file; returns NULL with errno set on failure. */
static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        free(buf);
        errno = err;
        return NULL;
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) fail(2, "%s", usage);
    const char *input = argv[1], *output = argv[2];
    int exit_code = 0;
    if (argc == 4) {
        char *end;
        errno = 0;
        long n = strtol(argv[3], &end, 10);
        if (errno || *argv[3] == '\0' || *end != '\0' || n < 0 || n > 125)
            fail(2, "exit code must be an integer from 0 to 125, got \"%s\"", argv[3]);
        exit_code = (int)n;
    }
    const char *mode = getenv("MODE");
    if (!mode || !*mode) mode = "upper";
    int upper = strcmp(mode, "upper") == 0;
    if (!upper && strcmp(mode, "lower") != 0)
        fail(2, "unknown MODE \"%s\" (expected upper or lower)", mode);

    size_t len = 0;
    unsigned char *data = read_file(input, &len);
    if (!data) fail(1, "cannot read %s: %s", input, strerror(errno));

    size_t lines = 0, words = 0;
    int in_word = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = data[i];
        if (c == '\n') lines++;
        int space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
        if (!space && !in_word) words++;
        in_word = !space;
        if (upper && c >= 'a' && c <= 'z') c -= 'a' - 'A';
        else if (!upper && c >= 'A' && c <= 'Z') c += 'a' - 'A';
        data[i] = c;
    }

    FILE *out = fopen(output, "wb");
    if (!out) fail(1, "cannot write %s: %s", output, strerror(errno));
    if (fwrite(data, 1, len, out) != len || fclose(out) != 0)
        fail(1, "cannot write %s: %s", output, strerror(errno));

    printf("transform (c)\n");
    printf("mode: %s\n", mode);
    printf("input: %s: %zu bytes, %zu lines, %zu words\n", input, len, lines, words);
    fflush(stdout);
    fprintf(stderr, "wrote %zu bytes to %s\n", len, output);
    free(data);
    return exit_code;
}
