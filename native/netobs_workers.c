/* netobs copy workers: two_copy, one_copy and zero_copy senders and a receiving server.
 *
 * A message is 8 separately malloc'd fields (msg_size / 8 each, the remainder on the last).
 *   two_copy:  memcpy the fields into one contiguous buffer, then send()
 *   one_copy:  sendmsg() with an 8-entry iovec over the fields
 *   zero_copy: SO_ZEROCOPY + sendmsg(MSG_ZEROCOPY); completions read from MSG_ERRQUEUE
 *
 * Zero-copy bookkeeping follows the kernel's contract (Documentation/networking/msg_zerocopy.rst):
 * every sendmsg(MSG_ZEROCOPY) that moves bytes takes the next 32-bit id of the socket; a
 * completion reports an id range [ee_info, ee_data], flagged SO_EE_CODE_ZEROCOPY_COPIED when
 * the kernel copied the pages anyway. Each thread sends from a pool of message buffers; a
 * buffer is reused (restamped) only after every id of its last send completed.
 *
 * Blocking calls are bounded (SO_SNDTIMEO/SO_RCVTIMEO of 100 ms, poll timeouts) so a stop
 * request is seen within a fraction of a second. Functions return 0 or -errno and fill
 * struct nob_error with the failing step.
 */
#define _GNU_SOURCE
#include "netobs_workers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif

_Static_assert(sizeof(((struct nob_client_stats *)0)->per_thread_bytes) / sizeof(uint64_t) ==
                   NOB_MAX_THREADS, "per_thread_bytes must hold NOB_MAX_THREADS");
_Static_assert(sizeof(((struct nob_server_stats *)0)->per_conn_bytes) / sizeof(uint64_t) ==
                   NOB_MAX_CONNS, "per_conn_bytes must hold NOB_MAX_CONNS");

#define IO_TIMEOUT_MS 100          /* bound on any blocking socket call */
#define CTL_ACK_TIMEOUT_S 2.0      /* perf control: wait this long for "ack" */
#define ZC_FINAL_WAIT_S 2.0        /* wait this long for outstanding completions at the end */
#define ZC_ABORT_WAIT_S 0.3        /* ... or this long after a stop request */
#define ZC_POOL_BYTES (8u << 20)   /* auto pool: about this many bytes of messages per thread */
#define ZC_POOL_MAX 1024
#define END_GRACE_S 3.0            /* after the window ends, a thread may finish its message */
#define RECV_BUF (256u << 10)

enum { PHASE_WARMUP = 0, PHASE_MEASURE = 1, PHASE_END = 2 };

/* ---------------------------------------------------------------- helpers */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int fail(struct nob_error *err, int e, const char *where, const char *fmt, ...)
{
    if (e <= 0)
        e = EIO;
    if (err && err->err == 0) {
        err->err = e;
        snprintf(err->where, sizeof(err->where), "%s", where);
        err->detail[0] = 0;
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
            va_end(ap);
        }
    }
    return -e;
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6; }

static void thread_rusage(struct rusage *ru)
{
    if (getrusage(RUSAGE_THREAD, ru) != 0)
        memset(ru, 0, sizeof(*ru));
}

static void set_io_timeout(int fd, int opt)
{
    struct timeval tv = {0, IO_TIMEOUT_MS * 1000};
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* Parse a numeric address; "" means any IPv4 address. Returns the sockaddr length or 0. */
static socklen_t parse_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (host[0] == 0) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
        return sizeof(*a4);
    }
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        return sizeof(*a4);
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        return sizeof(*a6);
    }
    return 0;
}

/* ---------------------------------------------------------------- verify pattern */

/* Word q (8 bytes, little-endian) of field f of message seq. Its first word is seq*8+f,
 * readable in a hex dump; later words differ so a shifted stream does not match. */
static inline uint64_t pat_word(uint64_t seq, unsigned f, uint64_t q)
{
    return ((seq << 3) | f) + q * 0x9E3779B97F4A7C15ull;
}

uint8_t nob_pattern_byte(uint64_t seq, unsigned field, uint64_t i)
{
    return (uint8_t)(pat_word(seq, field, i >> 3) >> ((i & 7) * 8));
}

double nob_send_syscall_ns(unsigned calls, unsigned trials, unsigned len)
{
    static const uint8_t buf[65536];
    if (len > sizeof(buf))
        len = sizeof(buf);
    double best = -1.0;
    for (unsigned t = 0; t < trials && calls; t++) {
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < calls; i++)
            (void)sendto(-1, buf, len, 0, NULL, 0);
        double per = (double)(now_ns() - t0) / (double)calls;
        if (best < 0 || per < best)
            best = per;
    }
    return best;
}

static inline void put_le64(uint8_t *p, uint64_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &w, 8);
#else
    for (int b = 0; b < 8; b++)
        p[b] = (uint8_t)(w >> (8 * b));
#endif
}

static void stamp_field(uint8_t *p, uint64_t len, uint64_t seq, unsigned f)
{
    uint64_t i = 0, q = 0;
    for (; i + 8 <= len; i += 8, q++)
        put_le64(p + i, pat_word(seq, f, q));
    for (; i < len; i++)
        p[i] = nob_pattern_byte(seq, f, i);
}

struct msgbuf {
    uint8_t *field[NOB_FIELDS];
    uint64_t len[NOB_FIELDS];
};

static void field_lens(uint64_t msg_size, uint64_t len[NOB_FIELDS])
{
    for (int f = 0; f < NOB_FIELDS; f++)
        len[f] = msg_size / NOB_FIELDS;
    len[NOB_FIELDS - 1] += msg_size % NOB_FIELDS;
}

static int msgbuf_alloc(struct msgbuf *m, uint64_t msg_size, uint64_t seq)
{
    field_lens(msg_size, m->len);
    for (int f = 0; f < NOB_FIELDS; f++) {
        m->field[f] = malloc(m->len[f]);
        if (!m->field[f])
            return -ENOMEM;
        stamp_field(m->field[f], m->len[f], seq, (unsigned)f); /* touches every page */
    }
    return 0;
}

static void msgbuf_free(struct msgbuf *m)
{
    for (int f = 0; f < NOB_FIELDS; f++) {
        free(m->field[f]);
        m->field[f] = NULL;
    }
}

static void msgbuf_stamp(struct msgbuf *m, uint64_t seq, int64_t corrupt_seq)
{
    for (int f = 0; f < NOB_FIELDS; f++)
        stamp_field(m->field[f], m->len[f], seq, (unsigned)f);
    if (corrupt_seq >= 0 && (uint64_t)corrupt_seq == seq)
        m->field[NOB_FIELDS - 1][m->len[NOB_FIELDS - 1] - 1] ^= 0x5a;
}

/* Stream verifier: reassembles one connection's bytes into messages of msg_size. */
struct verifier {
    uint64_t msg_size, flen, seq, off;
    int bad;
    uint64_t messages, errors;
};

static void verify_chunk(struct verifier *v, const uint8_t *p, size_t n)
{
    while (n > 0) {
        unsigned f = (unsigned)(v->off / v->flen);
        if (f >= NOB_FIELDS)
            f = NOB_FIELDS - 1;
        uint64_t fstart = (uint64_t)f * v->flen;
        uint64_t flen = (f == NOB_FIELDS - 1) ? v->msg_size - fstart : v->flen;
        uint64_t i = v->off - fstart;
        uint64_t run = flen - i;
        if (run > n)
            run = n;
        if (!v->bad) {
            uint64_t t = 0;
            while (t < run) {
                uint64_t pos = i + t;
                if ((pos & 7) == 0 && run - t >= 8) {
                    uint8_t w[8];
                    put_le64(w, pat_word(v->seq, f, pos >> 3));
                    if (memcmp(p + t, w, 8) != 0) {
                        v->bad = 1;
                        break;
                    }
                    t += 8;
                } else {
                    if (p[t] != nob_pattern_byte(v->seq, f, pos)) {
                        v->bad = 1;
                        break;
                    }
                    t++;
                }
            }
        }
        v->off += run;
        p += run;
        n -= run;
        if (v->off == v->msg_size) {
            v->messages++;
            if (v->bad)
                v->errors++;
            v->bad = 0;
            v->off = 0;
            v->seq++;
        }
    }
}

/* ---------------------------------------------------------------- latency histogram */

/* Log buckets: exact below 64 ns, then 64 sub-buckets per power of two (< 1.6% error). */
#define HIST_BUCKETS (64 + 58 * 64)

static unsigned hist_index(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return 64u + (e - 6u) * 64u + (unsigned)((v >> (e - 6u)) & 63u);
}

static double hist_value(unsigned idx)
{
    if (idx < 64)
        return (double)idx;
    unsigned e = (idx - 64u) / 64u + 6u, sub = (idx - 64u) % 64u;
    double width = (double)(1ull << (e - 6u));
    return (double)(64u + sub) * width + width / 2.0;
}

static double hist_percentile(const uint64_t *h, uint64_t n, double p, double lo, double hi)
{
    if (n == 0)
        return 0;
    uint64_t target = (uint64_t)(p * (double)n + 0.999999);
    if (target < 1)
        target = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        cum += h[i];
        if (cum >= target) {
            double v = hist_value(i);
            return v < lo ? lo : (v > hi ? hi : v);
        }
    }
    return hi;
}

/* ---------------------------------------------------------------- client */

struct zc_slot {
    uint64_t lo, hi, done; /* completion ids [lo, hi] of this buffer's last send */
    int pending;
};

struct nob_thread {
    struct nob_client *c;
    int idx, fd;
    pthread_t tid;
    int started;
    struct msgbuf *pool;
    int npool;
    uint8_t *contig; /* two_copy's serialization buffer */
    struct zc_slot *slots;
    uint64_t oldest;  /* smallest seq whose slot may still be pending */
    uint64_t next_id; /* id the kernel gives our next MSG_ZEROCOPY send */
    uint64_t seq;
    /* counters (owned by the thread until joined) */
    uint64_t bytes_total, msgs_total, send_calls, partial;
    uint64_t zc_sends, zc_completions, zc_copied, zc_notif, zc_enobufs, pool_waits;
    /* published for the coordinator's window snapshots (single writer: this thread) */
    _Atomic uint64_t pub_bytes, pub_msgs;
    /* this thread's share of the window: CPU time and latency samples (message boundaries) */
    int in_window, window_done;
    struct rusage ru0, ru1;
    uint64_t *hist;
    uint64_t lat_n, lat_sum, lat_max, lat_min;
    /* failure */
    int err;
    char where[64];
};

struct nob_client {
    struct nob_client_config cfg;
    struct nob_thread *t;
    int nthreads;
    atomic_int stop_requested; /* by the user (nob_client_stop) */
    atomic_int abort;          /* everything stops now: user stop, a thread failed, stuck end */
    atomic_int phase;
    atomic_int windows_ended;
    atomic_int failed;
    int ran;
    /* the measured window, as the coordinator saw it: [t0, t1] and every thread's counters then */
    double t0, t1;
    uint64_t bytes0, bytes1, msgs0, msgs1;
    int snap0, snap1;
};

static int cfg_check_client(const struct nob_client_config *cfg, struct nob_error *err)
{
    if (cfg->strategy < NOB_TWO_COPY || cfg->strategy > NOB_ZERO_COPY)
        return fail(err, EINVAL, "config", "strategy %d is not 0..2", cfg->strategy);
    if (cfg->msg_size < NOB_MIN_MSG || cfg->msg_size > NOB_MAX_MSG)
        return fail(err, EINVAL, "config", "msg_size %llu is not %d..%d",
                    (unsigned long long)cfg->msg_size, NOB_MIN_MSG, NOB_MAX_MSG);
    if (cfg->threads < 1 || cfg->threads > NOB_MAX_THREADS)
        return fail(err, EINVAL, "config", "threads %d is not 1..%d", cfg->threads,
                    NOB_MAX_THREADS);
    if (cfg->count == 0 && !(cfg->duration_s > 0 && cfg->duration_s <= 3600))
        return fail(err, EINVAL, "config", "duration %g is not in (0, 3600]", cfg->duration_s);
    if (cfg->count == 0 && !(cfg->warmup_s >= 0 && cfg->warmup_s <= 3600))
        return fail(err, EINVAL, "config", "warmup %g is not in [0, 3600]", cfg->warmup_s);
    if (cfg->port < 1 || cfg->port > 65535)
        return fail(err, EINVAL, "config", "port %d is not 1..65535", cfg->port);
    if (memchr(cfg->host, 0, sizeof(cfg->host)) == NULL)
        return fail(err, EINVAL, "config", "host is not terminated");
    struct sockaddr_storage ss;
    if (!parse_addr(cfg->host, cfg->port, &ss) || cfg->host[0] == 0)
        return fail(err, EINVAL, "config", "host '%s' is not a numeric address", cfg->host);
    if (cfg->zc_pool < 0 || cfg->zc_pool > 65536)
        return fail(err, EINVAL, "config", "zc_pool %d is not 0..65536", cfg->zc_pool);
    return 0;
}

int nob_client_create(const struct nob_client_config *cfg, struct nob_client **out,
                      struct nob_error *err)
{
    *out = NULL;
    int rc = cfg_check_client(cfg, err);
    if (rc)
        return rc;
    struct nob_client *c = calloc(1, sizeof(*c));
    if (!c)
        return fail(err, ENOMEM, "allocate client", NULL);
    c->cfg = *cfg;
    c->nthreads = cfg->threads;
    int npool = 1;
    if (cfg->strategy == NOB_ZERO_COPY) {
        npool = cfg->zc_pool;
        if (npool == 0) {
            uint64_t n = ZC_POOL_BYTES / cfg->msg_size;
            npool = n < 2 ? 2 : (n > ZC_POOL_MAX ? ZC_POOL_MAX : (int)n);
        }
    }
    /* Refuse what would not fit rather than let the OOM killer decide. */
    double need = (double)cfg->threads * (double)cfg->msg_size *
                  (double)(npool + (cfg->strategy == NOB_TWO_COPY ? 1 : 0));
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psz > 0 && need > 0.5 * (double)pages * (double)psz) {
        free(c);
        return fail(err, ENOMEM, "allocate message buffers",
                    "%.0f MiB of messages, more than half of this host's %.0f MiB",
                    need / 1048576.0, (double)pages * (double)psz / 1048576.0);
    }
    c->t = calloc((size_t)c->nthreads, sizeof(*c->t));
    if (!c->t) {
        free(c);
        return fail(err, ENOMEM, "allocate client", NULL);
    }
    for (int i = 0; i < c->nthreads; i++) {
        struct nob_thread *t = &c->t[i];
        t->c = c;
        t->idx = i;
        t->fd = -1;
        t->npool = npool;
        t->pool = calloc((size_t)npool, sizeof(*t->pool));
        t->hist = calloc(HIST_BUCKETS, sizeof(uint64_t));
        if (cfg->strategy == NOB_ZERO_COPY)
            t->slots = calloc((size_t)npool, sizeof(*t->slots));
        if (cfg->strategy == NOB_TWO_COPY)
            t->contig = malloc(cfg->msg_size);
        if (!t->pool || !t->hist || (cfg->strategy == NOB_ZERO_COPY && !t->slots) ||
            (cfg->strategy == NOB_TWO_COPY && !t->contig)) {
            nob_client_free(c);
            return fail(err, ENOMEM, "allocate message buffers", NULL);
        }
        for (int k = 0; k < npool; k++)
            if (msgbuf_alloc(&t->pool[k], cfg->msg_size, (uint64_t)k)) {
                nob_client_free(c);
                return fail(err, ENOMEM, "allocate message buffers", NULL);
            }
        t->lat_min = UINT64_MAX;
    }
    *out = c;
    return 0;
}

void nob_client_stop(struct nob_client *c)
{
    if (!c)
        return;
    atomic_store(&c->stop_requested, 1);
    atomic_store(&c->abort, 1);
}

void nob_client_free(struct nob_client *c)
{
    if (!c)
        return;
    if (c->t) {
        for (int i = 0; i < c->nthreads; i++) {
            struct nob_thread *t = &c->t[i];
            if (t->fd >= 0)
                close(t->fd);
            if (t->pool)
                for (int k = 0; k < t->npool; k++)
                    msgbuf_free(&t->pool[k]);
            free(t->pool);
            free(t->slots);
            free(t->contig);
            free(t->hist);
        }
        free(c->t);
    }
    free(c);
}

static int connect_one(struct nob_client *c, struct nob_thread *t, struct nob_error *err)
{
    const struct nob_client_config *cfg = &c->cfg;
    struct sockaddr_storage ss;
    socklen_t sl = parse_addr(cfg->host, cfg->port, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errno, "socket", NULL);
    t->fd = fd;
    int one = 1;
    if (cfg->strategy == NOB_ZERO_COPY && setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)))
        return fail(err, errno, "setsockopt(SO_ZEROCOPY)", NULL);
    if (cfg->nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
        return fail(err, errno, "setsockopt(TCP_NODELAY)", NULL);
    if (cfg->sndbuf > 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cfg->sndbuf, sizeof(cfg->sndbuf)))
        return fail(err, errno, "setsockopt(SO_SNDBUF)", NULL);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        if (errno != EINPROGRESS)
            return fail(err, errno, "connect", "%s port %d", cfg->host, cfg->port);
        double deadline = now_s() + (cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 3.0);
        for (;;) {
            if (atomic_load(&c->abort))
                return fail(err, ECANCELED, "connect", "stopped");
            struct pollfd p = {fd, POLLOUT, 0};
            int n = poll(&p, 1, IO_TIMEOUT_MS);
            if (n > 0)
                break;
            if (n < 0 && errno != EINTR)
                return fail(err, errno, "connect", "poll");
            if (now_s() > deadline)
                return fail(err, ETIMEDOUT, "connect", "%s port %d", cfg->host, cfg->port);
        }
        int soerr = 0;
        socklen_t el = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el);
        if (soerr)
            return fail(err, soerr, "connect", "%s port %d", cfg->host, cfg->port);
    }
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    set_io_timeout(fd, SO_SNDTIMEO);
    return 0;
}

/* perf --control: write a command, wait (bounded) for perf's "ack". */
static int perf_ctl(struct nob_client *c, const char *cmd, struct nob_error *err)
{
    const struct nob_client_config *cfg = &c->cfg;
    if (cfg->ctl_fd < 0)
        return 0;
    size_t len = strlen(cmd);
    ssize_t w;
    do
        w = write(cfg->ctl_fd, cmd, len);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)len)
        return fail(err, w < 0 ? errno : EIO, "perf control write", "%.*s", (int)len - 1, cmd);
    if (cfg->ack_fd < 0)
        return 0;
    double deadline = now_s() + CTL_ACK_TIMEOUT_S;
    char buf[64];
    size_t got = 0;
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0)
            return fail(err, ETIMEDOUT, "perf control ack", "no ack for %.*s within %.0f s",
                        (int)len - 1, cmd, CTL_ACK_TIMEOUT_S);
        struct pollfd p = {cfg->ack_fd, POLLIN, 0};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            return fail(err, errno, "perf control ack", NULL);
        if (n <= 0)
            continue;
        ssize_t r = read(cfg->ack_fd, buf + got, sizeof(buf) - 1 - got);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r < 0)
            return fail(err, errno, "perf control ack", NULL);
        if (r == 0) {
            if (p.revents & POLLHUP)
                sleep_s(0.01); /* no writer right now; perf keeps its end open */
            continue;
        }
        got += (size_t)r;
        buf[got] = 0;
        if (memmem(buf, got, "ack", 3))
            return 0;
        if (got >= sizeof(buf) - 1)
            got = 0;
    }
}

/* Apply a completion id range to the buffer pool (ids unwrapped to 64 bits). */
static void zc_apply(struct nob_thread *t, uint32_t lo32, uint32_t hi32, int copied)
{
    uint64_t n = (uint64_t)(uint32_t)(hi32 - lo32) + 1;
    uint64_t lo = t->next_id - (uint32_t)((uint32_t)t->next_id - lo32);
    uint64_t hi = lo + n - 1;
    t->zc_completions += n;
    if (copied)
        t->zc_copied += n;
    for (uint64_t s = t->oldest; s < t->seq + 1 && s - t->oldest < (uint64_t)t->npool; s++) {
        struct zc_slot *sl = &t->slots[s % (uint64_t)t->npool];
        if (!sl->pending)
            continue;
        if (sl->lo > hi)
            break;
        uint64_t a = sl->lo > lo ? sl->lo : lo, b = sl->hi < hi ? sl->hi : hi;
        if (a <= b) {
            sl->done += b - a + 1;
            if (sl->hi != UINT64_MAX && sl->done >= sl->hi - sl->lo + 1)
                sl->pending = 0;
        }
    }
    while (t->oldest < t->seq && !t->slots[t->oldest % (uint64_t)t->npool].pending)
        t->oldest++;
}

/* Read every queued completion; with wait_ms > 0 first wait that long for one. */
static int zc_drain(struct nob_thread *t, int wait_ms)
{
    if (wait_ms > 0) {
        struct pollfd p = {t->fd, 0, 0}; /* POLLERR is always reported */
        int n = poll(&p, 1, wait_ms);
        if (n > 0 && !(p.revents & POLLERR))
            sleep_s(0.001); /* POLLHUP without errors: do not spin */
    }
    for (;;) {
        char control[256];
        struct msghdr mh = {0};
        mh.msg_control = control;
        mh.msg_controllen = sizeof(control);
        ssize_t r = recvmsg(t->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                  (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
                continue;
            struct sock_extended_err serr;
            memcpy(&serr, CMSG_DATA(cm), sizeof(serr));
            if (serr.ee_origin != SO_EE_ORIGIN_ZEROCOPY || serr.ee_errno != 0)
                continue;
            t->zc_notif++;
            zc_apply(t, serr.ee_info, serr.ee_data,
                     (serr.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) != 0);
        }
    }
}

static uint64_t zc_outstanding(const struct nob_thread *t)
{
    return t->zc_sends > t->zc_completions ? t->zc_sends - t->zc_completions : 0;
}

/* What every successful send call adds, published for the coordinator's window edges. */
static void count_sent(struct nob_thread *t, ssize_t r)
{
    t->send_calls++;
    t->bytes_total += (uint64_t)r;
    atomic_store_explicit(&t->pub_bytes, t->bytes_total, memory_order_relaxed);
}

/* After a send that moved nothing (r <= 0): 0 to try again (SO_SNDTIMEO expired or a signal,
 * and no abort), ECANCELED when the run is being aborted, else the errno to report. */
static int send_failed(struct nob_thread *t, ssize_t r)
{
    int e = r == 0 ? EAGAIN : errno;
    if (e == EINTR || e == EAGAIN || e == EWOULDBLOCK)
        return atomic_load(&t->c->abort) ? ECANCELED : 0;
    return e;
}

/* Send every byte of iov[0..cnt) (one_copy, zero_copy). 0, -ECANCELED on stop, or -errno. */
static int send_iov(struct nob_thread *t, struct iovec *iov, int cnt, int flags)
{
    int idx = 0;
    double enobufs_since = 0;
    while (idx < cnt) {
        struct msghdr mh = {0};
        mh.msg_iov = iov + idx;
        mh.msg_iovlen = (size_t)(cnt - idx);
        ssize_t r = sendmsg(t->fd, &mh, MSG_NOSIGNAL | flags);
        if (r > 0) {
            enobufs_since = 0;
            count_sent(t, r);
            if (flags & MSG_ZEROCOPY) {
                t->zc_sends++;
                t->next_id++;
            }
            size_t left = (size_t)r;
            while (idx < cnt && left >= iov[idx].iov_len) {
                left -= iov[idx].iov_len;
                idx++;
            }
            if (idx < cnt) {
                iov[idx].iov_base = (uint8_t *)iov[idx].iov_base + left;
                iov[idx].iov_len -= left;
                t->partial++;
            }
            continue;
        }
        int e = send_failed(t, r);
        if (e == 0)
            continue;
        if (e == ENOBUFS && (flags & MSG_ZEROCOPY)) {
            /* optmem for notifications exhausted: read completions, then retry */
            t->zc_enobufs++;
            double now = now_s();
            if (enobufs_since == 0)
                enobufs_since = now;
            else if (zc_outstanding(t) == 0 && now - enobufs_since > 1.0)
                return -ENOBUFS;
            int d = zc_drain(t, 10);
            if (d < 0)
                return d;
            if (atomic_load(&t->c->abort))
                return -ECANCELED;
            continue;
        }
        return -e;
    }
    return 0;
}

/* two_copy: plain send() of the contiguous buffer. */
static int send_buf(struct nob_thread *t, const uint8_t *p, uint64_t len)
{
    uint64_t off = 0;
    while (off < len) {
        ssize_t r = send(t->fd, p + off, len - off, MSG_NOSIGNAL);
        if (r > 0) {
            count_sent(t, r);
            off += (uint64_t)r;
            if (off < len)
                t->partial++;
            continue;
        }
        int e = send_failed(t, r);
        if (e == 0)
            continue;
        return -e;
    }
    return 0;
}

static void window_start(struct nob_thread *t)
{
    t->in_window = 1;
    thread_rusage(&t->ru0);
}

static void window_end(struct nob_thread *t)
{
    if (!t->in_window)
        return;
    thread_rusage(&t->ru1);
    t->in_window = 0;
    t->window_done = 1;
}

static void thread_fail(struct nob_thread *t, int e, const char *where)
{
    t->err = e;
    snprintf(t->where, sizeof(t->where), "%s", where);
    atomic_store(&t->c->failed, 1);
    atomic_store(&t->c->abort, 1);
}

static void *client_thread(void *arg)
{
    struct nob_thread *t = arg;
    struct nob_client *c = t->c;
    const struct nob_client_config *cfg = &c->cfg;
    const int zc = cfg->strategy == NOB_ZERO_COPY;
    const uint64_t P = (uint64_t)t->npool;

    for (;;) {
        if (atomic_load(&c->abort))
            break;
        int ph = atomic_load(&c->phase);
        if (!t->in_window && !t->window_done && ph >= PHASE_MEASURE)
            window_start(t);
        if (cfg->count ? t->seq >= cfg->count : ph == PHASE_END)
            break;

        struct msgbuf *m = &t->pool[t->seq % P];
        struct zc_slot *slot = zc ? &t->slots[t->seq % P] : NULL;
        if (zc) {
            /* This buffer may still be in the kernel's hands: wait for its completion. */
            if (slot->pending)
                t->pool_waits++;
            int stop = 0;
            while (slot->pending) {
                int d = zc_drain(t, IO_TIMEOUT_MS);
                if (d < 0) {
                    thread_fail(t, -d, "recvmsg(MSG_ERRQUEUE)");
                    stop = 1;
                    break;
                }
                if (atomic_load(&c->abort)) {
                    stop = 1;
                    break;
                }
            }
            if (stop)
                break;
        }
        if (cfg->verify)
            msgbuf_stamp(m, t->seq, cfg->corrupt_seq);

        int rc;
        uint64_t ts0;
        if (cfg->strategy == NOB_TWO_COPY) {
            uint8_t *p = t->contig;
            for (int f = 0; f < NOB_FIELDS; f++) {
                memcpy(p, m->field[f], m->len[f]);
                p += m->len[f];
            }
            ts0 = now_ns();
            rc = send_buf(t, t->contig, cfg->msg_size);
        } else {
            struct iovec iov[NOB_FIELDS];
            for (int f = 0; f < NOB_FIELDS; f++) {
                iov[f].iov_base = m->field[f];
                iov[f].iov_len = m->len[f];
            }
            uint64_t first_id = t->next_id;
            if (zc) { /* open-ended until we know how many sends this message took */
                slot->lo = first_id;
                slot->hi = UINT64_MAX;
                slot->done = 0;
                slot->pending = 1;
            }
            ts0 = now_ns();
            rc = send_iov(t, iov, NOB_FIELDS, zc ? MSG_ZEROCOPY : 0);
            if (zc) {
                slot->hi = t->next_id - 1;
                if (t->next_id == first_id || slot->done >= slot->hi - slot->lo + 1)
                    slot->pending = 0;
            }
        }
        uint64_t lat = now_ns() - ts0;
        if (rc == -ECANCELED)
            break;
        if (rc < 0) {
            thread_fail(t, -rc, cfg->strategy == NOB_TWO_COPY ? "send" : "sendmsg");
            break;
        }
        t->seq++;
        t->msgs_total++;
        atomic_store_explicit(&t->pub_msgs, t->msgs_total, memory_order_relaxed);
        if (t->in_window && atomic_load_explicit(&c->phase, memory_order_relaxed) == PHASE_MEASURE) {
            t->hist[hist_index(lat)]++;
            t->lat_n++;
            t->lat_sum += lat;
            if (lat > t->lat_max)
                t->lat_max = lat;
            if (lat < t->lat_min)
                t->lat_min = lat;
        }
        if (zc && t->seq - t->oldest >= P / 2) {
            int d = zc_drain(t, 0); /* cheap: only reads what is queued */
            if (d < 0) {
                thread_fail(t, -d, "recvmsg(MSG_ERRQUEUE)");
                break;
            }
        }
    }
    window_end(t);
    atomic_fetch_add(&c->windows_ended, 1);

    if (zc && t->fd >= 0) {
        double deadline = now_s() + (atomic_load(&c->abort) ? ZC_ABORT_WAIT_S : ZC_FINAL_WAIT_S);
        while (zc_outstanding(t) > 0 && now_s() < deadline)
            if (zc_drain(t, 20) < 0)
                break;
    }
    return NULL;
}

/* Window edges: the time and the sum of every thread's published counters. */
static void snapshot(struct nob_client *c, double *t, uint64_t *bytes, uint64_t *msgs)
{
    uint64_t b = 0, m = 0;
    for (int i = 0; i < c->nthreads; i++) {
        b += atomic_load_explicit(&c->t[i].pub_bytes, memory_order_relaxed);
        m += atomic_load_explicit(&c->t[i].pub_msgs, memory_order_relaxed);
    }
    *t = now_s();
    *bytes = b;
    *msgs = m;
}

/* Sleep until `until`, waking early on abort. Returns nonzero when aborted. */
static int wait_until(struct nob_client *c, double until)
{
    for (;;) {
        if (atomic_load(&c->abort))
            return 1;
        double left = until - now_s();
        if (left <= 0)
            return 0;
        sleep_s(left < 0.02 ? left : 0.02);
    }
}

static void aggregate(struct nob_client *c, struct nob_client_stats *st)
{
    uint64_t *h = calloc(HIST_BUCKETS, sizeof(uint64_t));
    uint64_t lat_n = 0, lat_sum = 0, lat_max = 0, lat_min = UINT64_MAX;
    for (int i = 0; i < c->nthreads; i++) {
        struct nob_thread *t = &c->t[i];
        st->bytes_sent_total += t->bytes_total;
        st->messages_total += t->msgs_total;
        st->send_calls += t->send_calls;
        st->partial_sends += t->partial;
        st->zc_sends += t->zc_sends;
        st->zc_completions += t->zc_completions;
        st->zc_copied += t->zc_copied;
        st->zc_notifications += t->zc_notif;
        st->zc_enobufs += t->zc_enobufs;
        st->zc_outstanding += zc_outstanding(t);
        st->zc_pool_waits += t->pool_waits;
        st->per_thread_bytes[i] = t->bytes_total;
        if (t->window_done) {
            st->cpu_user_s += tv_s(t->ru1.ru_utime) - tv_s(t->ru0.ru_utime);
            st->cpu_sys_s += tv_s(t->ru1.ru_stime) - tv_s(t->ru0.ru_stime);
        }
        if (h)
            for (unsigned b = 0; b < HIST_BUCKETS; b++)
                h[b] += t->hist[b];
        lat_n += t->lat_n;
        lat_sum += t->lat_sum;
        if (t->lat_n && t->lat_max > lat_max)
            lat_max = t->lat_max;
        if (t->lat_n && t->lat_min < lat_min)
            lat_min = t->lat_min;
    }
    if (c->snap0 && c->snap1 && c->t1 > c->t0) {
        st->window_s = c->t1 - c->t0;
        st->bytes_sent = c->bytes1 - c->bytes0;
        st->messages = c->msgs1 - c->msgs0;
    }
    st->lat_samples = lat_n;
    if (lat_n && h) {
        double lo = (double)lat_min, hi = (double)lat_max;
        st->lat_mean_us = (double)lat_sum / (double)lat_n / 1000.0;
        st->lat_p50_us = hist_percentile(h, lat_n, 0.50, lo, hi) / 1000.0;
        st->lat_p99_us = hist_percentile(h, lat_n, 0.99, lo, hi) / 1000.0;
        st->lat_p999_us = hist_percentile(h, lat_n, 0.999, lo, hi) / 1000.0;
        st->lat_max_us = hi / 1000.0;
        st->lat_min_us = lo / 1000.0;
    }
    free(h);
    st->zc_pool = c->cfg.strategy == NOB_ZERO_COPY ? c->t[0].npool : 0;
    st->threads = c->nthreads;
    st->interrupted = atomic_load(&c->stop_requested);
}

int nob_client_run(struct nob_client *c, struct nob_client_stats *st, struct nob_error *err)
{
    memset(st, 0, sizeof(*st));
    if (c->ran)
        return fail(err, EALREADY, "run", "a client runs once");
    c->ran = 1;
    const struct nob_client_config *cfg = &c->cfg;
    int rc = 0, enabled = 0;

    for (int i = 0; i < c->nthreads && rc == 0; i++)
        rc = connect_one(c, &c->t[i], err);
    if (rc)
        goto out;

    if (cfg->count) {
        /* Known workload: the whole run is the window. */
        if ((rc = perf_ctl(c, "enable\n", err)))
            goto out;
        enabled = 1;
        atomic_store(&c->phase, PHASE_MEASURE);
        snapshot(c, &c->t0, &c->bytes0, &c->msgs0);
        c->snap0 = 1;
    } else {
        atomic_store(&c->phase, PHASE_WARMUP);
    }
    int started = 0;
    for (int i = 0; i < c->nthreads; i++) {
        int e = pthread_create(&c->t[i].tid, NULL, client_thread, &c->t[i]);
        if (e) {
            atomic_store(&c->abort, 1);
            rc = fail(err, e, "pthread_create", "thread %d of %d", i + 1, c->nthreads);
            break;
        }
        c->t[i].started = 1;
        started++;
    }
    if (rc == 0 && !cfg->count) {
        if (!wait_until(c, now_s() + cfg->warmup_s)) {
            if ((rc = perf_ctl(c, "enable\n", err)) == 0) {
                enabled = 1;
                snapshot(c, &c->t0, &c->bytes0, &c->msgs0);
                c->snap0 = 1;
                atomic_store(&c->phase, PHASE_MEASURE);
                wait_until(c, c->t0 + cfg->duration_s);
                atomic_store(&c->phase, PHASE_END);
                snapshot(c, &c->t1, &c->bytes1, &c->msgs1);
                c->snap1 = 1;
            } else {
                atomic_store(&c->abort, 1);
            }
        }
        atomic_store(&c->phase, PHASE_END);
    }
    /* Every thread closes its window at a message boundary; do not wait forever. */
    double grace = cfg->count ? 0 : now_s() + END_GRACE_S;
    while (atomic_load(&c->windows_ended) < started) {
        if (grace && now_s() > grace)
            atomic_store(&c->abort, 1);
        sleep_s(0.001);
    }
    if (c->snap0 && !c->snap1) { /* count mode: the window ends with the last message */
        snapshot(c, &c->t1, &c->bytes1, &c->msgs1);
        c->snap1 = 1;
    }
    if (enabled) {
        int r2 = perf_ctl(c, "disable\n", err);
        if (rc == 0)
            rc = r2;
    }
    for (int i = 0; i < c->nthreads; i++)
        if (c->t[i].started)
            pthread_join(c->t[i].tid, NULL);
    aggregate(c, st);
    if (rc == 0 && atomic_load(&c->failed))
        for (int i = 0; i < c->nthreads; i++)
            if (c->t[i].err) {
                rc = fail(err, c->t[i].err, c->t[i].where, "thread %d", i);
                break;
            }
out:
    for (int i = 0; i < c->nthreads; i++)
        if (c->t[i].fd >= 0) {
            close(c->t[i].fd);
            c->t[i].fd = -1;
        }
    if (rc == -ECANCELED && atomic_load(&c->stop_requested)) {
        /* stopped while connecting: not a failure, just nothing measured */
        memset(err, 0, sizeof(*err));
        st->interrupted = 1;
        st->threads = c->nthreads;
        rc = 0;
    }
    return rc;
}

/* ---------------------------------------------------------------- server */

struct nob_conn {
    struct nob_server *s;
    int fd, idx;
    pthread_t tid;
    uint64_t bytes, recv_calls, msgs_copied;
    double first, last;
    double cpu_user, cpu_sys;
    struct verifier v;
    int err;
    atomic_int done;
};

struct nob_server {
    struct nob_server_config cfg;
    int lfd, port;
    atomic_int stop;       /* stop request from the user */
    atomic_int stop_conns; /* receiving threads stop now */
    struct nob_conn *conns[NOB_MAX_CONNS];
    int nconns;
    int ran;
};

int nob_server_open(const struct nob_server_config *cfg, struct nob_server **out,
                    struct nob_error *err)
{
    *out = NULL;
    if (cfg->port < 0 || cfg->port > 65535)
        return fail(err, EINVAL, "config", "port %d is not 0..65535", cfg->port);
    if (cfg->connections < 0 || cfg->connections > NOB_MAX_CONNS)
        return fail(err, EINVAL, "config", "connections %d is not 0..%d", cfg->connections,
                    NOB_MAX_CONNS);
    if ((cfg->verify || cfg->recv_copy) &&
        (cfg->msg_size < NOB_MIN_MSG || cfg->msg_size > NOB_MAX_MSG))
        return fail(err, EINVAL, "config", "msg_size %llu is not %d..%d",
                    (unsigned long long)cfg->msg_size, NOB_MIN_MSG, NOB_MAX_MSG);
    if (!(cfg->timeout_s >= 0))
        return fail(err, EINVAL, "config", "timeout must be >= 0");
    if (memchr(cfg->bind, 0, sizeof(cfg->bind)) == NULL)
        return fail(err, EINVAL, "config", "bind address is not terminated");
    struct sockaddr_storage ss;
    socklen_t sl = parse_addr(cfg->bind, cfg->port, &ss);
    if (!sl)
        return fail(err, EINVAL, "config", "bind address '%s' is not numeric", cfg->bind);
    struct nob_server *s = calloc(1, sizeof(*s));
    if (!s)
        return fail(err, ENOMEM, "allocate server", NULL);
    s->cfg = *cfg;
    s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0) {
        int e = errno;
        free(s);
        return fail(err, e, "socket", NULL);
    }
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (cfg->rcvbuf > 0)
        setsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &cfg->rcvbuf, sizeof(cfg->rcvbuf));
    if (bind(s->lfd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        nob_server_free(s);
        return fail(err, e, "bind", "%s port %d", cfg->bind[0] ? cfg->bind : "0.0.0.0",
                    cfg->port);
    }
    if (listen(s->lfd, 1024) != 0) {
        int e = errno;
        nob_server_free(s);
        return fail(err, e, "listen", NULL);
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    getsockname(s->lfd, (struct sockaddr *)&bound, &bl);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;
}

int nob_server_port(struct nob_server *s) { return s ? s->port : -1; }

void nob_server_stop(struct nob_server *s)
{
    if (s)
        atomic_store(&s->stop, 1);
}

void nob_server_free(struct nob_server *s)
{
    if (!s)
        return;
    if (s->lfd >= 0)
        close(s->lfd);
    for (int i = 0; i < s->nconns; i++)
        free(s->conns[i]);
    free(s);
}

static void *conn_thread(void *arg)
{
    struct nob_conn *k = arg;
    struct nob_server *s = k->s;
    const struct nob_server_config *cfg = &s->cfg;
    struct rusage ru0, ru1;
    thread_rusage(&ru0);
    /* recv_copy: a whole number of messages, received in large calls like the plain server
     * and copied out one by one; no message wraps, so nothing is moved between calls */
    uint64_t cap = RECV_BUF;
    if (cfg->recv_copy)
        cap = cfg->msg_size * (cfg->msg_size < RECV_BUF ? RECV_BUF / cfg->msg_size : 1);
    uint8_t *buf = malloc(cap);
    struct msgbuf fields = {0};
    int ok = buf != NULL;
    if (ok && cfg->recv_copy) {
        field_lens(cfg->msg_size, fields.len);
        for (int f = 0; f < NOB_FIELDS && ok; f++)
            ok = (fields.field[f] = malloc(fields.len[f])) != NULL;
    }
    if (!ok)
        k->err = ENOMEM;
    uint64_t off = 0, done = 0;   /* recv_copy: bytes in buf, and of those copied out */
    while (ok && !atomic_load(&s->stop_conns)) {
        uint8_t *dst = cfg->recv_copy ? buf + off : buf;
        size_t want = cfg->recv_copy ? cap - off : cap;
        ssize_t r = recv(k->fd, dst, want, 0);
        if (r > 0) {
            double t = now_s();
            if (k->first == 0)
                k->first = t;
            k->last = t;
            k->bytes += (uint64_t)r;
            k->recv_calls++;
            if (cfg->verify)
                verify_chunk(&k->v, dst, (size_t)r);
            if (cfg->recv_copy) {
                off += (uint64_t)r;
                while (off - done >= cfg->msg_size) { /* the receive-side mirror of two_copy */
                    const uint8_t *p = buf + done;
                    for (int f = 0; f < NOB_FIELDS; f++) {
                        memcpy(fields.field[f], p, fields.len[f]);
                        p += fields.len[f];
                    }
                    done += cfg->msg_size;
                    k->msgs_copied++;
                }
                if (off == cap)
                    off = done = 0;
            }
            continue;
        }
        if (r == 0)
            break;
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            continue;
        k->err = errno;
        break;
    }
    thread_rusage(&ru1);
    k->cpu_user = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
    k->cpu_sys = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
    close(k->fd);
    k->fd = -1;
    free(buf);
    msgbuf_free(&fields);
    atomic_store(&k->done, 1);
    return NULL;
}

int nob_server_run(struct nob_server *s, struct nob_server_stats *st, struct nob_error *err)
{
    memset(st, 0, sizeof(*st));
    if (s->ran)
        return fail(err, EALREADY, "run", "a server runs once");
    s->ran = 1;
    const struct nob_server_config *cfg = &s->cfg;
    int rc = 0;
    double deadline = cfg->timeout_s > 0 ? now_s() + cfg->timeout_s : 0;
    st->port = s->port;
    for (;;) {
        if (atomic_load(&s->stop)) {
            st->interrupted = 1;
            break;
        }
        if (deadline && now_s() > deadline) {
            st->timed_out = 1;
            break;
        }
        if (cfg->connections > 0 && s->nconns >= cfg->connections) {
            int all = 1;
            for (int i = 0; i < s->nconns; i++)
                all &= atomic_load(&s->conns[i]->done);
            if (all)
                break;
        }
        struct pollfd p = {s->lfd, POLLIN, 0};
        int n = poll(&p, 1, 20);
        if (n < 0 && errno != EINTR) {
            rc = fail(err, errno, "poll(listen)", NULL);
            break;
        }
        if (n <= 0)
            continue;
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
                continue;
            rc = fail(err, errno, "accept", NULL);
            break;
        }
        if (s->nconns >= NOB_MAX_CONNS ||
            (cfg->connections > 0 && s->nconns >= cfg->connections)) {
            close(fd); /* more connections than expected: refuse them */
            continue;
        }
        set_io_timeout(fd, SO_RCVTIMEO);
        struct nob_conn *k = calloc(1, sizeof(*k));
        if (!k) {
            close(fd);
            rc = fail(err, ENOMEM, "allocate connection", NULL);
            break;
        }
        k->s = s;
        k->fd = fd;
        k->idx = s->nconns;
        k->v.msg_size = cfg->msg_size;
        k->v.flen = cfg->msg_size / NOB_FIELDS;
        int e = pthread_create(&k->tid, NULL, conn_thread, k);
        if (e) {
            close(fd);
            free(k);
            rc = fail(err, e, "pthread_create", "connection %d", s->nconns + 1);
            break;
        }
        s->conns[s->nconns++] = k;
    }
    if (st->interrupted || st->timed_out || rc)
        atomic_store(&s->stop_conns, 1);
    close(s->lfd); /* no more connections: a late client gets refused, not hung */
    s->lfd = -1;
    double first = 0, last = 0;
    for (int i = 0; i < s->nconns; i++) {
        struct nob_conn *k = s->conns[i];
        pthread_join(k->tid, NULL);
        st->bytes_received += k->bytes;
        st->per_conn_bytes[i] = k->bytes;
        st->recv_calls += k->recv_calls;
        st->messages_copied += k->msgs_copied;
        st->cpu_user_s += k->cpu_user;
        st->cpu_sys_s += k->cpu_sys;
        st->verify_messages += k->v.messages;
        st->verify_errors += k->v.errors;
        st->verify_partial_bytes += k->v.off;
        if (k->err)
            st->conn_errors++;
        if (k->first && (first == 0 || k->first < first))
            first = k->first;
        if (k->last > last)
            last = k->last;
    }
    st->connections = s->nconns;
    st->first_byte_s = first;
    st->last_byte_s = last;
    st->active_s = last > first ? last - first : 0;
    return rc;
}
