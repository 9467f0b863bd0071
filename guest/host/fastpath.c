/* nanovisor-vm-runtime: the runc commands of a container's steady state (start, state, kill, delete, exec) are
 * served here, and only here, in a millisecond instead of a Python start-up (~60-90 ms on these hosts); the rest
 * (create and run, which boot the VM, and list, pause, resume, ps, events, update, features) is handed to the
 * Python runtime (src/nanovisor/runtime/vm/cli.py) with the very same argv. exec's relay, the process conmon
 * waits for, is this small process too.
 * Reads the state the Python side writes (src/nanovisor/runtime/vm/state.py) and talks to the shim's control
 * socket with one-line JSON requests. Built by `python -m nanovisor.runtime.vm.guest build`;
 * NV_PYTHON is the interpreter that owns the nanovisor package. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h" /* generated from protocol.py (guest.py -I) */

#ifndef NV_PYTHON
#define NV_PYTHON "/usr/bin/python3"
#endif

static const char *root = "/run/nanovisor-vm";
static const char *log_path = NULL;
static int log_json = 0;
static int is_exec = 0;

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", msg);
    if (log_path) {
        FILE *f = fopen(log_path, "a");
        if (f) {
            char ts[64];
            time_t t = time(NULL);
            strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
            if (log_json) {
                fprintf(f, "{\"level\": \"error\", \"msg\": \"");
                for (char *c = msg; *c; c++) {
                    if (*c == '"' || *c == '\\') fputc('\\', f);
                    if ((unsigned char)*c >= 0x20) fputc(*c, f);
                }
                fprintf(f, "\", \"time\": \"%s\"}\n", ts);
            } else {
                fprintf(f, "time=\"%s\" level=error msg=\"%s\"\n", ts, msg);
            }
            fclose(f);
        }
    }
    exit(is_exec ? 255 : 1);
}

static char *slurp(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[n] = 0;
    return buf;
}

static char cdir[4096];

static int exists_in(const char *name) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", cdir, name);
    return access(p, F_OK) == 0;
}

static long long start_time(long pid) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    char *s = slurp(p);
    if (!s) return -1;
    char *r = strrchr(s, ')');
    long long v = -1;
    if (r) {
        int field = 0;
        for (char *tok = strtok(r + 1, " "); tok; tok = strtok(NULL, " "))
            if (++field == 20) { v = atoll(tok); break; }
    }
    free(s);
    return v;
}

static long shim_pid(void) {
    char p[4200];
    snprintf(p, sizeof p, "%s/shim", cdir);
    char *s = slurp(p);
    if (!s) return 0;
    long pid = 0;
    long long st = -2;
    sscanf(s, "%ld %lld", &pid, &st);
    free(s);
    return pid > 0 && start_time(pid) == st ? pid : 0;
}

static const char *status(void) {
    if (!shim_pid() || exists_in("exit")) return "stopped";
    if (exists_in("paused")) return "paused";
    if (exists_in("started")) return "running";
    return "created";
}

/* state.py's rule: ^[A-Za-z0-9][A-Za-z0-9_.+-]*$, at most 1024 bytes */
static void check_id(const char *id) {
    int ok = isalnum((unsigned char)id[0]) && strlen(id) <= 1024;
    for (const char *c = id; ok && *c; c++) ok = isalnum((unsigned char)*c) || strchr("_.+-", *c);
    if (!ok) fail("invalid container id format: %s", id);
}

static void need_container(const char *id) {
    check_id(id);
    snprintf(cdir, sizeof cdir, "%s/%s", root, id);
    if (!exists_in("oci-state.json")) fail("container does not exist");
}

/* connect to a unix socket at any path length (sun_path is 108 bytes; the engine's state paths are longer) */
static int unix_connect(const char *dirpath, const char *name) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int dfd = -1;
    if (strlen(dirpath) + strlen(name) + 2 < sizeof a.sun_path) {
        snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", dirpath, name);
    } else {
        dfd = open(dirpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) return -1;
        snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/%s", dfd, name);
    }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r = connect(s, (struct sockaddr *)&a, sizeof a);
    if (dfd >= 0) close(dfd);
    if (r < 0) { close(s); return -1; }
    return s;
}

/* One request line to the shim, one reply line back; an "error" member becomes our error. */
static void ctl_call(const char *req) {
    int s = unix_connect(cdir, "ctl.sock");
    if (s < 0) fail("container not running");
    size_t n = strlen(req);
    if (write(s, req, n) != (ssize_t)n) fail("container not running");
    char buf[4096];
    size_t have = 0;
    ssize_t r;
    while (have < sizeof buf - 1 && (r = read(s, buf + have, sizeof buf - 1 - have)) > 0) {
        have += (size_t)r;
        if (memchr(buf, '\n', have)) break;
    }
    buf[have] = 0;
    close(s);
    if (!have) fail("container not running");
    char *e = strstr(buf, "\"error\": \"");
    if (e) {
        e += 10;
        char *end = strchr(e, '"');
        if (end) *end = 0;
        fail("%s", e);
    }
}

static int parse_signal(const char *s) {
    static const struct { const char *n; int v; } t[] = {
        {"HUP", 1}, {"INT", 2}, {"QUIT", 3}, {"ILL", 4}, {"TRAP", 5}, {"ABRT", 6}, {"IOT", 6}, {"BUS", 7},
        {"FPE", 8}, {"KILL", 9}, {"USR1", 10}, {"SEGV", 11}, {"USR2", 12}, {"PIPE", 13}, {"ALRM", 14},
        {"TERM", 15}, {"STKFLT", 16}, {"CHLD", 17}, {"CONT", 18}, {"STOP", 19}, {"TSTP", 20}, {"TTIN", 21},
        {"TTOU", 22}, {"URG", 23}, {"XCPU", 24}, {"XFSZ", 25}, {"VTALRM", 26}, {"PROF", 27}, {"WINCH", 28},
        {"IO", 29}, {"POLL", 29}, {"PWR", 30}, {"SYS", 31}};
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && !*end) return (int)v;
    const char *n = strncasecmp(s, "SIG", 3) ? s : s + 3;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcasecmp(n, t[i].n)) return t[i].v;
    fail("unknown signal \"%s\"", s);
}

static void kill_group_if(long pid, const char *expect) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/cmdline", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    if (strstr(buf, expect)) kill((pid_t)-pid, SIGKILL);
}

static int gone(long pid) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    char *s = slurp(p);
    if (!s) return 1;
    char *r = strrchr(s, ')');
    int z = !r || r[2] == 'Z';
    free(s);
    return z;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void destroy(void) {
    long pids[3] = {0, 0, 0};
    pids[0] = shim_pid();
    if (pids[0]) kill((pid_t)pids[0], SIGKILL);
    char p[4200];
    snprintf(p, sizeof p, "%s/pids", cdir);
    char *s = slurp(p);
    if (s) {
        sscanf(s, "%ld %ld", &pids[1], &pids[2]);
        free(s);
        if (pids[1] > 0) kill_group_if(pids[1], "qemu");
        if (pids[2] > 0) kill_group_if(pids[2], "virtiofsd");
    }
    for (int i = 0; i < 1000; i++) { /* up to 10 s, as the Python side */
        int all = 1;
        for (int j = 0; j < 3; j++) if (pids[j] > 0 && !gone(pids[j])) all = 0;
        if (all) break;
        usleep(10000);
    }
    nftw(cdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void print_state(void) {
    char p[4200];
    snprintf(p, sizeof p, "%s/oci-state.json", cdir);
    char *s = slurp(p);
    if (!s) fail("container does not exist");
    const char *st = status();
    /* the file says "status": "created" and the shim's pid; fill in what is true now */
    char *k = strstr(s, "\"status\": \"created\"");
    char *pk = strstr(s, "\"pid\": ");
    for (char *c = s; *c; c++) {
        if (c == k) { printf("\"status\": \"%s\"", st); c += strlen("\"status\": \"created\"") - 1; continue; }
        if (c == pk && !strcmp(st, "stopped")) {
            printf("\"pid\": 0");
            c += 7;
            while (*c >= '0' && *c <= '9') c++;
            c--;
            continue;
        }
        putchar(*c);
    }
    putchar('\n');
    free(s);
}

/* ---- a minimal JSON reader, enough for an OCI process.json ---- */
enum jt { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
struct jv { enum jt t; double num; char *str; int n; char **keys; struct jv **items; };
static const char *jp;

static void jws(void) { while (*jp == ' ' || *jp == '\n' || *jp == '\r' || *jp == '\t') jp++; }

static char *jstr(void) {
    size_t cap = 64, n = 0;
    char *out = malloc(cap);
    jp++; /* opening quote */
    while (*jp && *jp != '"') {
        if (n + 8 >= cap) out = realloc(out, cap *= 2);
        char ch = *jp++;
        if (ch != '\\') { out[n++] = ch; continue; }
        ch = *jp++;
        switch (ch) {
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'u': {
            unsigned cp = (unsigned)strtoul((char[5]){jp[0], jp[1], jp[2], jp[3], 0}, NULL, 16);
            jp += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && jp[0] == '\\' && jp[1] == 'u') {
                unsigned lo = (unsigned)strtoul((char[5]){jp[2], jp[3], jp[4], jp[5], 0}, NULL, 16);
                jp += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp < 0x80) out[n++] = (char)cp;
            else if (cp < 0x800) { out[n++] = (char)(0xc0 | cp >> 6); out[n++] = (char)(0x80 | (cp & 0x3f)); }
            else if (cp < 0x10000) { out[n++] = (char)(0xe0 | cp >> 12); out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f)); out[n++] = (char)(0x80 | (cp & 0x3f)); }
            else { out[n++] = (char)(0xf0 | cp >> 18); out[n++] = (char)(0x80 | ((cp >> 12) & 0x3f)); out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f)); out[n++] = (char)(0x80 | (cp & 0x3f)); }
            break;
        }
        default: out[n++] = ch;
        }
    }
    if (*jp == '"') jp++;
    out[n] = 0;
    return out;
}

static struct jv *jparse(void) {
    jws();
    struct jv *v = calloc(1, sizeof *v);
    if (*jp == '{' || *jp == '[') {
        int obj = *jp == '{';
        v->t = obj ? J_OBJ : J_ARR;
        jp++;
        jws();
        while (*jp && *jp != (obj ? '}' : ']')) {
            v->keys = realloc(v->keys, sizeof(char *) * (size_t)(v->n + 1));
            v->items = realloc(v->items, sizeof(struct jv *) * (size_t)(v->n + 1));
            v->keys[v->n] = NULL;
            if (obj) {
                jws();
                if (*jp != '"') fail("invalid process JSON");
                v->keys[v->n] = jstr();
                jws();
                if (*jp++ != ':') fail("invalid process JSON");
            }
            v->items[v->n++] = jparse();
            jws();
            if (*jp == ',') jp++;
            jws();
        }
        if (*jp) jp++;
    } else if (*jp == '"') {
        v->t = J_STR;
        v->str = jstr();
    } else if (!strncmp(jp, "true", 4) || !strncmp(jp, "false", 5)) {
        v->t = J_BOOL;
        v->num = *jp == 't';
        jp += *jp == 't' ? 4 : 5;
    } else if (!strncmp(jp, "null", 4)) {
        jp += 4;
    } else {
        char *end;
        v->t = J_NUM;
        v->num = strtod(jp, &end);
        if (end == jp) fail("invalid process JSON");
        jp = end;
    }
    return v;
}

static struct jv *jget(struct jv *o, const char *k) {
    if (!o || o->t != J_OBJ) return NULL;
    for (int i = 0; i < o->n; i++) if (!strcmp(o->keys[i], k)) return o->items[i];
    return NULL;
}

/* ---- exec: an OCI process -> the agent's kv encoding (the same keys bundle.process_kv writes for create) ---- */
static struct buf_s { char *p; size_t n; } kvb;

static void kv_add(const char *k, const char *v) {
    size_t kl = strlen(k) + 1, vl = strlen(v) + 1;
    kvb.p = realloc(kvb.p, kvb.n + kl + vl);
    memcpy(kvb.p + kvb.n, k, kl);
    memcpy(kvb.p + kvb.n + kl, v, vl);
    kvb.n += kl + vl;
}

/* "a b c" from a JSON array of strings (plus extra names), as one kv value */
static void kv_words(const char *k, struct jv *arr, char **extra, int nextra) {
    size_t cap = 64, n = 0;
    char *out = calloc(1, cap);
    for (int i = 0; i < (arr && arr->t == J_ARR ? arr->n : 0) + nextra; i++) {
        const char *w = arr && arr->t == J_ARR && i < arr->n ? (arr->items[i]->t == J_STR ? arr->items[i]->str : NULL)
                                                            : extra[i - (arr && arr->t == J_ARR ? arr->n : 0)];
        if (!w) continue;
        while (n + strlen(w) + 2 >= cap) out = realloc(out, cap *= 2);
        n += (size_t)sprintf(out + n, "%s%s", n ? " " : "", w);
    }
    kv_add(k, out);
    free(out);
}

/* What `exec` overrides of the process (runc's flags for the argv form). */
struct exec_opts {
    char **args, **env, **caps, *cwd, *user;
    int nargs, nenv, ncaps, tty, nnp;
};

static int process_kv(struct jv *p, struct exec_opts *o) {
    struct jv *a = jget(p, "args"), *e = jget(p, "env"), *u = jget(p, "user");
    if (o->nargs) for (int i = 0; i < o->nargs; i++) kv_add("arg", o->args[i]);
    else if (!a || a->t != J_ARR || !a->n) fail("exec failed: args must not be empty");
    else for (int i = 0; i < a->n; i++) if (a->items[i]->t == J_STR) kv_add("arg", a->items[i]->str);
    for (int i = 0; e && e->t == J_ARR && i < e->n; i++) if (e->items[i]->t == J_STR) kv_add("env", e->items[i]->str);
    for (int i = 0; i < o->nenv; i++) kv_add("env", o->env[i]);
    struct jv *cwd = jget(p, "cwd");
    kv_add("cwd", o->cwd ? o->cwd : cwd && cwd->t == J_STR && *cwd->str ? cwd->str : "/");
    char num[64], groups[2048] = "";
    struct jv *uid = jget(u, "uid"), *gid = jget(u, "gid"), *ag = jget(u, "additionalGids"), *um = jget(u, "umask");
    if (o->user) { /* -u UID[:GID] replaces the user */
        char *colon = strchr(o->user, ':');
        snprintf(num, sizeof num, "%ld", strtol(o->user, NULL, 10));
        kv_add("uid", num);
        snprintf(num, sizeof num, "%ld", colon ? strtol(colon + 1, NULL, 10) : 0L);
        kv_add("gid", num);
        ag = NULL;
    } else {
        snprintf(num, sizeof num, "%.0f", uid ? uid->num : 0);
        kv_add("uid", num);
        snprintf(num, sizeof num, "%.0f", gid ? gid->num : 0);
        kv_add("gid", num);
    }
    for (int i = 0; ag && ag->t == J_ARR && i < ag->n; i++) {
        size_t l = strlen(groups);
        snprintf(groups + l, sizeof groups - l, "%s%.0f", i ? "," : "", ag->items[i]->num);
    }
    kv_add("groups", groups);
    if (um && um->t == J_NUM) { snprintf(num, sizeof num, "%o", (unsigned)um->num); kv_add("umask", num); }
    /* process security (issue 11): the agent applies these as runc does */
    struct jv *caps = jget(p, "capabilities");
    if (caps && caps->t == J_OBJ) {
        static const char *sets[] = {"bounding", "effective", "permitted", "inheritable", "ambient"};
        for (int i = 0; i < 5; i++) {
            char key[32];
            snprintf(key, sizeof key, "cap.%s", sets[i]);
            kv_words(key, jget(caps, sets[i]), o->caps, i < 3 ? o->ncaps : 0); /* --cap: bounding/effective/permitted */
        }
    }
    struct jv *nnp = jget(p, "noNewPrivileges");
    if (o->nnp || (nnp && nnp->t == J_BOOL && nnp->num)) kv_add("nnp", "1");
    struct jv *rl = jget(p, "rlimits");
    for (int i = 0; rl && rl->t == J_ARR && i < rl->n; i++) {
        struct jv *t = jget(rl->items[i], "type"), *soft = jget(rl->items[i], "soft"), *hard = jget(rl->items[i], "hard");
        if (!t || t->t != J_STR || !soft || !hard) continue;
        char v[160];
        snprintf(v, sizeof v, "%s %.0f %.0f", t->str, soft->num, hard->num);
        kv_add("rlimit", v);
    }
    struct jv *oom = jget(p, "oomScoreAdj");
    if (oom && oom->t == J_NUM) { snprintf(num, sizeof num, "%.0f", oom->num); kv_add("oom_score_adj", num); }
    struct jv *t = jget(p, "terminal"), *cs = jget(p, "consoleSize");
    int tty = o->tty || (t && t->t == J_BOOL && t->num);
    if (tty) {
        kv_add("tty", "1");
        struct jv *h = jget(cs, "height"), *w = jget(cs, "width");
        if (h && w && h->num > 0 && w->num > 0) {
            snprintf(num, sizeof num, "%.0f %.0f", h->num, w->num);
            kv_add("winsize", num);
        }
    }
    return tty;
}

static struct jv *json_file(const char *file, const char *what) {
    char *text = slurp(file);
    if (!text) fail("exec failed: open %s: %s", file, strerror(errno));
    jp = text;
    struct jv *v = jparse();
    if (v->t != J_OBJ) fail("exec failed: invalid %s", what);
    return v;
}

static void send_console(const char *sock_path, int master) {
    char d[4096];
    snprintf(d, sizeof d, "%s", sock_path);
    char *slash = strrchr(d, '/');
    int s = -1;
    if (slash) { *slash = 0; s = unix_connect(*d ? d : "/", slash + 1); }
    if (s < 0) fail("exec failed: connect console socket %s: %s", sock_path, strerror(errno));
    char name[] = "/dev/ptmx";
    struct iovec iov = {name, sizeof name - 1};
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &master, sizeof(int));
    if (sendmsg(s, &m, 0) < 0) fail("exec failed: send console: %s", strerror(errno));
    close(s);
}

static void xwrite(int fd, const void *d, size_t n) {
    const char *p = d;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) { struct pollfd q = {fd, POLLOUT, 0}; poll(&q, 1, -1); continue; }
        if (w < 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void send_frame(int s, uint8_t type, const void *d, uint32_t len) {
    struct nv_hdr h = {type, {0, 0, 0}, 0, len};
    xwrite(s, &h, sizeof h);
    if (len) xwrite(s, d, len);
}

static void exit_like(int status) __attribute__((noreturn));
static void exit_like(int status) {
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        struct rlimit r = {0, 0};
        setrlimit(RLIMIT_CORE, &r);
        signal(sig, SIG_DFL);
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, sig);
        sigprocmask(SIG_UNBLOCK, &s, NULL);
        kill(getpid(), sig);
        _exit(128 + sig);
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 255);
}

/* Relay between our stdio (or the pty) and the exec'd process; report "" or the error on report_fd (-1: print
 * it, as a foreground runc exec does). Exits with the process' wait status. */
static void relay(int tty_fd, int report_fd) __attribute__((noreturn));
static void relay(int tty_fd, int report_fd) {
    int s = unix_connect(cdir, "ctl.sock");
    if (s < 0) {
        if (report_fd >= 0) { xwrite(report_fd, "container not running", 21); _exit(255); }
        fail("exec failed: container not running");
    }
    const char *op = "{\"op\": \"exec\"}\n";
    xwrite(s, op, strlen(op));
    if (tty_fd >= 0 && !memmem(kvb.p, kvb.n, "winsize", 8)) {
        struct winsize w = {0};
        if (ioctl(tty_fd, TIOCGWINSZ, &w) == 0 && w.ws_row && w.ws_col) {
            char ws[32];
            snprintf(ws, sizeof ws, "%u %u", w.ws_row, w.ws_col);
            kv_add("winsize", ws);
        }
    }
    send_frame(s, NV_EXEC, kvb.p, (uint32_t)kvb.n);
    sigset_t mask;
    sigemptyset(&mask);
    int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) sigaddset(&mask, fwd[i]);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);
    int in_fd = tty_fd >= 0 ? tty_fd : 0, in_open = 0, started = 0;
    char *buf = malloc(NV_MAX_PAYLOAD + sizeof(struct nv_hdr));
    size_t have = 0;
    for (;;) {
        struct pollfd pf[3] = {{s, POLLIN, 0}, {sfd, POLLIN, 0}, {in_open ? in_fd : -1, POLLIN, 0}};
        if (poll(pf, 3, -1) < 0) continue;
        if (pf[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {
                char m[32];
                if (si.ssi_signo == SIGWINCH) {
                    struct winsize w = {0};
                    if (tty_fd < 0 || ioctl(tty_fd, TIOCGWINSZ, &w) < 0) continue;
                    int n = snprintf(m, sizeof m, "%u %u", w.ws_row, w.ws_col);
                    send_frame(s, NV_RESIZE, m, (uint32_t)n);
                } else {
                    int n = snprintf(m, sizeof m, "%u 0", si.ssi_signo);
                    send_frame(s, NV_KILL, m, (uint32_t)n);
                }
            }
        }
        if (pf[2].revents) {
            char b[65536];
            ssize_t n = read(in_fd, b, sizeof b);
            if (n > 0) send_frame(s, NV_STDIN, b, (uint32_t)n);
            else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                in_open = 0;
                if (tty_fd < 0) send_frame(s, NV_STDIN, NULL, 0);
            }
        }
        if (!pf[0].revents) continue;
        ssize_t n = read(s, buf + have, NV_MAX_PAYLOAD + sizeof(struct nv_hdr) - have);
        if (n <= 0) {
            if (!started && report_fd >= 0) { xwrite(report_fd, "container stopped", 17); _exit(255); }
            exit_like(SIGKILL);
        }
        have += (size_t)n;
        while (have >= sizeof(struct nv_hdr)) {
            struct nv_hdr h;
            memcpy(&h, buf, sizeof h);
            if (have < sizeof h + h.len) break;
            char *d = buf + sizeof h;
            if (h.type == NV_CREATED) {
                if (h.len) {
                    if (report_fd >= 0) { xwrite(report_fd, d, h.len); _exit(255); }
                    fprintf(stderr, "exec failed: unable to start container process: %.*s\n", (int)h.len, d);
                    _exit(255);
                }
                started = 1;
                if (report_fd >= 0) { xwrite(report_fd, "", 1); close(report_fd); report_fd = -1; }
                in_open = 1;
                if (fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK) < 0) {
                    in_open = 0;
                    if (tty_fd < 0) send_frame(s, NV_STDIN, NULL, 0);
                }
            } else if ((h.type == NV_STDOUT || h.type == NV_STDERR) && h.len) {
                xwrite(tty_fd >= 0 ? tty_fd : (h.type == NV_STDOUT ? 1 : 2), d, h.len);
            } else if (h.type == NV_EXIT) {
                d[h.len] = 0;
                exit_like(atoi(d));
            }
            memmove(buf, buf + sizeof h + h.len, have - sizeof h - h.len);
            have -= sizeof h + h.len;
        }
    }
}

static void exec_usage(void) __attribute__((noreturn));
static void exec_usage(void) { fail("runc: \"exec\" requires a minimum of 2 argument(s)"); }

static int cmd_exec(char **rest) {
    const char *process = NULL, *pid_file = NULL, *console = NULL;
    struct exec_opts o = {0};
    int detach = 0;
    o.env = calloc(256, sizeof(char *));
    o.caps = calloc(64, sizeof(char *));
    is_exec = 1;
    for (; rest[0] && rest[0][0] == '-'; rest++) {
        char *a = rest[0], *eq = strchr(a, '=');
        if (!strcmp(a, "--")) { rest++; break; }
#define OPT(name) (!strncmp(a, name, strlen(name)) && (a[strlen(name)] == 0 || a[strlen(name)] == '='))
#define VAL() (eq ? eq + 1 : (rest[1] ? *++rest : (exec_usage(), "")))
        if (OPT("--process") || OPT("-p")) process = VAL();
        else if (OPT("--pid-file")) pid_file = VAL();
        else if (OPT("--console-socket")) console = VAL();
        else if (OPT("--cwd")) o.cwd = VAL();
        else if (OPT("--user") || OPT("-u")) o.user = VAL();
        else if (OPT("--env") || OPT("-e")) { if (o.nenv < 255) o.env[o.nenv++] = VAL(); }
        else if (OPT("--cap") || OPT("-c")) { if (o.ncaps < 63) o.caps[o.ncaps++] = VAL(); }
        else if (OPT("--preserve-fds") || OPT("--process-label") || OPT("--apparmor") || OPT("--cgroup")) (void)VAL();
        else if (!strcmp(a, "--detach") || !strcmp(a, "-d")) detach = 1;
        else if (!strcmp(a, "--tty") || !strcmp(a, "-t")) o.tty = 1;
        else if (!strcmp(a, "--no-new-privs")) o.nnp = 1;
        else fail("flag provided but not defined: %s", a);
    }
    if (!rest[0]) exec_usage();
    need_container(rest[0]);
    const char *st = status();
    if (!strcmp(st, "stopped")) fail("exec failed: cannot exec in a stopped container");
    if (!strcmp(st, "paused")) fail("exec failed: cannot exec in a paused container");
    struct jv *proc;
    if (process) {
        proc = json_file(process, "process");
    } else { /* runc's argv form: the bundle's process with the command and flags applied */
        if (!rest[1]) fail("exec: args must not be empty");
        o.args = rest + 1;
        while (o.args[o.nargs]) o.nargs++;
        char p[4200];
        snprintf(p, sizeof p, "%s/oci-state.json", cdir);
        struct jv *bundle = jget(json_file(p, "state"), "bundle");
        if (!bundle || bundle->t != J_STR) fail("container does not exist");
        snprintf(p, sizeof p, "%s/config.json", bundle->str);
        proc = jget(json_file(p, "config.json"), "process");
    }
    int tty = process_kv(proc, &o), tty_fd = -1;
    if (tty) {
        if (console) {
            int m, sl;
            if (openpty(&m, &sl, NULL, NULL, NULL) < 0) fail("exec failed: openpty: %s", strerror(errno));
            struct termios t;
            tcgetattr(sl, &t);
            cfmakeraw(&t);
            tcsetattr(sl, TCSANOW, &t);
            send_console(console, m);
            close(m);
            tty_fd = sl;
        } else if (isatty(0)) {
            tty_fd = 0;
        } else if (detach) {
            fail("cannot allocate tty if runc will detach without setting console socket");
        }
    }
    if (!detach) relay(tty_fd, -1);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) fail("exec failed: pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        setsid();
        if (tty_fd >= 0) ioctl(tty_fd, TIOCSCTTY, 0);
        relay(tty_fd, p[1]);
    }
    close(p[1]);
    if (tty_fd >= 0) close(tty_fd);
    char msg[1024];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof msg - 1 && (r = read(p[0], msg + n, sizeof msg - 1 - n)) > 0) n += (size_t)r;
    msg[n] = 0;
    if (n == 0 || msg[0] != 0) {
        waitpid(pid, NULL, 0);
        fail("exec failed: unable to start container process: %s", n ? msg : "relay died");
    }
    if (pid_file) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", pid_file);
        FILE *f = fopen(tmp, "w");
        if (!f) fail("exec failed: write pid file: %s", strerror(errno));
        fprintf(f, "%d", pid);
        fclose(f);
        rename(tmp, pid_file);
    }
    return 0;
}

/* start / state / kill / delete: runc's argument shapes; flags may come before or after the id */
static char *positional(char **rest, int *nflags, const char *flag_short, const char *flag_long, int want,
                        char **second) {
    char *first = NULL;
    int npos = 0;
    *nflags = 0;
    for (; *rest; rest++) {
        if (flag_long && (!strcmp(*rest, flag_short) || !strcmp(*rest, flag_long))) { (*nflags)++; continue; }
        if ((*rest)[0] == '-' && (*rest)[1] && !(npos == 1 && second)) fail("flag provided but not defined: %s", *rest);
        if (npos == 0) first = *rest;
        else if (npos == 1 && second) *second = *rest;
        npos++;
    }
    if (npos < 1 || npos > want) fail("runc: requires exactly %d argument(s)", want);
    return first;
}

/* -S: no site module. This environment's .pth files (an editable install, a CA hook importing certifi) cost
 * ~25 ms of every start; the paths they would add are known at build time (NV_PYPATH). The bootstrap leaves
 * through os._exit after flushing: interpreter finalization is a few ms more of nothing. */
#define NV_BOOT "import os, sys\n" \
    "sys.path[:0] = [p for p in os.environ.get('PYTHONPATH', '').split(':') + '" NV_PYPATH "'.split(':') if p]\n" \
    "from nanovisor.runtime.vm.cli import main\n" \
    "rc = main()\n" \
    "sys.stdout.flush(); sys.stderr.flush(); os._exit(rc or 0)\n"

static void to_python(char **argv) {
    char **args = calloc(64 + 6, sizeof(char *));
    int n = 0;
    args[n++] = NV_PYTHON;
#ifdef NV_PYPATH
    args[n++] = "-S";
    args[n++] = "-c";
    args[n++] = NV_BOOT;
#else
    args[n++] = "-m";
    args[n++] = "nanovisor.runtime.vm";
#endif
    for (int i = 1; argv[i] && n < 64 + 5; i++) args[n++] = argv[i];
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) { /* where nv-shim lives, for the Python shim (guest.c_shim_path) */
        self[len] = 0;
        char *slash = strrchr(self, '/');
        if (slash) { *slash = 0; setenv("NANOVISOR_VM_HOST_DIR", self, 1); }
    }
    execv(NV_PYTHON, args);
    fail("cannot run %s: %s", NV_PYTHON, strerror(errno));
}

int main(int argc, char **argv) {
    (void)argc;
    int i = 1;
    for (; argv[i] && argv[i][0] == '-'; i++) {
        char *a = argv[i];
        char *eq = strchr(a, '=');
        int takes = (!strncmp(a, "--root", 6) || !strncmp(a, "--log", 5) || !strncmp(a, "--rootless", 10)) && !eq;
        const char *val = eq ? eq + 1 : takes ? argv[++i] : NULL;
        if (takes && !val) break;
        if (!strncmp(a, "--root=", 7) || !strcmp(a, "--root")) root = val;
        else if (!strncmp(a, "--log-format", 12)) log_json = !strcmp(val, "json");
        else if (!strncmp(a, "--rootless", 10)) continue;
        else if (!strncmp(a, "--log", 5)) log_path = val;
        /* --debug, --systemd-cgroup: accepted; -v, --help: no command follows, Python answers */
    }
    const char *cmd = argv[i];
    if (!cmd) to_python(argv);
    char **rest = argv + i + 1, *sig = NULL;
    int flags = 0;
    /* the commands below are served here only (one implementation); the others are Python's (create, run, list,
     * pause, resume, ps, events, update, features) */
    if (!strcmp(cmd, "start")) {
        need_container(positional(rest, &flags, NULL, NULL, 1, NULL));
        const char *st = status();
        if (!strcmp(st, "stopped")) fail("cannot start a container that has stopped");
        if (strcmp(st, "created")) fail("cannot start an already running container");
        ctl_call("{\"op\": \"start\"}\n");
        return 0;
    }
    if (!strcmp(cmd, "state")) {
        need_container(positional(rest, &flags, NULL, NULL, 1, NULL));
        print_state();
        return 0;
    }
    if (!strcmp(cmd, "kill")) {
        need_container(positional(rest, &flags, "-a", "--all", 2, &sig));
        int signo = parse_signal(sig ? sig : "SIGTERM");
        if (!strcmp(status(), "stopped")) fail("container not running");
        char req[128];
        snprintf(req, sizeof req, "{\"op\": \"kill\", \"signal\": %d, \"all\": %s}\n", signo, flags ? "true" : "false");
        ctl_call(req);
        return 0;
    }
    if (!strcmp(cmd, "exec")) return cmd_exec(rest);
    if (!strcmp(cmd, "delete")) {
        char *id = positional(rest, &flags, "-f", "--force", 1, NULL);
        check_id(id);
        snprintf(cdir, sizeof cdir, "%s/%s", root, id);
        if (!exists_in("oci-state.json")) { /* half-made or half-removed: --force cleans up what is left */
            if (flags || access(cdir, F_OK) == 0) destroy();
            if (flags) return 0;
            fail("container does not exist");
        }
        const char *st = status();
        if (!flags && (!strcmp(st, "running") || !strcmp(st, "paused")))
            fail("cannot delete container %s that is not stopped: %s", id, st);
        destroy();
        return 0;
    }
    to_python(argv);
}
