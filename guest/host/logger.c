/* nv-logger: writes a container's output in dockerd's json-file format, with its rotation.
 *
 * conmon only writes k8s-file records ("TIME STREAM F|P CONTENT\n"). For the json-file and local drivers it
 * writes them into a fifo instead of a file, and this process (one per running container, ~100 KB) turns each
 * record into dockerd's line {"log":"...","stream":"stdout","time":"...Z"} in the log file, rotating it as
 * dockerd does (--log-opt max-size / max-file / compress). It exits when conmon closes the fifo (the container
 * is gone), so a reader that waits for this process has the whole log (runtime/logwriter.py).
 *
 * argv: nv-logger FIFO OUTPUT MAX_SIZE MAX_FILE COMPRESS PIDFILE
 *   MAX_SIZE bytes (-1: unlimited), MAX_FILE >= 1, COMPRESS 0|1 (gzip the rotated files, as dockerd does).
 * It detaches as conmon does: the command returns once the fifo is open for reading (conmon may open it for
 * writing at once) and PIDFILE names the process that stays. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_FOR_WRITER_MS 120000 /* conmon opens the fifo at once; a create that failed never does */

static const char *out_path;
static long long max_size = -1, cur_size;
static int max_file = 1, compress_rotated, out_fd = -1;
static pid_t gzip_pid;

static void open_output(int truncate) {
    out_fd = open(out_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0640);
    if (out_fd < 0) {
        perror("nv-logger: open log");
        exit(1);
    }
    struct stat st;
    cur_size = fstat(out_fd, &st) == 0 ? st.st_size : 0;
}

static void rotated_name(char *buf, size_t n, int i, int gz) {
    snprintf(buf, n, "%s.%d%s", out_path, i, gz ? ".gz" : "");
}

/* dockerd's rotation: the oldest goes, every other moves up one, the current becomes .1 (gzipped when asked). */
static void rotate(void) {
    char from[4096], to[4096];
    if (max_file < 2) { /* one file: start it again */
        close(out_fd);
        open_output(1);
        return;
    }
    if (gzip_pid > 0) { /* the previous .1 must be compressed before it moves */
        waitpid(gzip_pid, NULL, 0);
        gzip_pid = 0;
    }
    /* Only the files that exist move: a huge max-file costs nothing until there are that many files. */
    int have = 0;
    struct stat st;
    while (have < max_file - 1) {
        rotated_name(from, sizeof from, have + 1, compress_rotated);
        if (stat(from, &st) != 0) break;
        have++;
    }
    if (have == max_file - 1) {
        rotated_name(to, sizeof to, max_file - 1, compress_rotated);
        unlink(to);
        have--;
    }
    for (int i = have; i >= 1; i--) {
        rotated_name(from, sizeof from, i, compress_rotated);
        rotated_name(to, sizeof to, i + 1, compress_rotated);
        rename(from, to);
    }
    rotated_name(to, sizeof to, 1, 0);
    close(out_fd);
    rename(out_path, to);
    open_output(1);
    if (compress_rotated) {
        gzip_pid = fork();
        if (gzip_pid == 0) {
            execlp("gzip", "gzip", "-f", "-q", to, (char *)NULL);
            _exit(127);
        }
    }
}

static void put(char **p, const char *s, size_t n) {
    memcpy(*p, s, n);
    *p += n;
}

/* Length of the valid UTF-8 sequence at s (max n bytes), 0 if invalid: Go's encoder writes \ufffd for those. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; c &= 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; c &= 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; c &= 0x07; }
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    return len;
}

/* A JSON string body as Go's encoding/json writes it (HTML-safe: <, >, & escaped; U+2028/9 escaped). */
static void json_escape(char **p, const unsigned char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c >= 0x80) {
            size_t l = utf8_len(s + i, n - i);
            if (l == 0) {
                put(p, "\\ufffd", 6);
                i++;
            } else if (l == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
                put(p, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
                i += 3;
            } else {
                put(p, (const char *)s + i, l);
                i += l;
            }
            continue;
        }
        i++;
        switch (c) {
        case '"': put(p, "\\\"", 2); break;
        case '\\': put(p, "\\\\", 2); break;
        case '\n': put(p, "\\n", 2); break;
        case '\r': put(p, "\\r", 2); break;
        case '\t': put(p, "\\t", 2); break;
        default:
            if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                put(p, u, 6);
            } else {
                *(*p)++ = (char)c;
            }
        }
    }
}

/* conmon's 2024-01-02T03:04:05.123456780+00:00 (it runs with TZ=UTC) → Go's RFC3339Nano: trailing zeros of
 * the fraction dropped, Z. */
static void docker_time(char **p, const char *ts, size_t n) {
    if (n > 6 && memcmp(ts + n - 6, "+00:00", 6) == 0) n -= 6;
    const char *dot = memchr(ts, '.', n);
    if (dot) {
        size_t end = n;
        while (end > (size_t)(dot - ts) + 1 && ts[end - 1] == '0') end--;
        if (end == (size_t)(dot - ts) + 1) end--; /* no fraction left: no dot either */
        n = end;
    }
    put(p, ts, n);
    *(*p)++ = 'Z';
}

/* One k8s-file record → one json-file line, written with one write(). */
static void convert(const char *rec, size_t n) {
    const char *sp1 = memchr(rec, ' ', n);
    if (!sp1) return;
    const char *sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - rec));
    if (!sp2) return;
    const char *tag = sp2 + 1;
    const char *content = tag + 2 <= rec + n ? tag + 2 : rec + n;
    size_t clen = (size_t)(rec + n - content);
    int partial = tag < rec + n && *tag == 'P';
    const char *stream = (size_t)(sp2 - sp1 - 1) == 6 && memcmp(sp1 + 1, "stderr", 6) == 0 ? "stderr" : "stdout";

    size_t cap = clen * 6 + (size_t)(sp1 - rec) + 96;
    char *line = malloc(cap), *p = line;
    if (!line) return;
    put(&p, "{\"log\":\"", 8);
    json_escape(&p, (const unsigned char *)content, clen);
    if (!partial) put(&p, "\\n", 2);
    put(&p, "\",\"stream\":\"", 12);
    put(&p, stream, 6);
    put(&p, "\",\"time\":\"", 10);
    docker_time(&p, rec, (size_t)(sp1 - rec));
    put(&p, "\"}\n", 3);
    size_t len = (size_t)(p - line);

    if (max_size > 0 && cur_size >= max_size) rotate();
    for (size_t off = 0; off < len;) {
        ssize_t w = write(out_fd, line + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            break; /* a full disk loses this line, not the container */
        }
        off += (size_t)w;
    }
    cur_size += (long long)len;
    free(line);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: nv-logger FIFO OUTPUT MAX_SIZE MAX_FILE COMPRESS PIDFILE\n");
        return 2;
    }
    out_path = argv[2];
    max_size = atoll(argv[3]);
    max_file = atoi(argv[4]) < 1 ? 1 : atoi(argv[4]);
    compress_rotated = atoi(argv[5]) != 0;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* a terminal's ^C reaches the foreground CLI, not the container's log */

    int in = open(argv[1], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (in < 0) {
        perror("nv-logger: open fifo");
        return 1;
    }
    open_output(0);
    pid_t child = fork();
    if (child < 0) {
        perror("nv-logger: fork");
        return 1;
    }
    if (child > 0) {
        FILE *f = fopen(argv[6], "w");
        if (!f || fprintf(f, "%d\n", (int)child) < 0 || fclose(f) != 0) {
            kill(child, SIGKILL);
            perror("nv-logger: pid file");
            return 1;
        }
        return 0;
    }
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC); /* the starter reads our stderr until it closes */
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
    }
    /* No POLLHUP before a writer has come: wait for conmon, then read until it has gone. */
    struct pollfd pfd = {in, POLLIN, 0};
    int r;
    while ((r = poll(&pfd, 1, WAIT_FOR_WRITER_MS)) < 0 && errno == EINTR) {
    }
    if (r == 0) return 0;
    fcntl(in, F_SETFL, fcntl(in, F_GETFL) & ~O_NONBLOCK);

    size_t cap = 65536, have = 0;
    char *buf = malloc(cap);
    if (!buf) return 1;
    for (;;) {
        if (have == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) break;
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(in, buf + have, cap - have);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        have += (size_t)got;
        size_t start = 0;
        for (char *nl; (nl = memchr(buf + start, '\n', have - start)) != NULL;) {
            convert(buf + start, (size_t)(nl - (buf + start)));
            start = (size_t)(nl - buf) + 1;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
    }
    if (have) convert(buf, have);
    if (gzip_pid > 0) waitpid(gzip_pid, NULL, 0);
    return 0;
}
