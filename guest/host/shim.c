/* nv-shim: the steady-state half of the per-container shim (src/nanovisor/runtime/vm/shim.py boots the VM, then
 * execs this with the same pid, so conmon keeps waiting on it). ~1 MB instead of a ~12 MB Python process.
 *
 * It relays the container's stdio between its own stdio (conmon's pipes, or the host pty) and the guest agent,
 * serves the control socket (start/kill/stats/ps/exec; one JSON line per request, exec streams as frames),
 * watches QEMU/virtiofsd and the agent's heartbeat, and exits with the container's wait status after tearing
 * the VM down. It is the only steady-state shim: the Python side only boots (one implementation per role).
 *
 * It also relays DNS: queries the agent took on the guest's 127.0.0.11 go out of DNS_FD, a UDP socket connected
 * to netd's 127.0.0.11:53 inside the container's network namespace, and the answers go back (see vm/net.py).
 *
 * argv: nv-shim DIR AGENT_FD CTL_FD REPORT_FD TTY_FD QEMU_PID FSD_PID HANG_TIMEOUT_S [DNS_FD] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h" /* generated from protocol.py (guest.py -I) */

#define MAXC 64
#define KILL_GRACE 10.0

struct buf { char *p; size_t n; };
struct client {
    int fd;
    int mode;          /* 0: reading the request line, 1: exec stream, 2: waiting for a reply */
    uint32_t id;       /* exec / request id */
    struct buf in, out;
    int closing;       /* close once out is flushed */
};

static const char *dir;
static int agent, ctl, report_fd, tty_fd, in_fd, dns_fd = -1;
static pid_t qemu, fsd;
static double hang_timeout;
static struct buf agent_in, agent_out;
static struct client cl[MAXC];
static uint32_t next_id = 1;
static double kill_deadline = 0, last_heard;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void append(struct buf *b, const void *d, size_t n) {
    b->p = realloc(b->p, b->n + n + 1);
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void consume(struct buf *b, size_t n) {
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
}

static void write_all(int fd, const void *d, size_t n) {
    const char *p = d;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) { struct pollfd q = {fd, POLLOUT, 0}; poll(&q, 1, -1); continue; }
        if (w < 0) return; /* reader gone (conmon died): drop output, keep the container's fate intact */
        p += w;
        n -= (size_t)w;
    }
}

static void frame_to(struct buf *b, uint8_t type, uint32_t id, const void *d, uint32_t len) {
    struct nv_hdr h = {type, {0, 0, 0}, id, len};
    append(b, &h, sizeof h);
    if (len) append(b, d, len);
}

static void to_agent(uint8_t type, uint32_t id, const char *d, uint32_t len) { frame_to(&agent_out, type, id, d, len); }

static void flush(int fd, struct buf *b) {
    while (b->n) {
        ssize_t w = write(fd, b->p, b->n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN) b->n = 0;
        if (w <= 0) return;
        consume(b, (size_t)w);
    }
}

static void path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static void report(const char *msg) {
    if (report_fd < 0) return;
    write_all(report_fd, *msg ? msg : "", *msg ? strlen(msg) : 1);
    close(report_fd);
    report_fd = -1;
}

static void drop(struct client *c) {
    close(c->fd);
    free(c->in.p);
    free(c->out.p);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void finish(int status, const char *why) __attribute__((noreturn));
static void finish(int status, const char *why) {
    if (why) {
        char m[300];
        int n = snprintf(m, sizeof m, "nanovisor-vm: %s\n", why);
        write_all(tty_fd >= 0 ? tty_fd : 2, m, (size_t)n);
        status = SIGKILL;
    }
    for (int i = 0; i < MAXC; i++) {
        struct client *c = &cl[i];
        if (c->fd < 0 || c->mode != 1) continue;
        frame_to(&c->out, NV_EXIT, 0, "9", 1);
        fcntl(c->fd, F_SETFL, 0);
        write_all(c->fd, c->out.p, c->out.n);
    }
    kill(-qemu, SIGKILL);
    kill(-fsd, SIGKILL);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {} /* we are the subreaper: nothing outlives us */
    char p[4200];
    path(p, sizeof p, "ctl.sock"); unlink(p);
    path(p, sizeof p, "vm/qmp.sock"); unlink(p);
    path(p, sizeof p, "exit");
    FILE *f = fopen(p, "w");
    if (f) { fprintf(f, "%d", status); fclose(f); }
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

static void winsize(int *rows, int *cols) {
    struct winsize w = {0};
    ioctl(tty_fd, TIOCGWINSZ, &w);
    *rows = w.ws_row;
    *cols = w.ws_col;
}

static struct client *by_id(uint32_t id) {
    for (int i = 0; i < MAXC; i++)
        if (cl[i].fd >= 0 && cl[i].id == id && cl[i].mode) return &cl[i];
    return NULL;
}

static void agent_frame(struct nv_hdr *h, char *d) {
    last_heard = now();
    if (h->type == NV_DNS) {
        if (dns_fd >= 0) send(dns_fd, d, h->len, MSG_DONTWAIT); /* lost: the guest's resolver retries */
        return;
    }
    if (h->id == 0) {
        if ((h->type == NV_STDOUT || h->type == NV_STDERR) && h->len)
            write_all(tty_fd >= 0 ? tty_fd : (h->type == NV_STDOUT ? 1 : 2), d, h->len);
        else if (h->type == NV_EXIT) {
            d[h->len] = 0;
            if (strstr(d, " oom")) { /* the engine's OOMKilled marker, where conmon writes it for runc */
                char p[4200];
                path(p, sizeof p, "bundle/oom");
                close(open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
            }
            finish(atoi(d), NULL);
        }
        return;
    }
    struct client *c = by_id(h->id);
    if (!c) return;
    if (h->type == NV_REPLY) {
        append(&c->out, "{\"ok\": true, \"data\": \"", 22);
        for (uint32_t i = 0; i < h->len; i++) { /* JSON string escaping: the ps reply carries command lines */
            unsigned char ch = (unsigned char)d[i];
            char esc[8];
            if (ch == '"' || ch == '\\') { esc[0] = '\\'; esc[1] = (char)ch; append(&c->out, esc, 2); }
            else if (ch < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", ch); append(&c->out, esc, 6); }
            else append(&c->out, &d[i], 1);
        }
        append(&c->out, "\"}\n", 3);
        c->closing = 1;
        return;
    }
    frame_to(&c->out, h->type, 0, d, h->len);
    if (h->type == NV_EXIT || (h->type == NV_CREATED && h->len)) c->closing = 1;
}

static int field_int(const char *s, const char *key, int dflt) {
    const char *p = strstr(s, key);
    return p ? atoi(p + strlen(key)) : dflt;
}

static void request(struct client *c, char *line) {
    char p[4200];
    if (strstr(line, "\"op\": \"start\"")) {
        path(p, sizeof p, "started");
        close(open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        to_agent(NV_START, 0, NULL, 0);
        append(&c->out, "{\"ok\": true}\n", 13);
        c->closing = 1;
    } else if (strstr(line, "\"op\": \"kill\"")) {
        int sig = field_int(line, "\"signal\": ", SIGTERM), all = strstr(line, "\"all\": true") != NULL;
        char m[32];
        int n = snprintf(m, sizeof m, "%d %d", sig, all);
        to_agent(NV_KILL, 0, m, (uint32_t)n);
        if (sig == SIGKILL && !kill_deadline) kill_deadline = now() + KILL_GRACE;
        append(&c->out, "{\"ok\": true}\n", 13);
        c->closing = 1;
    } else if (strstr(line, "\"op\": \"stats\"") || strstr(line, "\"op\": \"ps\"")) {
        c->mode = 2;
        c->id = ++next_id;
        to_agent(strstr(line, "\"stats\"") ? NV_STATS : NV_PS, c->id, NULL, 0);
    } else if (strstr(line, "\"op\": \"update\"") || strstr(line, "\"op\": \"net\"")) {
        /* {"op": "update"|"net", "data": "k=v;k=v"}: no quotes inside */
        const char *d = strstr(line, "\"data\": \"");
        const char *e = d ? strchr(d + 9, '"') : NULL;
        if (!e) {
            append(&c->out, "{\"error\": \"bad update request\"}\n", 32); /* or net */
            c->closing = 1;
            return;
        }
        c->mode = 2;
        c->id = ++next_id;
        to_agent(strstr(line, "\"op\": \"net\"") ? NV_NET : NV_UPDATE, c->id, d + 9, (uint32_t)(e - d - 9));
    } else if (strstr(line, "\"op\": \"exec\"")) {
        c->mode = 1;
        c->id = ++next_id;
    } else {
        append(&c->out, "{\"error\": \"unknown request\"}\n", 29);
        c->closing = 1;
    }
}

static void client_read(struct client *c) {
    char b[65536];
    ssize_t n = read(c->fd, b, sizeof b);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        drop(c);
        return;
    }
    append(&c->in, b, (size_t)n);
    if (c->mode == 0) {
        char *nl = memchr(c->in.p, '\n', c->in.n);
        if (!nl) return;
        *nl = 0;
        size_t used = (size_t)(nl - c->in.p) + 1;
        char *line = strndup(c->in.p, used);
        consume(&c->in, used);
        request(c, line);
        free(line);
    }
    while (c->mode == 1 && c->in.n >= sizeof(struct nv_hdr)) {
        struct nv_hdr h;
        memcpy(&h, c->in.p, sizeof h);
        if (c->in.n < sizeof h + h.len) break;
        to_agent(h.type, c->id, c->in.p + sizeof h, h.len);
        consume(&c->in, sizeof h + h.len);
    }
}

static void agent_read(void) {
    char b[65536];
    ssize_t n = read(agent, b, sizeof b);
    if (n == 0) finish(SIGKILL, "the microVM closed the agent channel");
    if (n < 0) return;
    append(&agent_in, b, (size_t)n);
    while (agent_in.n >= sizeof(struct nv_hdr)) {
        struct nv_hdr h;
        memcpy(&h, agent_in.p, sizeof h);
        if (agent_in.n < sizeof h + h.len) break;
        char *d = malloc(h.len + 1);
        memcpy(d, agent_in.p + sizeof h, h.len);
        consume(&agent_in, sizeof h + h.len);
        agent_frame(&h, d);
        free(d);
    }
}

int main(int argc, char **argv) {
    if (argc < 9) { fprintf(stderr, "usage: nv-shim DIR AGENT CTL REPORT TTY QEMU FSD HANG\n"); return 2; }
    dir = argv[1];
    agent = atoi(argv[2]);
    ctl = atoi(argv[3]);
    report_fd = atoi(argv[4]);
    tty_fd = atoi(argv[5]);
    qemu = atoi(argv[6]);
    fsd = atoi(argv[7]);
    hang_timeout = atof(argv[8]);
    if (argc > 9) dns_fd = atoi(argv[9]);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    for (int i = 0; i < MAXC; i++) cl[i].fd = -1;
    in_fd = tty_fd >= 0 ? tty_fd : 0;
    fcntl(agent, F_SETFL, O_NONBLOCK);
    fcntl(ctl, F_SETFL, O_NONBLOCK);
    if (dns_fd >= 0) fcntl(dns_fd, F_SETFL, O_NONBLOCK);
    int stdin_open = 1;
    if (fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK) < 0) stdin_open = 0;

    sigset_t mask;
    sigemptyset(&mask);
    int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) sigaddset(&mask, fwd[i]);
    sigaddset(&mask, SIGWINCH);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    last_heard = now();
    report("");

    for (;;) {
        struct pollfd pf[5 + MAXC];
        int idx[5 + MAXC];
        int n = 0;
        pf[n] = (struct pollfd){agent, POLLIN | (agent_out.n ? POLLOUT : 0), 0}; idx[n++] = -1;
        pf[n] = (struct pollfd){ctl, POLLIN, 0}; idx[n++] = -2;
        pf[n] = (struct pollfd){sfd, POLLIN, 0}; idx[n++] = -3;
        if (stdin_open) { pf[n] = (struct pollfd){in_fd, POLLIN, 0}; idx[n++] = -4; }
        if (dns_fd >= 0) { pf[n] = (struct pollfd){dns_fd, POLLIN, 0}; idx[n++] = -5; }
        for (int i = 0; i < MAXC; i++)
            if (cl[i].fd >= 0) { pf[n] = (struct pollfd){cl[i].fd, POLLIN | (cl[i].out.n ? POLLOUT : 0), 0}; idx[n++] = i; }
        poll(pf, (nfds_t)n, 1000);
        for (int j = 0; j < n; j++) {
            short re = pf[j].revents;
            if (!re) continue;
            if (idx[j] == -1) {
                if (re & POLLOUT) flush(agent, &agent_out);
                if (re & (POLLIN | POLLHUP)) agent_read();
            } else if (idx[j] == -2) {
                int fd = accept4(ctl, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) continue;
                int k = 0;
                while (k < MAXC && cl[k].fd >= 0) k++;
                if (k == MAXC) { close(fd); continue; }
                memset(&cl[k], 0, sizeof cl[k]);
                cl[k].fd = fd;
            } else if (idx[j] == -3) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == sizeof si) {
                    if (si.ssi_signo == SIGWINCH && tty_fd >= 0) {
                        int r, c;
                        winsize(&r, &c);
                        char m[32];
                        int len = snprintf(m, sizeof m, "%d %d", r, c);
                        to_agent(NV_RESIZE, 0, m, (uint32_t)len);
                    } else if (si.ssi_signo != SIGCHLD && si.ssi_signo != SIGWINCH) {
                        char m[32];
                        int len = snprintf(m, sizeof m, "%d 0", si.ssi_signo);
                        to_agent(NV_KILL, 0, m, (uint32_t)len);
                    }
                }
                int st;
                pid_t p;
                while ((p = waitpid(-1, &st, WNOHANG)) > 0)
                    if (p == qemu || p == fsd) finish(SIGKILL, p == qemu ? "the microVM stopped (qemu exited)"
                                                                        : "the microVM stopped (virtiofsd exited)");
            } else if (idx[j] == -5) {
                char b[65536];
                ssize_t r;
                while ((r = recv(dns_fd, b, sizeof b, 0)) >= 0 || errno == ECONNREFUSED || errno == EINTR)
                    if (r > 0) to_agent(NV_DNS, 0, b, (uint32_t)r);
            } else if (idx[j] == -4) {
                char b[65536];
                ssize_t r = read(in_fd, b, sizeof b);
                if (r > 0) to_agent(NV_STDIN, 0, b, (uint32_t)r);
                else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    stdin_open = 0;
                    if (tty_fd < 0) to_agent(NV_STDIN, 0, NULL, 0);
                }
            } else {
                struct client *c = &cl[idx[j]];
                if (c->fd < 0) continue;
                if (re & POLLOUT) flush(c->fd, &c->out);
                if (re & (POLLIN | POLLHUP | POLLERR)) client_read(c);
            }
        }
        for (int i = 0; i < MAXC; i++) {
            struct client *c = &cl[i];
            if (c->fd >= 0 && c->out.n) flush(c->fd, &c->out);
            if (c->fd >= 0 && c->closing && !c->out.n) drop(c);
        }
        if (agent_out.n) flush(agent, &agent_out);
        double t = now();
        if (kill_deadline && t > kill_deadline) finish(SIGKILL, "the guest did not stop after SIGKILL; microVM killed");
        char p[4200];
        path(p, sizeof p, "paused");
        if (access(p, F_OK) == 0) last_heard = t; /* a paused VM is silent on purpose */
        else if (t - last_heard > hang_timeout) {
            char m[128];
            snprintf(m, sizeof m, "the guest did not answer for %.0f s; microVM killed", hang_timeout);
            finish(SIGKILL, m);
        }
    }
}
