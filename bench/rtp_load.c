/*
 * rtp_load: G.711 RTP load generator for bench/media_relay.py.
 *
 * Plays N calls through an RTP relay (a media server): each call has two phones,
 * A and B, each one UDP socket on 127.0.0.1. Phone A sends to the relay's port
 * for leg a, phone B to the relay's port for leg b, one packet every --ptime ms
 * (default 20: 50 packets/s per direction), --size bytes each (default 172: a
 * 12-byte RTP header and 160 bytes of PCMU). The relay forwards A's packets to B
 * and B's to A; the generator counts what arrives at each phone.
 *
 * One process, one thread. The 2N streams are paced on one schedule, their send
 * times spread evenly over the packet interval (stream j of 2N sends at
 * j * ptime / 2N, then every ptime). The process wakes every --tick-us (default
 * 500 us: 40 slots per 20 ms) with clock_nanosleep, reads everything that arrived
 * (one epoll_wait for the ready sockets, one recvmmsg per ready socket) and sends
 * what is due. Batching per tick, rather than waking for every packet, keeps the
 * generator's CPU below the relay's: both do the same kernel work per packet
 * (a send that delivers into the other side's socket, a receive). Each phone has
 * its own socket and port (the relay latches on it), so a send is one sendto:
 * sendmmsg cannot batch datagrams of different sockets.
 *
 * Latency is the kernel's receive time of a packet (SO_TIMESTAMPNS) less the send
 * time it carries; packets later than --late-ms (default 200) are counted as
 * "late" (too late for a phone's jitter buffer); SO_RXQ_OVFL counts what the phones' sockets dropped (a
 * generator too slow to read).
 *
 * Protocol on stdin/stdout (driven by media_relay.py):
 *   1. it binds 2N sockets (even ports from --port-min up, skipping ports in use)
 *      and prints   ports A0 B0 A1 B1 ...
 *   2. it reads N lines "IP_A PORT_A IP_B PORT_B" (where phone A and phone B of
 *      call i send: the relay's ports for leg a and leg b), then a line "go";
 *   3. prints "sending" when the first packet goes out, sends for --seconds,
 *      prints "draining", keeps receiving for at most --drain seconds (less when
 *      everything sent has arrived), and prints "result {JSON}" and exits.
 *
 * Every packet carries, after the RTP header, its send time (CLOCK_REALTIME ns)
 * and its stream number, so that the receiver measures the relay's latency and
 * checks that it arrived at the other phone of its own call. The RTP SSRC is
 * 0x5A000000 + the stream number; the sequence number and timestamp advance by 1
 * and 160 per packet.
 *
 * It reports its own CPU time (getrusage) over the sending window, how late its
 * sends were against the schedule, and the achieved send rate, so that the
 * caller can tell when the generator (rather than the relay) is the bottleneck.
 *
 * Build: gcc -O2 -Wall -o rtp_load rtp_load.c     (Linux)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SSRC_BASE 0x5A000000u
#define RTP_HEADER 12
#define MIN_SIZE (RTP_HEADER + 12) /* header + send time + stream number */
#define MAX_SIZE 1500
#define RECV_BATCH 16
#define MAX_EVENTS 1024
/* Latency and send-lateness histograms: 10 us buckets up to 1 s, then overflow. */
#define HIST_BUCKET_NS 10000ull
#define HIST_BUCKETS 100001

struct stream {
    struct sockaddr_in dst; /* where this stream's phone sends (the relay) */
    uint64_t sent;
    uint64_t received;  /* at the other phone of the call, in order or not */
    uint64_t duplicates;
    uint64_t reordered;
    uint16_t seq;       /* next sequence number to send */
    uint16_t last_rx;   /* highest sequence number received */
    int rx_started;
};

struct hist {
    uint32_t *b;
    uint64_t n;
    uint64_t max_ns;
};

static struct stream *streams;
static int *fds;
static uint16_t *ports;
static uint32_t *socket_drops; /* per socket, from SO_RXQ_OVFL */
static long n_calls, n_streams;

static uint64_t bad_packets;    /* not our RTP: wrong size, version or SSRC */
static uint64_t misrouted;      /* a packet of stream j arriving anywhere but at its call's other phone */
static uint64_t wrong_source;   /* from an address other than the one the receiving phone sends to */
static uint64_t send_errors;
static int first_send_errno;
static uint64_t total_received, total_sent;
static struct hist latency, lateness;

static void die(const char *what) {
    fprintf(stderr, "rtp_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *msg) {
    fprintf(stderr, "rtp_load: %s\n", msg);
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void hist_init(struct hist *h) {
    h->b = calloc(HIST_BUCKETS, sizeof(uint32_t));
    if (!h->b) fail("out of memory");
}

static void hist_add(struct hist *h, uint64_t ns) {
    uint64_t i = ns / HIST_BUCKET_NS;
    if (i >= HIST_BUCKETS) i = HIST_BUCKETS - 1;
    h->b[i]++;
    h->n++;
    if (ns > h->max_ns) h->max_ns = ns;
}

/* How many samples were >= ns (to the bucket). */
static uint64_t hist_at_least(const struct hist *h, uint64_t ns) {
    uint64_t count = 0;
    for (uint64_t i = ns / HIST_BUCKET_NS; i < HIST_BUCKETS; i++) count += h->b[i];
    return count;
}

/* The q-quantile in microseconds (upper edge of its bucket). */
static double hist_quantile_us(const struct hist *h, double q) {
    if (!h->n) return 0;
    uint64_t rank = (uint64_t)(q * (double)(h->n - 1)) + 1, seen = 0;
    for (long i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) return (double)((i + 1) * HIST_BUCKET_NS) / 1000.0;
    }
    return (double)h->max_ns / 1000.0;
}

static void raise_nofile(long needed) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)needed) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)needed) {
            fprintf(stderr, "rtp_load: %ld sockets need more open files than the limit (%lu)\n", needed,
                    (unsigned long)rl.rlim_cur);
            exit(1);
        }
    }
}

/* Bind the 2N phone sockets on even ports from port_min up, skipping ports in use. */
static void bind_sockets(const char *host, int port_min, int port_max, int rcvbuf) {
    struct in_addr addr;
    if (inet_pton(AF_INET, host, &addr) != 1) fail("bad --host");
    int port = port_min + (port_min & 1);
    for (long s = 0; s < n_streams; s++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) die("socket");
        int on = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) die("SO_TIMESTAMPNS");
        if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on) < 0) die("SO_RXQ_OVFL");
        if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        for (;; port += 2) {
            if (port > port_max) fail("not enough free ports between --port-min and --port-max");
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = addr};
            if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0) break;
            if (errno != EADDRINUSE && errno != EACCES) die("bind");
        }
        fds[s] = fd;
        ports[s] = (uint16_t)port;
        port += 2;
    }
}

static void read_targets(void) {
    char line[256], ip_a[64], ip_b[64];
    int port_a, port_b;
    for (long c = 0; c < n_calls; c++) {
        if (!fgets(line, sizeof line, stdin)) fail("stdin closed before every call's target was given");
        if (sscanf(line, "%63s %d %63s %d", ip_a, &port_a, ip_b, &port_b) != 4) fail("bad target line");
        struct stream *a = &streams[2 * c], *b = &streams[2 * c + 1];
        a->dst.sin_family = b->dst.sin_family = AF_INET;
        if (inet_pton(AF_INET, ip_a, &a->dst.sin_addr) != 1 || inet_pton(AF_INET, ip_b, &b->dst.sin_addr) != 1)
            fail("bad target address");
        if (port_a <= 0 || port_a > 65535 || port_b <= 0 || port_b > 65535) fail("bad target port");
        a->dst.sin_port = htons((uint16_t)port_a);
        b->dst.sin_port = htons((uint16_t)port_b);
    }
    if (!fgets(line, sizeof line, stdin) || strncmp(line, "go", 2) != 0) fail("expected \"go\"");
}

static void send_packet(long j, unsigned char *pkt, int size, uint64_t t_real) {
    struct stream *st = &streams[j];
    uint32_t ts = (uint32_t)(st->sent * 160u), ssrc = SSRC_BASE + (uint32_t)j, stream_no = (uint32_t)j;
    pkt[0] = 0x80;
    pkt[1] = 0; /* PCMU, no marker */
    pkt[2] = (unsigned char)(st->seq >> 8);
    pkt[3] = (unsigned char)st->seq;
    ts = htonl(ts);
    ssrc = htonl(ssrc);
    memcpy(pkt + 4, &ts, 4);
    memcpy(pkt + 8, &ssrc, 4);
    memcpy(pkt + RTP_HEADER, &t_real, 8);
    memcpy(pkt + RTP_HEADER + 8, &stream_no, 4);
    if (sendto(fds[j], pkt, (size_t)size, 0, (struct sockaddr *)&st->dst, sizeof st->dst) == size) {
        st->sent++;
        total_sent++;
    } else {
        if (!send_errors) first_send_errno = errno;
        send_errors++;
    }
    st->seq++;
}

/* Drain socket s (the phone of stream s). Latency: the kernel's receive time of each
 * packet (SO_TIMESTAMPNS, CLOCK_REALTIME) less the send time the packet carries. */
static void receive(long s, int size) {
    static struct mmsghdr msgs[RECV_BATCH];
    static struct iovec iov[RECV_BATCH];
    static unsigned char buf[RECV_BATCH][MAX_SIZE];
    static struct sockaddr_in from[RECV_BATCH];
    static union {
        char buf[CMSG_SPACE(sizeof(struct timespec)) + CMSG_SPACE(sizeof(uint32_t))];
        struct cmsghdr align;
    } control[RECV_BATCH];
    for (;;) {
        for (int i = 0; i < RECV_BATCH; i++) {
            iov[i].iov_base = buf[i];
            iov[i].iov_len = MAX_SIZE;
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i],
                                              .msg_iov = &iov[i], .msg_iovlen = 1,
                                              .msg_control = control[i].buf,
                                              .msg_controllen = sizeof control[i].buf};
        }
        int n = recvmmsg(fds[s], msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNREFUSED) return;
            die("recvmmsg");
        }
        for (int i = 0; i < n; i++) {
            uint64_t at = 0;
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr); cm; cm = CMSG_NXTHDR(&msgs[i].msg_hdr, cm)) {
                if (cm->cmsg_level != SOL_SOCKET) continue;
                if (cm->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(cm), sizeof ts);
                    at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
                } else if (cm->cmsg_type == SO_RXQ_OVFL) {
                    /* The socket's count of datagrams dropped for a full receive buffer. */
                    uint32_t dropped;
                    memcpy(&dropped, CMSG_DATA(cm), sizeof dropped);
                    if (dropped > socket_drops[s]) socket_drops[s] = dropped;
                }
            }
            const unsigned char *p = buf[i];
            uint32_t ssrc;
            memcpy(&ssrc, p + 8, 4);
            ssrc = ntohl(ssrc);
            if ((int)msgs[i].msg_len != size || (p[0] & 0xC0) != 0x80 || ssrc - SSRC_BASE >= (uint32_t)n_streams) {
                bad_packets++;
                continue;
            }
            long j = (long)(ssrc - SSRC_BASE);
            if ((j ^ 1) != s) {
                misrouted++;
                continue;
            }
            /* Phone s sends to the relay's port of its own leg; the relay should send from there. */
            if (from[i].sin_port != streams[s].dst.sin_port || from[i].sin_addr.s_addr != streams[s].dst.sin_addr.s_addr)
                wrong_source++;
            struct stream *st = &streams[j];
            uint16_t seq = (uint16_t)((p[2] << 8) | p[3]);
            if (!st->rx_started) {
                st->rx_started = 1;
                st->last_rx = seq;
            } else {
                int16_t d = (int16_t)(seq - st->last_rx);
                if (d > 0)
                    st->last_rx = seq;
                else if (d == 0)
                    st->duplicates++;
                else
                    st->reordered++;
            }
            st->received++;
            total_received++;
            uint64_t sent_at;
            memcpy(&sent_at, p + RTP_HEADER, 8);
            if (!at) at = real_ns();
            if (sent_at <= at) hist_add(&latency, at - sent_at);
        }
        if (n < RECV_BATCH) return;
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: rtp_load --calls N [--seconds S] [--drain S] [--ptime MS] [--size BYTES]\n"
            "                [--host IP] [--port-min P] [--port-max P] [--rcvbuf BYTES] [--tick-us US]\n"
            "                [--late-ms MS]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    double seconds = 10, drain = 2;
    int ptime_ms = 20, size = 172, port_min = 40000, port_max = 59999, rcvbuf = 0, tick_us = 500, late_ms = 200;
    static const struct option opts[] = {
        {"calls", required_argument, 0, 'n'},    {"seconds", required_argument, 0, 't'},
        {"drain", required_argument, 0, 'd'},    {"ptime", required_argument, 0, 'p'},
        {"size", required_argument, 0, 's'},     {"host", required_argument, 0, 'h'},
        {"port-min", required_argument, 0, 'm'}, {"port-max", required_argument, 0, 'M'},
        {"rcvbuf", required_argument, 0, 'r'},   {"tick-us", required_argument, 0, 'k'},
        {"late-ms", required_argument, 0, 'l'},  {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': n_calls = atol(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 'd': drain = atof(optarg); break;
        case 'p': ptime_ms = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'h': host = optarg; break;
        case 'm': port_min = atoi(optarg); break;
        case 'M': port_max = atoi(optarg); break;
        case 'r': rcvbuf = atoi(optarg); break;
        case 'k': tick_us = atoi(optarg); break;
        case 'l': late_ms = atoi(optarg); break;
        default: usage();
        }
    }
    if (n_calls <= 0 || n_calls > 100000 || seconds <= 0 || drain < 0 || ptime_ms <= 0 || size < MIN_SIZE ||
        size > MAX_SIZE || port_min < 1024 || port_max > 65535 || port_min >= port_max || tick_us <= 0 ||
        late_ms <= 0)
        usage();
    n_streams = 2 * n_calls;
    streams = calloc((size_t)n_streams, sizeof *streams);
    fds = calloc((size_t)n_streams, sizeof *fds);
    ports = calloc((size_t)n_streams, sizeof *ports);
    socket_drops = calloc((size_t)n_streams, sizeof *socket_drops);
    if (!streams || !fds || !ports || !socket_drops) fail("out of memory");
    hist_init(&latency);
    hist_init(&lateness);
    raise_nofile(n_streams + 64);
    bind_sockets(host, port_min, port_max, rcvbuf);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    for (long s = 0; s < n_streams; s++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)s};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[s], &ev) < 0) die("epoll_ctl");
    }

    printf("ports");
    for (long s = 0; s < n_streams; s++) printf(" %u", ports[s]);
    printf("\n");
    fflush(stdout);
    read_targets();

    unsigned char pkt[MAX_SIZE];
    memset(pkt, 0xFF, sizeof pkt); /* PCMU silence */
    const uint64_t ptime_ns = (uint64_t)ptime_ms * 1000000ull, tick_ns = (uint64_t)tick_us * 1000ull;
    const uint64_t per_stream = (uint64_t)(seconds * 1000.0 / ptime_ms + 0.5);
    const uint64_t total = per_stream * (uint64_t)n_streams;
    static struct epoll_event evs[MAX_EVENTS];

    printf("sending\n");
    fflush(stdout);
    double cpu0 = cpu_seconds();
    const uint64_t t0 = now_ns();
    uint64_t g = 0, t = t0, t_sent = 0, drain_end = 0, next_tick = t0;
    double cpu1 = 0;
    for (;;) {
        /* Everything that arrived since the last tick: one epoll_wait, one recvmmsg per socket. */
        for (;;) {
            int n = epoll_wait(ep, evs, MAX_EVENTS, 0);
            if (n < 0 && errno != EINTR) die("epoll_wait");
            for (int i = 0; i < n; i++) receive((long)evs[i].data.u64, size);
            if (n < MAX_EVENTS) break;
        }
        t = now_ns();
        /* Send every packet whose time has come: packet g is stream g % 2N's (g / 2N)-th. */
        uint64_t t_real = real_ns();
        while (g < total) {
            uint64_t due = t0 + (uint64_t)((unsigned __int128)g * ptime_ns / (uint64_t)n_streams);
            if (due > t) break;
            hist_add(&lateness, t - due);
            send_packet((long)(g % (uint64_t)n_streams), pkt, size, t_real);
            if ((++g & 31) == 0) {
                t = now_ns();
                t_real = real_ns();
            }
        }
        if (g == total && !t_sent) {
            t_sent = now_ns();
            cpu1 = cpu_seconds();
            drain_end = t_sent + (uint64_t)(drain * 1e9);
            printf("draining\n");
            fflush(stdout);
        }
        if (g == total && (total_received >= total_sent || t >= drain_end)) break; /* all arrived, or time */
        /* Sleep to the next tick (the sends and receives of a tick are batched). */
        next_tick += tick_ns;
        t = now_ns();
        if (next_tick < t) next_tick = t; /* behind: go on at once, do not pile up ticks */
        struct timespec ts = {.tv_sec = (time_t)(next_tick / 1000000000ull), .tv_nsec = (long)(next_tick % 1000000000ull)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
    const uint64_t t_end = now_ns();

    uint64_t sent = 0, received = 0, lost = 0, dups = 0, reord = 0, phone_drops = 0;
    for (long j = 0; j < n_streams; j++) phone_drops += socket_drops[j];
    long legs_with_loss = 0, legs_silent = 0;
    double worst = 0;
    for (long j = 0; j < n_streams; j++) {
        struct stream *st = &streams[j];
        sent += st->sent;
        received += st->received;
        dups += st->duplicates;
        reord += st->reordered;
        uint64_t unique = st->received - st->duplicates;
        if (unique < st->sent) {
            lost += st->sent - unique;
            legs_with_loss++;
            double l = 100.0 * (double)(st->sent - unique) / (double)st->sent;
            if (l > worst) worst = l;
        }
        if (st->sent && !st->received) legs_silent++;
    }
    uint64_t late = hist_at_least(&latency, (uint64_t)late_ms * 1000000ull);
    double window = (double)(t_sent - t0) / 1e9;
    double cpu_window = cpu1 - cpu0;
    printf("result {\"calls\": %ld, \"streams\": %ld, \"ptime_ms\": %d, \"size\": %d, "
           "\"window_s\": %.3f, \"drain_s\": %.3f, \"nominal_pps\": %.1f, "
           "\"sent\": %lu, \"send_errors\": %lu, \"first_send_error\": \"%s\", \"received\": %lu, "
           "\"lost\": %lu, \"loss_pct\": %.5f, \"duplicates\": %lu, \"reordered\": %lu, \"misrouted\": %lu, "
           "\"bad_packets\": %lu, \"wrong_source\": %lu, \"phone_socket_drops\": %lu, \"legs_with_loss\": %ld, \"legs_silent\": %ld, "
           "\"worst_leg_loss_pct\": %.3f, \"send_pps\": %.1f, \"relayed_pps\": %.1f, "
           "\"late_ms\": %d, \"late\": %lu, \"late_pct\": %.5f, "
           "\"latency_us\": {\"p50\": %.0f, \"p99\": %.0f, \"p999\": %.0f, \"max\": %.0f}, "
           "\"send_lateness_us\": {\"p50\": %.0f, \"p99\": %.0f, \"max\": %.0f}, "
           "\"cpu_s\": %.3f, \"cpu_pct\": %.1f, \"cpu_total_s\": %.3f}\n",
           n_calls, n_streams, ptime_ms, size, window, (double)(t_end - t_sent) / 1e9,
           (double)n_streams * 1000.0 / ptime_ms, (unsigned long)sent, (unsigned long)send_errors,
           send_errors ? strerror(first_send_errno) : "", (unsigned long)received, (unsigned long)lost,
           sent ? 100.0 * (double)lost / (double)sent : 0.0, (unsigned long)dups, (unsigned long)reord,
           (unsigned long)misrouted, (unsigned long)bad_packets, (unsigned long)wrong_source,
           (unsigned long)phone_drops, legs_with_loss,
           legs_silent, worst, window > 0 ? (double)sent / window : 0.0,
           window > 0 ? (double)received / window : 0.0, late_ms, (unsigned long)late,
           sent ? 100.0 * (double)late / (double)sent : 0.0, hist_quantile_us(&latency, 0.5),
           hist_quantile_us(&latency, 0.99), hist_quantile_us(&latency, 0.999), (double)latency.max_ns / 1000.0,
           hist_quantile_us(&lateness, 0.5), hist_quantile_us(&lateness, 0.99), (double)lateness.max_ns / 1000.0,
           cpu_window, window > 0 ? 100.0 * cpu_window / window : 0.0, cpu_seconds());
    fflush(stdout);
    return 0;
}
