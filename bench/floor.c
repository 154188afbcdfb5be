/* The DoT bench's floor (BENCH_DOT_FLOOR=1): a forwarder that makes the system calls
 * dproxy-full makes per query and does nothing else, so that its CPU per query is the
 * part of a DoT client's that no client can avoid at a given load.
 *
 * Per turn of its epoll loop, as dproxy: recvmmsg of the client queries, one write of
 * all of them (2-byte length frames) to one persistent pipelined TCP connection, reads
 * of the answers, sendmmsg of the replies. The ACK for answers read, as dproxy-full
 * sends it: while queries went out within the last 1 ms, it rides on the next write
 * of queries or goes on its own (TCP_QUICKACK) 1 ms after the read if answers are
 * still due; otherwise TCP_QUICKACK at once. Without TLS, cache, parsing (beyond the frames and the ID) or checks: the
 * upstream is the DoT server's plain TCP port, through the same relay. Not a DNS
 * client to use anywhere else: it trusts its upstream entirely.
 *
 *   floor LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT     (listens on 127.0.0.1) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define MAXMSG 4096

static struct sockaddr_in client[65536];
static unsigned char client_id[65536][2];
static unsigned char qbuf[BATCH][MAXMSG];
static unsigned char out[BATCH * (MAXMSG + 2)];
static unsigned char in[1 << 17];

static long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000L;
}

#define ACK_WAIT_US 1000L

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Writes all of BUF to the (blocking) upstream socket. */
static void write_all(int fd, const unsigned char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("upstream write");
        buf += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: floor LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT\n");
        return 2;
    }
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &la.sin_addr);
    if (u < 0 || bind(u, (struct sockaddr *)&la, sizeof la))
        die("listen");
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    if (inet_pton(AF_INET, argv[2], &ua.sin_addr) != 1) {
        fprintf(stderr, "bad upstream address %s\n", argv[2]);
        return 2;
    }
    int t = socket(AF_INET, SOCK_STREAM, 0);
    if (t < 0 || connect(t, (struct sockaddr *)&ua, sizeof ua))
        die("upstream connect");
    int one = 1;
    setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = u};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev))
        die("epoll");
    ev.data.fd = t;
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, t, &ev))
        die("epoll");
    struct mmsghdr m[BATCH], s[BATCH];
    struct iovec iov[BATCH], siov[BATCH];
    struct sockaddr_in from[BATCH];
    size_t inlen = 0;
    unsigned next_id = 0;
    long due = 0;
    long ack_by = 0;   /* µs on the monotonic clock; 0: no ACK owed */
    long wrote_at = 0; /* when queries last went out */
    for (;;) {
        struct epoll_event evs[8];
        int timeout = -1; /* no ACK owed: wait for traffic */
        if (ack_by) {
            long left = ack_by - now_us();
            timeout = left > 0 ? (int)((left + 999) / 1000) : 0;
        }
        int n = epoll_wait(ep, evs, 8, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait");
        long now = now_us();
        if (ack_by && now >= ack_by) {
            if (due > 0)
                setsockopt(t, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
            ack_by = 0;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == u) {
                for (;;) {
                    for (int k = 0; k < BATCH; k++) {
                        iov[k] = (struct iovec){qbuf[k], MAXMSG};
                        memset(&m[k].msg_hdr, 0, sizeof m[k].msg_hdr);
                        m[k].msg_hdr.msg_iov = &iov[k];
                        m[k].msg_hdr.msg_iovlen = 1;
                        m[k].msg_hdr.msg_name = &from[k];
                        m[k].msg_hdr.msg_namelen = sizeof from[k];
                    }
                    int r = recvmmsg(u, m, BATCH, 0, NULL);
                    if (r <= 0)
                        break;
                    size_t o = 0;
                    for (int k = 0; k < r; k++) {
                        unsigned len = m[k].msg_len;
                        if (len < 12)
                            continue;
                        unsigned id = next_id++ & 0xffff;
                        client[id] = from[k];
                        memcpy(client_id[id], qbuf[k], 2);
                        out[o] = (unsigned char)(len >> 8);
                        out[o + 1] = (unsigned char)len;
                        memcpy(out + o + 2, qbuf[k], len);
                        out[o + 2] = (unsigned char)(id >> 8);
                        out[o + 3] = (unsigned char)id;
                        o += len + 2;
                        due++;
                    }
                    if (o) {
                        write_all(t, out, o);
                        ack_by = 0; /* the write carried the ACK */
                        wrote_at = now;
                    }
                    /* A short batch took all there was (as dproxy reads). */
                    if (r < BATCH)
                        break;
                }
            } else {
                int got = 0;
                for (;;) {
                    ssize_t r = recv(t, in + inlen, sizeof in - inlen, MSG_DONTWAIT);
                    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                        fprintf(stderr, "upstream closed\n");
                        return 1;
                    }
                    if (r < 0)
                        break;
                    got = 1;
                    size_t before = inlen;
                    inlen += (size_t)r;
                    size_t p = 0;
                    int ns = 0;
                    while (inlen - p >= 2) {
                        size_t len = ((size_t)in[p] << 8) | in[p + 1];
                        if (inlen - p < 2 + len)
                            break;
                        unsigned char *msg = in + p + 2;
                        p += 2 + len;
                        if (len < 12)
                            continue;
                        unsigned id = ((unsigned)msg[0] << 8) | msg[1];
                        memcpy(msg, client_id[id], 2);
                        siov[ns] = (struct iovec){msg, len};
                        memset(&s[ns].msg_hdr, 0, sizeof s[ns].msg_hdr);
                        s[ns].msg_hdr.msg_iov = &siov[ns];
                        s[ns].msg_hdr.msg_iovlen = 1;
                        s[ns].msg_hdr.msg_name = &client[id];
                        s[ns].msg_hdr.msg_namelen = sizeof client[id];
                        due--;
                        if (++ns == BATCH) {
                            sendmmsg(u, s, ns, 0);
                            ns = 0;
                        }
                    }
                    if (ns)
                        sendmmsg(u, s, ns, 0);
                    memmove(in, in + p, inlen - p);
                    inlen -= p;
                    if (inlen == sizeof in)
                        inlen = 0; /* a frame larger than the buffer: not from a DNS server */
                    if ((size_t)r < sizeof in - before)
                        break;
                }
                if (got && due <= 0)
                    ack_by = 0;
                else if (got && now - wrote_at < ACK_WAIT_US) {
                    if (!ack_by)
                        ack_by = now + ACK_WAIT_US;
                } else if (got && !ack_by)
                    setsockopt(t, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
            }
        }
    }
}
