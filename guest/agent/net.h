/* Guest networking for the agent (included once by agent.c; static functions, one translation unit).
 *
 * 1. net_setup: each NIC is the twin of a veth in the container's network namespace on the host (QEMU's tap is
 *    tc-redirected to that veth, see src/nanovisor/runtime/vm/net.py). The host sends, in the CREATE payload,
 *      net   = "NAME MAC MTU IP/PREFIX [IP/PREFIX ...]"  (found here by MAC, renamed to NAME; IPv4 or IPv6)
 *      route = "DST/PREFIX GATEWAY NAME"                (IPv4 or IPv6)
 *      macvlan = as in 1b, for networks beyond the NICs microvm has slots for
 *    and we apply them with plain ioctls (no netlink library in a static agent). IPv6 addresses skip duplicate
 *    address detection (accept_dad=0 first), as dockerd's nodad: the engine's IPAM made them unique.
 * 1b. net_live (NET frame, "key=value;..."): a network connected to or disconnected from the running container.
 *    microvm has no hotplug, so a new network shares the first NIC, told apart by MAC: a macvlan device with the
 *    new veth's MAC (the host sends that NIC's frames from this MAC to the new veth, see runtime/vm/net.py):
 *      macvlan = "LOWER NAME MAC MTU IP/PREFIX..."  a macvlan device on LOWER, with its addresses, up
 *      flush  = "NAME"  the network left: a macvlan device is deleted, a boot NIC (cannot go) loses its addresses
 *      dns    = "127.0.0.11"  the relay below starts (the first user network came: netd answers there now)
 *      routes = ""      the gateway routes that follow replace every default route
 *      route  = as above
 * 2. The DNS relay: the container's /etc/resolv.conf names 127.0.0.11, netd's address inside the namespace on the
 *    host, which here is our own loopback. With dns = "127.0.0.11" we answer there (UDP and TCP), rewrite each
 *    query's ID to a slot number, send it to the host as an NV_DNS frame (the shim asks netd from inside the
 *    namespace) and hand the answer back to whoever asked, with its own ID restored. */
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <time.h>

static int net_fail(char *err, size_t n, const char *what, const char *name) {
    snprintf(err, n, "configure network: %s %s: %s", what, name, strerror(errno));
    return -1;
}

static int if_ioctl(int s, unsigned long req, struct ifreq *ifr, const char *name) {
    snprintf(ifr->ifr_name, IFNAMSIZ, "%s", name);
    return ioctl(s, req, ifr);
}

static int if_up(int s, const char *name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (if_ioctl(s, SIOCGIFFLAGS, &ifr, name) < 0) return -1;
    ifr.ifr_flags |= IFF_UP;
    return if_ioctl(s, SIOCSIFFLAGS, &ifr, name);
}

static void loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s >= 0) { if_up(s, "lo"); close(s); }
}

/* The guest interface whose MAC is mac (QEMU gives the NIC the veth's MAC), into name. */
static int if_by_mac(const char *mac, char *name) {
    DIR *d = opendir("/sys/class/net");
    struct dirent *e;
    int found = -1;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], addr[32] = "";
        snprintf(path, sizeof path, "/sys/class/net/%s/address", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t r = read(fd, addr, sizeof addr - 1);
        close(fd);
        if (r > 0 && !strncasecmp(addr, mac, strlen(mac))) {
            snprintf(name, IFNAMSIZ, "%.15s", e->d_name);
            found = 0;
            break;
        }
    }
    if (d) closedir(d);
    return found;
}

static int set_addr(int s, unsigned long req, const char *name, in_addr_t a) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = a;
    return if_ioctl(s, req, &ifr, name);
}

static int write_sysctl(const char *path, const char *val) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, val, strlen(val));
    close(fd);
    return w < 0 ? -1 : 0;
}

static int sysctl_if6(const char *name, const char *key, const char *val) {
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/%s", name, key);
    return write_sysctl(path, val);
}

struct nv_in6_ifreq { struct in6_addr addr; uint32_t prefixlen; int ifindex; }; /* linux/ipv6.h's in6_ifreq */

static int ioctl6(unsigned long req, void *arg) {
    int s6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s6 < 0) return -1;
    int r = ioctl(s6, req, arg), e = errno;
    close(s6);
    errno = e;
    return r;
}

static int net_addr6(const char *name, const char *ip, int prefix, char *err, size_t n) {
    struct nv_in6_ifreq r = {.prefixlen = (uint32_t)prefix, .ifindex = (int)if_nametoindex(name)};
    if (inet_pton(AF_INET6, ip, &r.addr) != 1) { errno = EINVAL; return net_fail(err, n, "address", ip); }
    sysctl_if6(name, "accept_dad", "0");
    if (ioctl6(SIOCSIFADDR, &r) < 0 && errno != EEXIST) return net_fail(err, n, "address", ip);
    return 0;
}

/* cidr "a.b.c.d/p" (the nth IPv4 address of name: aliases after the first) or "x::y/p" */
static int net_addr(int s, const char *name, int nth, char *cidr, char *err, size_t n) {
    char *slash = strchr(cidr, '/');
    if (strchr(cidr, ':')) {
        int prefix = slash ? atoi(slash + 1) : 128;
        if (slash) *slash = 0;
        return net_addr6(name, cidr, prefix, err, n);
    }
    char label[IFNAMSIZ + 8];
    if (nth) snprintf(label, sizeof label, "%.9s:%d", name, nth); /* secondary addresses: aliases */
    else snprintf(label, sizeof label, "%s", name);
    int prefix = slash ? atoi(slash + 1) : 32;
    if (slash) *slash = 0;
    struct in_addr ip;
    if (inet_pton(AF_INET, cidr, &ip) != 1) { errno = EINVAL; return net_fail(err, n, "address", cidr); }
    in_addr_t mask = prefix ? htonl(~0u << (32 - prefix)) : 0;
    if (set_addr(s, SIOCSIFADDR, label, ip.s_addr) < 0) return net_fail(err, n, "address", cidr);
    if (set_addr(s, SIOCSIFNETMASK, label, mask) < 0) return net_fail(err, n, "netmask", cidr);
    return 0;
}

/* The addresses of a "NAME MAC MTU ADDR..." remainder (strtok_r state in save), then up. */
static int net_addrs_up(int s, const char *name, char **save, char *err, size_t n) {
    int nth = 0;
    for (char *a; (a = strtok_r(NULL, " ", save));) {
        int v4 = !strchr(a, ':');
        if (net_addr(s, name, v4 ? nth : 0, a, err, n) < 0) return -1;
        nth += v4;
    }
    if (if_up(s, name) < 0) return net_fail(err, n, "up", name);
    return 0;
}

static int net_route6(const char *dst, int prefix, const char *gw, const char *dev, char *err, size_t n) {
    struct in6_rtmsg rt;
    memset(&rt, 0, sizeof rt);
    if (inet_pton(AF_INET6, dst, &rt.rtmsg_dst) != 1 || inet_pton(AF_INET6, gw, &rt.rtmsg_gateway) != 1) {
        errno = EINVAL;
        return net_fail(err, n, "route via", gw);
    }
    rt.rtmsg_dst_len = (unsigned short)prefix;
    rt.rtmsg_flags = RTF_UP | RTF_GATEWAY;
    rt.rtmsg_metric = 1024;
    rt.rtmsg_ifindex = (int)if_nametoindex(dev);
    if (ioctl6(SIOCADDRT, &rt) < 0 && errno != EEXIST) return net_fail(err, n, "route via", gw);
    return 0;
}

static int net_route(int s, char *spec, char *err, size_t n) {
    char dst[64], gw[64], dev[IFNAMSIZ];
    if (sscanf(spec, "%63s %63s %15s", dst, gw, dev) != 3) { errno = EINVAL; return net_fail(err, n, "route", spec); }
    char *slash = strchr(dst, '/');
    int v6 = strchr(gw, ':') != NULL, prefix = slash ? atoi(slash + 1) : v6 ? 128 : 32;
    if (slash) *slash = 0;
    if (v6) return net_route6(dst, prefix, gw, dev, err, n);
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    struct sockaddr_in *d = (struct sockaddr_in *)&rt.rt_dst, *g = (struct sockaddr_in *)&rt.rt_gateway,
                       *m = (struct sockaddr_in *)&rt.rt_genmask;
    d->sin_family = g->sin_family = m->sin_family = AF_INET;
    if (inet_pton(AF_INET, dst, &d->sin_addr) != 1 || inet_pton(AF_INET, gw, &g->sin_addr) != 1) {
        errno = EINVAL;
        return net_fail(err, n, "route", spec);
    }
    m->sin_addr.s_addr = prefix ? htonl(~0u << (32 - prefix)) : 0;
    rt.rt_flags = RTF_UP | RTF_GATEWAY | (prefix == 32 ? RTF_HOST : 0);
    rt.rt_dev = dev;
    if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST) return net_fail(err, n, "route via", gw);
    return 0;
}

static int net_macvlan(int s, char *spec, char *err, size_t n);

static int net_setup(struct kv *kv, char *err, size_t n) {
    char **nets = kv_all(kv, "net"), **routes = kv_all(kv, "route"), **shared = kv_all(kv, "macvlan");
    int rc = -1, s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    char tmp[8][IFNAMSIZ];
    if (s < 0) { free(nets); free(routes); free(shared); return net_fail(err, n, "socket", ""); }
    /* pass 1: find each NIC by MAC and give it a temporary name, so renames to eth0, eth1... never collide */
    int i;
    for (i = 0; nets[i] && i < 8; i++) {
        char mac[32], cur[IFNAMSIZ];
        if (sscanf(nets[i], "%*s %31s", mac) != 1 || if_by_mac(mac, cur) < 0) {
            errno = ENODEV;
            net_fail(err, n, "no NIC with MAC", nets[i]);
            goto out;
        }
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        snprintf(tmp[i], IFNAMSIZ, "nvnic%d", i);
        snprintf(ifr.ifr_newname, IFNAMSIZ, "%.15s", tmp[i]);
        if (if_ioctl(s, SIOCSIFNAME, &ifr, cur) < 0) { net_fail(err, n, "rename", cur); goto out; }
    }
    /* pass 2: final name, MTU, addresses, up */
    for (i = 0; nets[i] && i < 8; i++) {
        char *save = NULL, *name = strtok_r(nets[i], " ", &save);
        strtok_r(NULL, " ", &save); /* mac */
        char *mtu = strtok_r(NULL, " ", &save);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        snprintf(ifr.ifr_newname, IFNAMSIZ, "%s", name);
        if (if_ioctl(s, SIOCSIFNAME, &ifr, tmp[i]) < 0) { net_fail(err, n, "rename to", name); goto out; }
        memset(&ifr, 0, sizeof ifr);
        ifr.ifr_mtu = mtu ? atoi(mtu) : 1500;
        if (if_ioctl(s, SIOCSIFMTU, &ifr, name) < 0) { net_fail(err, n, "mtu", name); goto out; }
        if (net_addrs_up(s, name, &save, err, n) < 0) goto out;
    }
    for (char **m = shared; *m; m++) /* networks beyond the NICs: on the first one (see 1b) */
        if (net_macvlan(s, *m, err, n) < 0) goto out;
    for (char **r = routes; *r; r++)
        if (net_route(s, *r, err, n) < 0) goto out;
    rc = 0;
out:
    close(s);
    free(nets);
    free(shared);
    free(routes);
    return rc;
}

/* ---- live changes (NET frame) ---- */

/* rtnetlink, just enough to add and delete a macvlan link (no ioctl does that) */
struct nl_req { struct nlmsghdr h; struct ifinfomsg i; char attrs[512]; };

static struct rtattr *nl_put(struct nl_req *r, int type, const void *data, size_t len) {
    struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));
    a->rta_type = (unsigned short)type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len) memcpy(RTA_DATA(a), data, len);
    r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
    return a;
}

static void nl_end(struct nl_req *r, struct rtattr *nest) {
    nest->rta_len = (unsigned short)((char *)r + r->h.nlmsg_len - (char *)nest);
}

/* send the request, wait for its ack; 0 or -1 with errno */
static int nl_talk(struct nl_req *r) {
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) return -1;
    r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    r->h.nlmsg_seq = 1;
    struct sockaddr_nl k = {.nl_family = AF_NETLINK};
    int rc = -1, e = EIO;
    if (sendto(s, r, r->h.nlmsg_len, 0, (struct sockaddr *)&k, sizeof k) >= 0) {
        char buf[1024];
        ssize_t n = recv(s, buf, sizeof buf, 0);
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (n >= (ssize_t)sizeof *h && h->nlmsg_type == NLMSG_ERROR) {
            int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
            rc = err ? -1 : 0;
            e = -err;
        }
    }
    close(s);
    errno = e;
    return rc;
}

/* "LOWER NAME MAC MTU ADDR...": a macvlan device (bridge mode) on LOWER with the MAC, addresses, up. */
static int net_macvlan(int s, char *spec, char *err, size_t n) {
    char *save = NULL, *lower = strtok_r(spec, " ", &save), *name = strtok_r(NULL, " ", &save),
         *mac = strtok_r(NULL, " ", &save), *mtu = strtok_r(NULL, " ", &save);
    unsigned char hw[6];
    if (!mtu || sscanf(mac, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &hw[0], &hw[1], &hw[2], &hw[3], &hw[4], &hw[5]) != 6) {
        errno = EINVAL;
        return net_fail(err, n, "macvlan", spec);
    }
    uint32_t link = if_nametoindex(lower), m = (uint32_t)atoi(mtu), mode = MACVLAN_MODE_BRIDGE;
    if (!link) return net_fail(err, n, "no NIC", lower);
    /* answer ARP only on the interface that has the address: the first NIC sees every network's broadcasts */
    write_sysctl("/proc/sys/net/ipv4/conf/all/arp_ignore", "1");
    struct nl_req r;
    memset(&r, 0, sizeof r);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i);
    r.h.nlmsg_type = RTM_NEWLINK;
    r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    r.i.ifi_family = AF_UNSPEC;
    nl_put(&r, IFLA_LINK, &link, sizeof link);
    nl_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
    nl_put(&r, IFLA_ADDRESS, hw, sizeof hw);
    nl_put(&r, IFLA_MTU, &m, sizeof m);
    struct rtattr *info = nl_put(&r, IFLA_LINKINFO, NULL, 0);
    nl_put(&r, IFLA_INFO_KIND, "macvlan", 7);
    struct rtattr *data = nl_put(&r, IFLA_INFO_DATA, NULL, 0);
    nl_put(&r, IFLA_MACVLAN_MODE, &mode, sizeof mode);
    nl_end(&r, data);
    nl_end(&r, info);
    if (nl_talk(&r) < 0) return net_fail(err, n, "macvlan", name);
    return net_addrs_up(s, name, &save, err, n);
}

/* The network of NAME left: delete its macvlan device, or take a boot NIC's addresses off (it cannot go). */
static int net_flush(int s, const char *name, char *err, size_t n) {
    struct nl_req r;
    memset(&r, 0, sizeof r);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i);
    r.h.nlmsg_type = RTM_DELLINK;
    r.i.ifi_family = AF_UNSPEC;
    r.i.ifi_index = (int)if_nametoindex(name);
    if (!r.i.ifi_index) return 0; /* already gone */
    if (nl_talk(&r) == 0) return 0;
    for (int nth = 7; nth >= 0; nth--) { /* 0.0.0.0 deletes an IPv4 address; aliases first */
        char label[IFNAMSIZ + 8];
        if (nth) snprintf(label, sizeof label, "%.9s:%d", name, nth);
        else snprintf(label, sizeof label, "%s", name);
        set_addr(s, SIOCSIFADDR, label, 0);
    }
    FILE *f = fopen("/proc/net/if_inet6", "re");
    char hex[40], dev[IFNAMSIZ + 1];
    unsigned idx, plen, scope, flags;
    while (f && fscanf(f, "%32s %x %x %x %x %16s", hex, &idx, &plen, &scope, &flags, dev) == 6) {
        if (strcmp(dev, name) || scope != 0) continue;
        struct nv_in6_ifreq r6 = {.prefixlen = plen, .ifindex = (int)idx};
        for (int i = 0; i < 16; i++) sscanf(hex + 2 * i, "%2hhx", &r6.addr.s6_addr[i]);
        ioctl6(SIOCDIFADDR, &r6);
    }
    if (f) fclose(f);
    (void)err; (void)n;
    return 0;
}

/* Every default route goes (IPv4 and IPv6): the route= entries that follow are the whole new set. */
static void net_no_defaults(int s) {
    for (int i = 0; i < 16; i++) {
        struct rtentry rt;
        memset(&rt, 0, sizeof rt);
        ((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
        ((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
        rt.rt_flags = RTF_UP;
        if (ioctl(s, SIOCDELRT, &rt) < 0) break;
    }
    for (int i = 0; i < 16; i++) {
        struct in6_rtmsg rt;
        memset(&rt, 0, sizeof rt);
        rt.rtmsg_flags = RTF_UP;
        if (ioctl6(SIOCDELRT, &rt) < 0) break;
    }
}

static int dns_start_at(const char *addr, char *err, size_t n);

/* payload "key=value;key=value" (see the top of this file); err empty on success */
static void net_live(char *payload, char *err, size_t n) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) { net_fail(err, n, "socket", ""); return; }
    for (char *save, *t = strtok_r(payload, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(t, '=');
        if (!eq) continue;
        *eq = 0;
        char *v = eq + 1;
        int rc = 0;
        if (!strcmp(t, "macvlan")) rc = net_macvlan(s, v, err, n);
        else if (!strcmp(t, "flush")) rc = net_flush(s, v, err, n);
        else if (!strcmp(t, "dns")) rc = dns_start_at(v, err, n);
        else if (!strcmp(t, "routes")) net_no_defaults(s);
        else if (!strcmp(t, "route")) rc = net_route(s, v, err, n);
        if (rc < 0) break;
    }
    close(s);
}

/* ---- DNS relay ---- */

#define DNS_SLOTS 256
#define DNS_CONNS 8
#define DNS_MAX 4096
#define DNS_TTL 10 /* seconds a query waits for its answer before its slot is reused */

struct dns_slot { int used; uint16_t id; int conn; struct sockaddr_in from; time_t t; };
struct dns_conn { int fd; size_t n; unsigned char buf[2 + DNS_MAX]; };
static struct dns_slot dns_slots[DNS_SLOTS];
static struct dns_conn dns_conns[DNS_CONNS];
static int dns_udp = -1, dns_tcp = -1;
static unsigned dns_next;

static int dns_bind(int type, const char *addr) {
    int s = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, addr, &a.sin_addr);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || (type == SOCK_STREAM && listen(s, 16) < 0)) {
        close(s);
        return -1;
    }
    return s;
}

static int dns_start_at(const char *addr, char *err, size_t n) {
    if (!addr || dns_udp >= 0) return 0;
    for (int i = 0; i < DNS_CONNS; i++) dns_conns[i].fd = -1;
    dns_udp = dns_bind(SOCK_DGRAM, addr);
    dns_tcp = dns_bind(SOCK_STREAM, addr);
    if (dns_udp < 0 || dns_tcp < 0) return net_fail(err, n, "DNS relay on", addr);
    return 0;
}

static int dns_start(struct kv *kv, char *err, size_t n) {
    return dns_start_at(kv_get(kv, "dns"), err, n);
}

/* A query from a guest process: park who asked in a slot, send it on with the slot number as its ID. */
static void dns_forward(unsigned char *q, size_t len, int conn, struct sockaddr_in *from) {
    if (len < 12 || len > DNS_MAX) return;
    time_t t = time(NULL);
    unsigned k;
    for (k = 0; k < DNS_SLOTS; k++) {
        struct dns_slot *s = &dns_slots[(dns_next + k) % DNS_SLOTS];
        if (!s->used || t - s->t > DNS_TTL) break;
    }
    if (k == DNS_SLOTS) return; /* all busy: drop, the resolver retries */
    unsigned slot = (dns_next + k) % DNS_SLOTS;
    dns_next = slot + 1;
    struct dns_slot *s = &dns_slots[slot];
    s->used = 1;
    s->t = t;
    s->conn = conn;
    memcpy(&s->id, q, 2);
    if (from) s->from = *from;
    q[0] = (unsigned char)(slot >> 8);
    q[1] = (unsigned char)slot;
    send_frame(NV_DNS, 0, q, (uint32_t)len);
}

/* netd's answer, from the host. */
static void dns_answer(unsigned char *a, uint32_t len) {
    if (len < 12) return;
    unsigned slot = ((unsigned)a[0] << 8 | a[1]) % DNS_SLOTS;
    struct dns_slot *s = &dns_slots[slot];
    if (!s->used) return;
    s->used = 0;
    memcpy(a, &s->id, 2);
    if (s->conn < 0) {
        sendto(dns_udp, a, len, MSG_DONTWAIT, (struct sockaddr *)&s->from, sizeof s->from);
    } else if (dns_conns[s->conn].fd >= 0) {
        unsigned char hdr[2] = {(unsigned char)(len >> 8), (unsigned char)len};
        struct iovec iov[2] = {{hdr, 2}, {a, len}};
        writev(dns_conns[s->conn].fd, iov, 2); /* small answers to a fresh socket buffer: never short */
    }
}

static void dns_conn_close(int i) {
    close(dns_conns[i].fd);
    dns_conns[i].fd = -1;
    for (int k = 0; k < DNS_SLOTS; k++)
        if (dns_slots[k].used && dns_slots[k].conn == i) dns_slots[k].used = 0;
}

static int dns_pollfds(struct pollfd *pf, int *map, int base) {
    int n = 0;
    if (dns_udp < 0) return 0;
    pf[n] = (struct pollfd){dns_udp, POLLIN, 0}; map[n++] = base;
    pf[n] = (struct pollfd){dns_tcp, POLLIN, 0}; map[n++] = base + 1;
    for (int i = 0; i < DNS_CONNS; i++)
        if (dns_conns[i].fd >= 0) { pf[n] = (struct pollfd){dns_conns[i].fd, POLLIN, 0}; map[n++] = base + 2 + i; }
    return n;
}

static void dns_ready(int which) {
    unsigned char buf[DNS_MAX];
    if (which == 0) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t r;
        while ((r = recvfrom(dns_udp, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl)) > 0) {
            dns_forward(buf, (size_t)r, -1, &from);
            fl = sizeof from;
        }
    } else if (which == 1) {
        int fd = accept4(dns_tcp, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) return;
        for (int i = 0; i < DNS_CONNS; i++)
            if (dns_conns[i].fd < 0) { dns_conns[i].fd = fd; dns_conns[i].n = 0; return; }
        close(fd); /* too many at once */
    } else {
        int i = which - 2;
        struct dns_conn *c = &dns_conns[i];
        ssize_t r = read(c->fd, c->buf + c->n, sizeof c->buf - c->n);
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
            dns_conn_close(i);
            return;
        }
        c->n += (size_t)r;
        for (;;) { /* RFC 7766: a connection may carry several length-prefixed queries */
            if (c->n < 2) return;
            size_t len = (size_t)c->buf[0] << 8 | c->buf[1];
            if (len > DNS_MAX) { dns_conn_close(i); return; }
            if (c->n < 2 + len) return;
            memcpy(buf, c->buf + 2, len);
            dns_forward(buf, len, i, NULL);
            memmove(c->buf, c->buf + 2 + len, c->n - 2 - len);
            c->n -= 2 + len;
        }
    }
}
