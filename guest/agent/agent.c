/* nano guest agent: PID 1 of the microVM. It mounts the container's rootfs (virtio-fs, tag "rootfs"), runs the
 * container's process and exec'd processes in the container's namespaces, and relays their stdio, exit status,
 * signals, stats and process lists to the host over one virtio-serial port (protocol.h).
 * Static C so the initramfs stays a few hundred KiB and boot-to-ready costs no interpreter start-up. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "protocol.h" /* generated from protocol.py (guest.py -I) */

#define MAXPROC 64
#define MAXKV 512

struct kv { int n; char *k[MAXKV]; char *v[MAXKV]; };

struct proc {
    int used;
    uint32_t id;
    pid_t pid;
    int in, out, err;     /* host-side ends: we write in, read out/err (out is the pty master with a tty) */
    int ctl;              /* socketpair to the child until it execs */
    int tty;
    char *inbuf;          /* stdin not yet accepted by the process (it may not even have started) */
    size_t inlen;
    int in_eof;           /* host closed stdin: close ours once inbuf is flushed */
};

#define MAX_PENDING_IN (8u << 20) /* stop reading the port while this much stdin waits */

static struct proc procs[MAXPROC];
static int port = -1;
static pid_t main_pid = 0;
/* The container's mount namespace, held open by the agent while the main process lives: when that process exits
 * it is then not the last user, so its exit does not unmount the rootfs and the spec's mounts (an RCU grace
 * period and a virtio-fs round trip each, ~15 ms under TCG) before its parent hears of it. We drop it right after
 * reporting the exit. */
static int main_mnt = -1;
static const char *ROOT = "/c";

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nv-agent: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, ": %s\n", strerror(errno));
    va_end(ap);
    reboot(RB_AUTOBOOT); /* QEMU runs with -no-reboot: the VM exits and the host reports it */
    _exit(1);
}

static void write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { struct pollfd q = {fd, POLLOUT, 0}; poll(&q, 1, -1); continue; }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void send_frame(uint8_t type, uint32_t id, const void *data, uint32_t len) {
    struct nv_hdr h = {type, {0, 0, 0}, id, len};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)data, len}};
    /* one writev so frames from one writer never interleave */
    size_t total = sizeof h + len;
    ssize_t w = writev(port, iov, len ? 2 : 1);
    if (w < 0 && errno != EAGAIN) die("write port");
    if (w < 0) w = 0;
    if ((size_t)w < total) {
        char *buf = malloc(total);
        memcpy(buf, &h, sizeof h);
        if (len) memcpy(buf + sizeof h, data, len);
        write_all(port, buf + w, total - (size_t)w);
        free(buf);
    }
}

static void send_str(uint8_t type, uint32_t id, const char *s) { send_frame(type, id, s, (uint32_t)strlen(s)); }

static int parse_kv(char *buf, uint32_t len, struct kv *kv) {
    kv->n = 0;
    char *p = buf, *end = buf + len;
    while (p < end && kv->n < MAXKV) {
        char *k = p;
        p += strnlen(p, (size_t)(end - p)) + 1;
        if (p > end) return -1;
        char *v = p;
        p += strnlen(p, (size_t)(end - p)) + 1;
        if (p > end) return -1;
        kv->k[kv->n] = k;
        kv->v[kv->n] = v;
        kv->n++;
    }
    return 0;
}

static const char *kv_get(struct kv *kv, const char *key) {
    for (int i = 0; i < kv->n; i++)
        if (!strcmp(kv->k[i], key)) return kv->v[i];
    return NULL;
}

static char **kv_all(struct kv *kv, const char *key) {
    char **out = calloc((size_t)kv->n + 1, sizeof(char *));
    int j = 0;
    for (int i = 0; i < kv->n; i++)
        if (!strcmp(kv->k[i], key)) out[j++] = kv->v[i];
    return out;
}

static struct proc *proc_by_id(uint32_t id) {
    for (int i = 0; i < MAXPROC; i++)
        if (procs[i].used && procs[i].id == id) return &procs[i];
    return NULL;
}

static struct proc *proc_new(uint32_t id) {
    for (int i = 0; i < MAXPROC; i++)
        if (!procs[i].used) {
            memset(&procs[i], 0, sizeof procs[i]);
            procs[i].used = 1;
            procs[i].id = id;
            procs[i].in = procs[i].out = procs[i].err = procs[i].ctl = -1;
            return &procs[i];
        }
    return NULL;
}

static void closefd(int *fd) { if (*fd >= 0) close(*fd); *fd = -1; }

/* ---- child side: runs in the container, reports errors over ctl before exec ---- */

static void child_fail(int ctl, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg - 64, fmt, ap);
    va_end(ap);
    if (errno) snprintf(msg + n, sizeof msg - (size_t)n, ": %s", strerror(errno));
    write_all(ctl, msg, strlen(msg));
    _exit(127);
}

static void mkdirs(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(tmp, 0755); *p = '/'; }
    mkdir(tmp, 0755);
}

/* A mount entry: src \x1f dest \x1f fstype \x1f flags \x1f data (flags already MS_* numbers, from the host). */
static void do_mount(int ctl, char *spec) {
    char *f[5] = {0};
    int i = 0;
    for (char *s = spec; i < 5; i++) {
        f[i] = s;
        char *sep = strchr(s, '\x1f');
        if (!sep) { i++; break; }
        *sep = 0;
        s = sep + 1;
    }
    if (i < 5 || !f[1]) child_fail(ctl, "bad mount spec");
    char dest[4096];
    snprintf(dest, sizeof dest, "%s%s", ROOT, f[1]);
    unsigned long flags = strtoul(f[3], NULL, 0);
    struct stat st;
    if (stat(dest, &st) < 0) mkdirs(dest);
    unsigned long first = flags & ~(unsigned long)MS_RDONLY;
    if (!strcmp(f[2], "cgroup") || !strcmp(f[2], "cgroup2")) {
        if (mount("cgroup2", dest, "cgroup2", first & ~(unsigned long)MS_BIND, NULL) < 0 && errno != EBUSY)
            child_fail(ctl, "mount cgroup2 %s", f[1]);
    } else if (mount(f[0], dest, f[2], first, f[4][0] ? f[4] : NULL) < 0) {
        child_fail(ctl, "mount %s on %s (%s)", f[0], f[1], f[2]);
    }
    if (flags & MS_RDONLY)
        mount(NULL, dest, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | (first & (MS_NOSUID | MS_NODEV | MS_NOEXEC)), NULL);
}

static void mask_path(const char *p) {
    char dest[4096];
    struct stat st;
    snprintf(dest, sizeof dest, "%s%s", ROOT, p);
    if (stat(dest, &st) < 0) return;
    if (S_ISDIR(st.st_mode)) mount("tmpfs", dest, "tmpfs", MS_RDONLY, "size=0");
    else mount("/dev/null", dest, NULL, MS_BIND, NULL);
}

static void readonly_path(const char *p) {
    char dest[4096];
    snprintf(dest, sizeof dest, "%s%s", ROOT, p);
    if (mount(dest, dest, NULL, MS_BIND | MS_REC, NULL) == 0)
        mount(NULL, dest, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
}

static void send_fd(int sock, int fd) {
    char c = 'T';
    struct iovec iov = {&c, 1};
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    sendmsg(sock, &m, 0);
}

static int recv_fd(int sock) {
    char c;
    struct iovec iov = {&c, 1};
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    if (recvmsg(sock, &m, 0) <= 0) return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    if (!cm || cm->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}

/* Find argv[0] along PATH inside the (already chrooted) container. */
static const char *resolve(const char *arg0, char **envp, char *buf, size_t n) {
    if (strchr(arg0, '/')) return access(arg0, F_OK) == 0 ? arg0 : NULL;
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (char **e = envp; *e; e++)
        if (!strncmp(*e, "PATH=", 5)) path = *e + 5;
    const char *p = path;
    while (*p) {
        const char *c = strchr(p, ':');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        snprintf(buf, n, "%.*s/%s", (int)l, p, arg0);
        struct stat st;
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) return buf;
        p += l + (c ? 1 : 0);
    }
    return NULL;
}

/* ---- process security: what runc applies from the spec's process and linux.seccomp (issue 11) ---- */

/* The container's seccomp program (struct sock_filter[], compiled host-side by seccomp_bpf.py from the spec),
 * kept from CREATE: exec'd processes get the same filter, as under runc. */
static struct sock_filter *sec_prog;
static unsigned short sec_len;
static unsigned sec_flags;

static int unhex(int c) { return c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0'; }

static void keep_seccomp(struct kv *kv) {
    const char *hex = kv_get(kv, "seccomp"), *fl = kv_get(kv, "seccomp.flags");
    free(sec_prog);
    sec_prog = NULL;
    sec_len = 0;
    if (!hex) return;
    size_t n = strlen(hex) / 2;
    unsigned char *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(unhex(hex[2 * i]) << 4 | unhex(hex[2 * i + 1]));
    sec_prog = (struct sock_filter *)b;
    sec_len = (unsigned short)(n / sizeof(struct sock_filter));
    sec_flags = fl ? (unsigned)strtoul(fl, NULL, 10) : 0;
}

static void install_seccomp(int ctl) {
    if (!sec_prog) return;
    struct sock_fprog prog = {.len = sec_len, .filter = sec_prog};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, sec_flags, &prog) < 0)
        child_fail(ctl, "error loading seccomp filter into kernel");
}

static const char *const CAP_NAMES[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"};
#define NCAPS (int)(sizeof CAP_NAMES / sizeof CAP_NAMES[0])

/* "CAP_A CAP_B" -> bit mask; an unknown name fails the start, as runc does */
static unsigned long long cap_mask(int ctl, const char *names) {
    unsigned long long m = 0;
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", names);
    for (char *save, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        int i = 0;
        while (i < NCAPS && strcasecmp(t, CAP_NAMES[i]) && strcasecmp(t, CAP_NAMES[i] + 4)) i++;
        if (i == NCAPS) { errno = 0; child_fail(ctl, "unknown capability \"%s\"", t); }
        m |= 1ULL << i;
    }
    return m;
}

/* The host runtime's own hard limits ("RLIMIT_X hard"), kept from CREATE when it may not raise them: a request
 * above one fails as it fails under runc on that host, though the agent itself could grant it. */
static char *rlimit_max;

static void keep_rlimit_max(struct kv *kv) {
    free(rlimit_max);
    size_t n = 2;
    for (int i = 0; i < kv->n; i++) if (!strcmp(kv->k[i], "rlimit.max")) n += strlen(kv->v[i]) + 1;
    rlimit_max = calloc(1, n);
    for (int i = 0; i < kv->n; i++)
        if (!strcmp(kv->k[i], "rlimit.max")) { strcat(rlimit_max, kv->v[i]); strcat(rlimit_max, "\n"); }
}

static int above_host_hard(const char *name, unsigned long long hard) {
    char want[40];
    snprintf(want, sizeof want, "%s ", name);
    for (const char *p = rlimit_max; p && *p; p = strchr(p, '\n') + 1) {
        if (!strncmp(p, want, strlen(want))) return hard > strtoull(p + strlen(want), NULL, 10);
        if (!strchr(p, '\n')) break;
    }
    return 0;
}

static void set_rlimits(int ctl, struct kv *kv) {
    static const struct { const char *name; int res; } R[] = {
        {"RLIMIT_CPU", RLIMIT_CPU}, {"RLIMIT_FSIZE", RLIMIT_FSIZE}, {"RLIMIT_DATA", RLIMIT_DATA},
        {"RLIMIT_STACK", RLIMIT_STACK}, {"RLIMIT_CORE", RLIMIT_CORE}, {"RLIMIT_RSS", RLIMIT_RSS},
        {"RLIMIT_NPROC", RLIMIT_NPROC}, {"RLIMIT_NOFILE", RLIMIT_NOFILE}, {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
        {"RLIMIT_AS", RLIMIT_AS}, {"RLIMIT_LOCKS", RLIMIT_LOCKS}, {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
        {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE}, {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
        {"RLIMIT_RTTIME", RLIMIT_RTTIME}};
    for (int i = 0; i < kv->n; i++) {
        if (strcmp(kv->k[i], "rlimit")) continue;
        char name[32];
        unsigned long long soft, hard;
        if (sscanf(kv->v[i], "%31s %llu %llu", name, &soft, &hard) != 3) continue;
        size_t j = 0;
        while (j < sizeof R / sizeof R[0] && strcmp(R[j].name, name)) j++;
        if (j == sizeof R / sizeof R[0]) { errno = 0; child_fail(ctl, "unknown rlimit type \"%s\"", name); }
        struct rlimit rl = {(rlim_t)soft, (rlim_t)hard};
        if (above_host_hard(name, hard)) errno = EPERM;
        else if (setrlimit(R[j].res, &rl) == 0) continue;
        child_fail(ctl, "error setting rlimit type %d", R[j].res);
    }
}

/* Before the user switch: rlimits, oom_score_adj, seccomp when it needs CAP_SYS_ADMIN (no no_new_privs), the
 * bounding set; and keep the capabilities across setuid so apply_caps can set exactly the spec's. */
static void security_before_user(int ctl, struct kv *kv) {
    set_rlimits(ctl, kv);
    const char *oom = kv_get(kv, "oom_score_adj");
    if (oom) {
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) { write_all(fd, oom, strlen(oom)); close(fd); }
    }
    if (kv_get(kv, "nnp") && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(ctl, "set no_new_privs");
    if (!kv_get(kv, "nnp")) install_seccomp(ctl);
    const char *bnd = kv_get(kv, "cap.bounding");
    if (bnd) {
        unsigned long long keep = cap_mask(ctl, bnd);
        for (int c = 0; c < NCAPS; c++)
            if (!(keep >> c & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                child_fail(ctl, "drop bounding capability %s", CAP_NAMES[c]);
    }
    if (kv_get(kv, "cap.effective")) prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
}

static void apply_caps(int ctl, struct kv *kv) {
    const char *eff = kv_get(kv, "cap.effective");
    if (!eff) return;
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    unsigned long long e = cap_mask(ctl, eff), p = cap_mask(ctl, kv_get(kv, "cap.permitted") ?: ""),
                       i = cap_mask(ctl, kv_get(kv, "cap.inheritable") ?: "");
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{(uint32_t)e, (uint32_t)p, (uint32_t)i},
                                          {(uint32_t)(e >> 32), (uint32_t)(p >> 32), (uint32_t)(i >> 32)}};
    if (syscall(SYS_capset, &h, d) < 0) child_fail(ctl, "apply capabilities");
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    unsigned long long a = cap_mask(ctl, kv_get(kv, "cap.ambient") ?: "");
    for (int c = 0; c < NCAPS; c++)
        if (a >> c & 1) prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0); /* runc ignores failures too */
}

/* Common tail for the main process and exec'd ones: tty/stdio, identity, cwd, then wait for "go" and exec. */
static void child_exec(int ctl, struct kv *kv, int stdio[3], int wait_go) {
    int tty = kv_get(kv, "tty") != NULL;
    if (tty) {
        int m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0) m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0) child_fail(ctl, "open ptmx");
        int unlock = 0;
        ioctl(m, TIOCSPTLCK, &unlock);
        int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
        if (s < 0) child_fail(ctl, "open pty peer");
        const char *ws = kv_get(kv, "winsize");
        if (ws) {
            struct winsize w = {0};
            sscanf(ws, "%hu %hu", &w.ws_row, &w.ws_col);
            ioctl(m, TIOCSWINSZ, &w);
        }
        setsid();
        ioctl(s, TIOCSCTTY, 0);
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        if (s > 2) close(s);
        send_fd(ctl, m);
        close(m);
    } else {
        setsid();
        for (int i = 0; i < 3; i++) dup2(stdio[i], i);
    }
    security_before_user(ctl, kv);
    const char *gid = kv_get(kv, "gid"), *uid = kv_get(kv, "uid"), *groups = kv_get(kv, "groups");
    gid_t gl[64];
    int ng = 0;
    if (groups)
        for (char *s = (char *)groups; *s && ng < 64;) { gl[ng++] = (gid_t)strtoul(s, &s, 10); if (*s == ',') s++; }
    if (setgroups((size_t)ng, gl) < 0) child_fail(ctl, "setgroups");
    if (gid && setgid((gid_t)atoi(gid)) < 0) child_fail(ctl, "setgid");
    if (uid && setuid((uid_t)atoi(uid)) < 0) child_fail(ctl, "setuid");
    apply_caps(ctl, kv);
    const char *cwd = kv_get(kv, "cwd");
    if (cwd && chdir(cwd) < 0) {
        if (uid && atoi(uid) != 0) child_fail(ctl, "chdir to cwd (\"%s\") set in config.json failed", cwd);
        mkdirs(cwd);
        if (chdir(cwd) < 0) child_fail(ctl, "chdir to cwd (\"%s\") set in config.json failed", cwd);
    }
    char **argv = kv_all(kv, "arg"), **envp = kv_all(kv, "env");
    if (!argv[0]) { errno = 0; child_fail(ctl, "args must not be empty"); }
    char pbuf[4096];
    const char *exe = resolve(argv[0], envp, pbuf, sizeof pbuf);
    if (!exe) {
        errno = 0;
        if (strchr(argv[0], '/'))
            child_fail(ctl, "exec: \"%s\": stat %s: no such file or directory", argv[0], argv[0]);
        child_fail(ctl, "exec: \"%s\": executable file not found in $PATH", argv[0]);
    }
    const char *umask_s = kv_get(kv, "umask");
    umask(umask_s ? (mode_t)strtoul(umask_s, NULL, 8) : 022);
    /* with no_new_privs the filter needs no privilege: installed last (fewest syscalls it must allow), yet before
     * "ready" so a failure is still reported as a failed create/exec */
    if (kv_get(kv, "nnp")) install_seccomp(ctl);
    write_all(ctl, "", 1); /* ready */
    if (wait_go) {
        char c;
        if (read(ctl, &c, 1) != 1) _exit(127);
    }
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    execve(exe, argv, envp);
    /* runc reports a late exec failure through the same channel; the process exits 126/127 */
    int e = errno;
    dprintf(2, "exec %s: %s\n", exe, strerror(e));
    _exit(e == ENOENT ? 127 : 126);
}

/* The default devices runc creates in the container's /dev (a tmpfs from the spec). */
static void make_devices(void) {
    static const struct { const char *name; unsigned maj, min; } devs[] = {
        {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
    static const char *links[][2] = {{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
                                     {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
                                     {"core", "/proc/kcore"}};
    char path[4096];
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) {
        snprintf(path, sizeof path, "%s/dev/%s", ROOT, devs[i].name);
        if (mknod(path, S_IFCHR | 0666, makedev(devs[i].maj, devs[i].min)) == 0) chmod(path, 0666);
    }
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(path, sizeof path, "%s/dev/%s", ROOT, links[i][0]);
        symlink(links[i][1], path);
    }
}

static void main_child(int ctl, struct kv *kv, int stdio[3]) {
    const char *hostname = kv_get(kv, "hostname");
    if (hostname) sethostname(hostname, strlen(hostname));
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail(ctl, "make / private");
    mkdir(ROOT, 0755);
    if (mount("rootfs", ROOT, "virtiofs", 0, NULL) < 0) child_fail(ctl, "mount rootfs (virtiofs)");
    char **mounts = kv_all(kv, "mount");
    for (char **m = mounts; *m; m++) do_mount(ctl, *m);
    make_devices();
    char ptmx[4096];
    snprintf(ptmx, sizeof ptmx, "%s/dev/ptmx", ROOT);
    struct stat st;
    if (lstat(ptmx, &st) < 0 || !S_ISLNK(st.st_mode)) {
        char pts[4096];
        snprintf(pts, sizeof pts, "%s/dev/pts/ptmx", ROOT);
        if (stat(pts, &st) == 0) { unlink(ptmx); symlink("pts/ptmx", ptmx); }
    }
    char **masked = kv_all(kv, "masked"), **ro = kv_all(kv, "readonly");
    for (char **p = masked; *p; p++) mask_path(*p);
    for (char **p = ro; *p; p++) readonly_path(*p);
    char **sysctls = kv_all(kv, "sysctl");
    for (char **s = sysctls; *s; s++) {
        char *eq = strchr(*s, '=');
        if (!eq) continue;
        *eq = 0;
        char path[512];
        snprintf(path, sizeof path, "/proc/sys/%s", *s);
        for (char *c = path + 10; *c; c++) if (*c == '.') *c = '/';
        int fd = open(path, O_WRONLY);
        if (fd >= 0) { write_all(fd, eq + 1, strlen(eq + 1)); close(fd); }
    }
    if (chdir(ROOT) < 0) child_fail(ctl, "chdir rootfs");
    if (kv_get(kv, "root.ro")) {
        /* host binds reach us as virtio-fs submounts, automounted on first access with the flags of the mount
         * above them: visit each while the root is still writable, so --read-only leaves volumes writable */
        char **subs = kv_all(kv, "submount");
        for (char **p = subs; *p; p++) {
            char path[4096];
            snprintf(path, sizeof path, ".%s", *p);
            int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
            if (fd >= 0) close(fd);
        }
        mount(NULL, ".", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
    }
    if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) child_fail(ctl, "move rootfs");
    if (chroot(".") < 0) child_fail(ctl, "chroot");
    chdir("/");
    child_exec(ctl, kv, stdio, 1);
}

static void exec_child(int ctl, struct kv *kv, int stdio[3]) {
    static const char *ns[] = {"ipc", "uts", "mnt"};
    char path[64];
    if (access("/sys/fs/cgroup/c/cgroup.procs", W_OK) == 0) { /* join the container's limits */
        int fd = open("/sys/fs/cgroup/c/cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) { dprintf(fd, "%d", getpid()); close(fd); }
    }
    snprintf(path, sizeof path, "/proc/%d/root", main_pid);
    int rootfd = open(path, O_RDONLY | O_DIRECTORY);
    if (rootfd < 0) child_fail(ctl, "container is not running");
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "/proc/%d/ns/%s", main_pid, ns[i]);
        int fd = open(path, O_RDONLY);
        if (fd < 0 || setns(fd, 0) < 0) child_fail(ctl, "setns %s", ns[i]);
        close(fd);
    }
    if (fchdir(rootfd) < 0 || chroot(".") < 0) child_fail(ctl, "enter container root");
    chdir("/");
    child_exec(ctl, kv, stdio, 0);
}

#include "net.h"

static long read_long(const char *path, const char *key);

/* ---- agent side ---- */

static void write_file(const char *path, const char *val) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) { write_all(fd, val, strlen(val)); close(fd); }
}

/* --memory / --pids-limit / CPU shares inside the guest too: the VM is sized with headroom for the kernel, so the
 * container's own limits are a cgroup (v2) around its processes, and exceeding --memory OOM-kills the container's
 * process as under runc. The cgroup always exists, so `docker update` can set limits the create did not. */
#define CG "/sys/fs/cgroup/c"

static int write_file_err(const char *path, const char *val) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, val, strlen(val));
    int e = errno;
    close(fd);
    errno = e;
    return w < 0 ? -1 : 0;
}

static void cgroup_setup(void) {
    static int done;
    if (done) return;
    done = 1;
    mkdir("/sys/fs/cgroup", 0755);
    mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids");
    write_file("/sys/fs/cgroup/cgroup.subtree_control", "+cpu"); /* alone: a kernel without it keeps the rest */
    mkdir(CG, 0755);
}

/* "key=value;key=value" (memory.max, memory.swap.max, pids.max, cpu.weight, cpu.max) into the container's
 * cgroup; on failure err says which and why. */
static int cgroup_apply(char *spec, char *err, size_t n) {
    cgroup_setup();
    for (char *save, *t = strtok_r(spec, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(t, '=');
        if (!eq) continue;
        *eq = 0;
        char path[128];
        snprintf(path, sizeof path, CG "/%s", t);
        if (strchr(t, '/') || write_file_err(path, eq + 1) < 0) {
            snprintf(err, n, "cannot set %s to %s in the guest: %s", t, eq + 1, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void limit_resources(pid_t pid, struct kv *kv) {
    char spec[512] = "", err[256];
    const char *mem = kv_get(kv, "memory.max"), *pids = kv_get(kv, "pids.max"), *w = kv_get(kv, "cpu.weight");
    size_t n = 0;
    if (mem) n += (size_t)snprintf(spec + n, sizeof spec - n, "memory.max=%s;memory.swap.max=0;", mem);
    if (pids) n += (size_t)snprintf(spec + n, sizeof spec - n, "pids.max=%s;", pids);
    if (w) snprintf(spec + n, sizeof spec - n, "cpu.weight=%s;", w);
    cgroup_apply(spec, err, sizeof err); /* best effort, as before: a missing controller leaves the VM's size */
    char s[32];
    snprintf(s, sizeof s, "%d", pid);
    write_file(CG "/cgroup.procs", s);
}

/* The guest OOM-killed one of the container's processes (the kernel counts global and cgroup OOM kills). */
static int oom_killed(void) {
    return read_long(CG "/memory.events", "oom_kill ") > 0;
}

static void do_net(uint32_t id, char *payload) {
    char err[300] = "";
    net_live(payload, err, sizeof err);
    send_str(NV_REPLY, id, err);
}

static void do_update(uint32_t id, char *payload) {
    char err[256] = "";
    cgroup_apply(payload, err, sizeof err);
    send_str(NV_REPLY, id, err);
}

static void spawn(uint32_t id, char *payload, uint32_t len, int is_main) {
    struct kv kv;
    if (parse_kv(payload, len, &kv) < 0) { send_str(NV_CREATED, id, "bad process spec"); return; }
    if (is_main) { keep_seccomp(&kv); keep_rlimit_max(&kv); } /* before the fork: the child applies them */
    if (is_main) { /* the guest's NICs and DNS relay, before the container's first process exists */
        char err[300];
        if (net_setup(&kv, err, sizeof err) < 0 || dns_start(&kv, err, sizeof err) < 0) {
            send_str(NV_CREATED, id, err);
            return;
        }
    }
    struct proc *p = proc_new(id);
    if (!p) { send_str(NV_CREATED, id, "too many processes"); return; }
    int sp[2], in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
    p->tty = kv_get(&kv, "tty") != NULL;
    if (!p->tty) {
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
            send_str(NV_CREATED, id, "pipe failed");
            p->used = 0;
            return;
        }
    }
    pid_t pid;
    if (is_main)
        pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0);
    else
        pid = fork();
    if (pid < 0) {
        send_str(NV_CREATED, id, is_main ? "clone failed" : "container is not running");
        p->used = 0;
        return;
    }
    if (pid == 0) {
        close(sp[0]);
        close(port);
        int stdio[3] = {in[0], out[1], err[1]};
        signal(SIGPIPE, SIG_DFL);
        if (is_main) main_child(sp[1], &kv, stdio);
        else exec_child(sp[1], &kv, stdio);
        _exit(127);
    }
    close(sp[1]);
    if (!p->tty) {
        close(in[0]); close(out[1]); close(err[1]);
        p->in = in[1]; p->out = out[0]; p->err = err[0];
        fcntl(p->in, F_SETFL, O_NONBLOCK);
        fcntl(p->out, F_SETFL, O_NONBLOCK);
        fcntl(p->err, F_SETFL, O_NONBLOCK);
    }
    p->pid = pid;
    p->ctl = sp[0];
    if (p->tty) {
        int m = recv_fd(p->ctl);
        if (m >= 0) { p->out = m; p->in = dup(m); fcntl(m, F_SETFL, O_NONBLOCK); fcntl(p->in, F_SETFL, O_NONBLOCK); }
    }
    /* the child writes "" (ready) or an error message; EOF means it exec'd or died */
    char msg[600];
    ssize_t n = read(p->ctl, msg, sizeof msg - 1);
    if (n > 0 && msg[0] != 0) {
        msg[n] = 0;
        send_str(NV_CREATED, id, msg);
        /* leave the process record: its exit is reaped and reported as usual */
        closefd(&p->ctl);
        return;
    }
    if (n <= 0) { send_str(NV_CREATED, id, "container process died during setup"); return; }
    if (is_main) {
        main_pid = pid;
        limit_resources(pid, &kv);
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/mnt", pid);
        closefd(&main_mnt);
        main_mnt = open(path, O_RDONLY | O_CLOEXEC);
        snprintf(path, sizeof path, "/proc/%d/ns/pid", pid);
        int fd = open(path, O_RDONLY);
        if (fd >= 0) { setns(fd, CLONE_NEWPID); close(fd); }
    } else {
        closefd(&p->ctl);
    }
    send_str(NV_CREATED, id, "");
}

static void drain(int *fd, uint8_t type, uint32_t id) {
    char buf[65536];
    while (*fd >= 0) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n > 0) { send_frame(type, id, buf, (uint32_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        closefd(fd); /* EOF or EIO (pty hung up) */
        send_frame(type, id, NULL, 0);
    }
}

static void reap(void) {
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < MAXPROC; i++) {
            struct proc *p = &procs[i];
            if (!p->used || p->pid != pid) continue;
            drain(&p->out, NV_STDOUT, p->id);
            if (p->err >= 0) drain(&p->err, NV_STDERR, p->id);
            closefd(&p->out); closefd(&p->err); closefd(&p->in); closefd(&p->ctl);
            free(p->inbuf);
            p->inbuf = NULL;
            p->inlen = 0;
            char s[32];
            /* the main process' exit says whether the guest OOM-killed in the container ("137 oom") */
            snprintf(s, sizeof s, "%d%s", st, pid == main_pid && oom_killed() ? " oom" : "");
            send_str(NV_EXIT, p->id, s);
            p->used = 0;
            if (pid == main_pid) { main_pid = 0; closefd(&main_mnt); }
        }
    }
}

static void do_kill(uint32_t id, char *payload) {
    int sig = 15, all = 0;
    sscanf(payload, "%d %d", &sig, &all);
    if (all) { kill(-1, sig); return; }
    struct proc *p = proc_by_id(id);
    if (p) kill(p->pid, sig);
}

static long read_long(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) { v = atol(line + kl); break; }
    fclose(f);
    return v;
}

/* Container pid as the container sees it (last NSpid field), or 0 for the agent's own helpers. */
static long ns_pid(const char *pid) {
    char path[300], line[256];
    snprintf(path, sizeof path, "/proc/%s/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    long v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "NSpid:", 6)) {
            char *tok = strtok(line + 6, " \t\n"), *last = NULL;
            int count = 0;
            for (; tok; tok = strtok(NULL, " \t\n")) { last = tok; count++; }
            v = count >= 2 && last ? atol(last) : 0;
        }
    fclose(f);
    return v;
}

/* One line per container process, as the container sees it:
 * "PID PPID UID STARTTIME_TICKS CPU_TICKS TTY_NR CMDLINE"; first line "btime BOOT_EPOCH". */
static int ps_lines(char *out, size_t cap) {
    static long rootpid[4096], nspid[4096];
    int np = 0;
    size_t n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && np < 4096) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        long v = ns_pid(e->d_name);
        if (!v) continue;
        rootpid[np] = atol(e->d_name);
        nspid[np++] = v;
    }
    if (d) closedir(d);
    n += (size_t)snprintf(out + n, cap - n, "btime %ld\n", read_long("/proc/stat", "btime "));
    for (int i = 0; i < np && n < cap - 600; i++) {
        char path[64], buf[1024], cmd[400];
        snprintf(path, sizeof path, "/proc/%ld/stat", rootpid[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0) continue;
        buf[r] = 0;
        char *rp = strrchr(buf, ')');
        if (!rp) continue;
        char comm[64] = "";
        char *lp = strchr(buf, '(');
        if (lp) snprintf(comm, sizeof comm, "%.*s", (int)(rp - lp - 1), lp + 1);
        long f[40] = {0};
        int k = 0;
        for (char *t = strtok(rp + 2, " "); t && k < 40; t = strtok(NULL, " ")) f[k++] = atol(t);
        /* f[0]=state(char->0) f[1]=ppid f[4]=tty_nr f[11]=utime f[12]=stime f[19]=starttime */
        long ppid = 0;
        for (int j = 0; j < np; j++) if (rootpid[j] == f[1]) ppid = nspid[j];
        snprintf(path, sizeof path, "/proc/%ld/status", rootpid[i]);
        long uid = read_long(path, "Uid:");
        snprintf(path, sizeof path, "/proc/%ld/cmdline", rootpid[i]);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        r = fd >= 0 ? read(fd, cmd, sizeof cmd - 1) : -1;
        if (fd >= 0) close(fd);
        if (r > 0) {
            for (ssize_t j = 0; j < r; j++) if (cmd[j] == 0 || cmd[j] == '\n') cmd[j] = ' ';
            while (r > 0 && cmd[r - 1] == ' ') r--;
            cmd[r] = 0;
        } else {
            snprintf(cmd, sizeof cmd, "[%s]", comm);
        }
        n += (size_t)snprintf(out + n, cap - n, "%ld %ld %ld %ld %ld %ld %s\n", nspid[i], ppid, uid, f[19],
                              f[11] + f[12], f[4], cmd);
    }
    return (int)n;
}

static void do_stats(uint32_t id, int ps) {
    static char out[1 << 16];
    int n = 0;
    if (ps) {
        n = ps_lines(out, sizeof out);
        send_frame(NV_REPLY, id, out, (uint32_t)n);
        return;
    }
    int pids = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        if (ns_pid(e->d_name)) pids++;
    }
    if (d) closedir(d);
    {
        unsigned long long u = 0, ni = 0, sy = 0, idle = 0, io = 0, irq = 0, sirq = 0;
        FILE *f = fopen("/proc/stat", "r");
        if (f) { if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &u, &ni, &sy, &idle, &io, &irq, &sirq) != 7) u = 0; fclose(f); }
        long tck = sysconf(_SC_CLK_TCK);
        unsigned long long ns = (u + ni + sy + irq + sirq) * (1000000000ULL / (unsigned long long)tck);
        long total = read_long("/proc/meminfo", "MemTotal:"), avail = read_long("/proc/meminfo", "MemAvailable:");
        unsigned long long used = (unsigned long long)(total - avail) * 1024, limit = (unsigned long long)total * 1024;
        /* with the container's cgroup: its usage and its limit, as runc reports them (not the guest's) */
        long cur = read_long(CG "/memory.current", ""), max = read_long(CG "/memory.max", "");
        if (cur >= 0) used = (unsigned long long)cur;
        if (max > 0 && (unsigned long long)max < limit) limit = (unsigned long long)max;
        n = snprintf(out, sizeof out, "%llu %llu %llu %llu %d %llu", ns, (u + ni) * (1000000000ULL / (unsigned long long)tck),
                     (sy + irq + sirq) * (1000000000ULL / (unsigned long long)tck), used, pids, limit);
    }
    send_frame(NV_REPLY, id, out, (uint32_t)n);
}

static void queue_in(struct proc *p, const char *data, size_t n) {
    p->inbuf = realloc(p->inbuf, p->inlen + n);
    memcpy(p->inbuf + p->inlen, data, n);
    p->inlen += n;
}

/* Never block on a process' stdin: it may not read (or not have started yet) while we must keep serving. */
static void flush_in(struct proc *p) {
    while (p->in >= 0 && p->inlen) {
        ssize_t w = write(p->in, p->inbuf, p->inlen);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return;
        if (w < 0) { p->inlen = 0; break; } /* EPIPE: the reader is gone; drop */
        memmove(p->inbuf, p->inbuf + w, p->inlen - (size_t)w);
        p->inlen -= (size_t)w;
    }
    if (!p->inlen && p->in_eof) closefd(&p->in);
}

static size_t pending_in(void) {
    size_t n = 0;
    for (int i = 0; i < MAXPROC; i++) if (procs[i].used) n += procs[i].inlen;
    return n;
}

static void handle(struct nv_hdr *h, char *payload) {
    struct proc *p;
    switch (h->type) {
    case NV_CREATE: spawn(0, payload, h->len, 1); break;
    case NV_EXEC: spawn(h->id, payload, h->len, 0); break;
    case NV_START:
        p = proc_by_id(0);
        if (p && p->ctl >= 0) { write_all(p->ctl, "g", 1); closefd(&p->ctl); }
        break;
    case NV_STDIN:
        p = proc_by_id(h->id);
        if (!p || p->in < 0) break;
        if (h->len == 0) {
            if (p->tty) queue_in(p, "\4", 1);
            else p->in_eof = 1;
        } else {
            queue_in(p, payload, h->len);
        }
        flush_in(p);
        break;
    case NV_KILL: do_kill(h->id, payload); break;
    case NV_RESIZE:
        p = proc_by_id(h->id);
        if (p && p->tty && p->out >= 0) {
            struct winsize w = {0};
            sscanf(payload, "%hu %hu", &w.ws_row, &w.ws_col);
            ioctl(p->out, TIOCSWINSZ, &w);
        }
        break;
    case NV_STATS: do_stats(h->id, 0); break;
    case NV_PS: do_stats(h->id, 1); break;
    case NV_UPDATE: do_update(h->id, payload); break;
    case NV_NET: do_net(h->id, payload); break;
    case NV_DNS: dns_answer((unsigned char *)payload, h->len); break;
    }
}

static int find_port(void) {
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    char path[300], name[64];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t n = read(fd, name, sizeof name - 1);
        close(fd);
        if (n > 0 && !strncmp(name, "nv.0", 4)) {
            snprintf(path, sizeof path, "/dev/%s", e->d_name);
            closedir(d);
            return open(path, O_RDWR | O_CLOEXEC);
        }
    }
    if (d) closedir(d);
    return -1;
}

int main(void) {
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL);
    int con = open("/dev/console", O_RDWR);
    if (con >= 0) { dup2(con, 1); dup2(con, 2); if (con > 2) close(con); }
    mkdir("/dev/pts", 0755);
    mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620");
    sethostname("nano", 4);
    loopback_up(); /* so a container with --network none still has 127.0.0.1 */

    port = find_port();
    if (port < 0) die("no virtio-serial port nv.0");

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);

    struct utsname u;
    uname(&u);
    send_str(NV_READY, 0, u.release);

    static char rbuf[NV_MAX_PAYLOAD + sizeof(struct nv_hdr) + 1];
    size_t have = 0;
    for (;;) {
        struct pollfd pf[2 + 3 * MAXPROC + 2 + DNS_CONNS];
        int map[2 + 3 * MAXPROC + 2 + DNS_CONNS];
        int n = 0;
        pf[n].fd = port; pf[n].events = pending_in() < MAX_PENDING_IN ? POLLIN : 0; map[n++] = -1;
        pf[n].fd = sfd; pf[n].events = POLLIN; map[n++] = -2;
        for (int i = 0; i < MAXPROC; i++) {
            if (!procs[i].used) continue;
            if (procs[i].out >= 0) { pf[n].fd = procs[i].out; pf[n].events = POLLIN; map[n++] = i * 2; }
            if (procs[i].err >= 0) { pf[n].fd = procs[i].err; pf[n].events = POLLIN; map[n++] = i * 2 + 1; }
            if (procs[i].in >= 0 && procs[i].inlen) { pf[n].fd = procs[i].in; pf[n].events = POLLOUT; map[n++] = 1000 + i; }
        }
        n += dns_pollfds(pf + n, map + n, 2000);
        int r = poll(pf, (nfds_t)n, NV_HEARTBEAT_MS);
        if (r == 0) { send_frame(NV_ALIVE, 0, NULL, 0); continue; }
        if (r < 0) continue;
        for (int j = 2; j < n; j++) {
            if (!pf[j].revents) continue;
            if (map[j] >= 2000) { dns_ready(map[j] - 2000); continue; }
            if (map[j] >= 1000) {
                struct proc *q = &procs[map[j] - 1000];
                if (!q->used) continue;
                if (pf[j].revents & (POLLERR | POLLHUP)) { q->inlen = 0; closefd(&q->in); }
                else flush_in(q);
                continue;
            }
            struct proc *p = &procs[map[j] / 2];
            if (!p->used) continue;
            if (map[j] % 2 == 0) drain(&p->out, NV_STDOUT, p->id);
            else drain(&p->err, NV_STDERR, p->id);
        }
        if (pf[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {}
            reap();
        }
        if (pf[0].revents & POLLIN) {
            ssize_t r = read(port, rbuf + have, sizeof rbuf - 1 - have);
            if (r > 0) have += (size_t)r;
            for (;;) {
                if (have < sizeof(struct nv_hdr)) break;
                struct nv_hdr h;
                memcpy(&h, rbuf, sizeof h);
                if (h.len > NV_MAX_PAYLOAD) die("oversized frame");
                if (have < sizeof h + h.len) break;
                char save = rbuf[sizeof h + h.len];
                rbuf[sizeof h + h.len] = 0;
                handle(&h, rbuf + sizeof h);
                rbuf[sizeof h + h.len] = save;
                memmove(rbuf, rbuf + sizeof h + h.len, have - sizeof h - h.len);
                have -= sizeof h + h.len;
            }
        } else if (pf[0].revents & (POLLHUP | POLLERR)) {
            usleep(10000); /* host side not connected yet */
        }
    }
}
