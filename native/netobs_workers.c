/* netobs copy workers: the senders and a receiving server.
 *
 * A message is N separately allocated fields (--fields, default 8: msg_size / N each, the
 * remainder on the last).
 *   two_copy:    memcpy the fields into one contiguous buffer, then send()
 *   one_copy:    sendmsg() with an N-entry iovec over the fields
 *   zero_copy:   SO_ZEROCOPY + sendmsg(MSG_ZEROCOPY); completions read from MSG_ERRQUEUE
 *   io_uring:    the same iovec as IORING_OP_SENDMSG (the copy baseline of io_uring_zc)
 *   io_uring_zc: IORING_OP_SENDMSG_ZC; a buffer is reused only after its notification CQE
 *   sendfile:    the fields written once into a memfd (one region per buffer), sent with
 *                sendfile(): the socket takes references to the file's pages
 *   splice:      vmsplice() the fields into a pipe, splice() the pipe to the socket: the
 *                socket takes references to the fields' own pages
 *
 * Page references without a completion (sendfile, splice): nothing tells when the kernel is
 * done with a page, so a page is never rewritten in place. Without --verify the bytes never
 * change (every send of a buffer sends the same bytes). With --verify a buffer is restamped
 * per message, and before that its pages are released: sendfile punches a hole in the file
 * (fallocate PUNCH_HOLE: the page cache lets go, in-flight skbs keep the old pages, the
 * rewrite gets new ones), splice drops the fields' pages (MADV_DONTNEED on page-aligned
 * private anonymous memory: the same, for user pages). `unsafe_reuse` (a test's knob) skips
 * that, and the zero-copy completion waits, to show that verify then fails.
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
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
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
#ifndef TCP_ZEROCOPY_RECEIVE
#define TCP_ZEROCOPY_RECEIVE 35
#endif
/* linux/tcp.h's struct tcp_zerocopy_receive (glibc's netinet/tcp.h has an older one) */
struct nob_tcp_zc {
    uint64_t address;
    uint32_t length, recv_skip_hint, inq;
    int32_t err;
    uint64_t copybuf_address;
    int32_t copybuf_len;
    uint32_t flags;
    uint64_t msg_control, msg_controllen;
    uint32_t msg_flags, reserved;
};
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif
#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
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
#define ZC_RX_MAP (2u << 20)       /* TCP_ZEROCOPY_RECEIVE mapping per connection */
#define PIPE_BYTES (1u << 20)      /* splice: the pipe's size (fs.pipe-max-size's default) */

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

/* Pin the calling thread to one CPU. 0 or the errno of sched_setaffinity. */
static int pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : errno;
}

/* The CPU the calling thread is on now, -1 if unknown. */
static int current_cpu(void)
{
    int cpu = sched_getcpu();
    return cpu < 0 ? -1 : cpu;
}

/* The pinning lists of both roles: 0..NOB_MAX_THREADS ids, each 0..NOB_MAX_CPUS-1. */
static int cfg_check_cpus(const int *cpus, int ncpus, struct nob_error *err)
{
    if (ncpus < 0 || ncpus > NOB_MAX_THREADS)
        return fail(err, EINVAL, "config", "ncpus %d is not 0..%d", ncpus, NOB_MAX_THREADS);
    for (int i = 0; i < ncpus; i++)
        if (cpus[i] < 0 || cpus[i] >= NOB_MAX_CPUS)
            return fail(err, EINVAL, "config", "cpu %d is not 0..%d", cpus[i], NOB_MAX_CPUS - 1);
    return 0;
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
    int n;          /* fields */
    int paged;      /* each field in pages of its own (mmap): splice's, so pages can be dropped */
    uint8_t *field[NOB_MAX_FIELDS];
    uint64_t len[NOB_MAX_FIELDS];
    uint64_t cap[NOB_MAX_FIELDS];  /* bytes mapped (paged) */
};

static void field_lens(uint64_t msg_size, int n, uint64_t len[NOB_MAX_FIELDS])
{
    for (int f = 0; f < n; f++)
        len[f] = msg_size / (uint64_t)n;
    len[n - 1] += msg_size % (uint64_t)n;
}

static uint64_t page_round(uint64_t n)
{
    uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
    return (n + ps - 1) / ps * ps;
}

static int msgbuf_alloc(struct msgbuf *m, uint64_t msg_size, int n, int paged, uint64_t seq)
{
    m->n = n;
    m->paged = paged;
    field_lens(msg_size, n, m->len);
    for (int f = 0; f < n; f++) {
        if (paged) {
            m->cap[f] = page_round(m->len[f]);
            void *p = mmap(NULL, m->cap[f], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            m->field[f] = p == MAP_FAILED ? NULL : p;
        } else {
            m->field[f] = malloc(m->len[f]);
        }
        if (!m->field[f])
            return -ENOMEM;
        stamp_field(m->field[f], m->len[f], seq, (unsigned)f); /* touches every page */
    }
    return 0;
}

static void msgbuf_free(struct msgbuf *m)
{
    for (int f = 0; f < m->n; f++) {
        if (m->paged && m->field[f])
            munmap(m->field[f], m->cap[f]);
        else
            free(m->field[f]);
        m->field[f] = NULL;
    }
}

/* splice: let go of the fields' pages before a rewrite (in-flight skbs keep the old ones) */
static void msgbuf_release_pages(struct msgbuf *m)
{
    for (int f = 0; f < m->n; f++)
        madvise(m->field[f], m->cap[f], MADV_DONTNEED);
}

static void msgbuf_stamp(struct msgbuf *m, uint64_t seq, int64_t corrupt_seq)
{
    for (int f = 0; f < m->n; f++)
        stamp_field(m->field[f], m->len[f], seq, (unsigned)f);
    if (corrupt_seq >= 0 && (uint64_t)corrupt_seq == seq)
        m->field[m->n - 1][m->len[m->n - 1] - 1] ^= 0x5a;
}

static int msgbuf_iov(const struct msgbuf *m, struct iovec *iov)
{
    for (int f = 0; f < m->n; f++) {
        iov[f].iov_base = m->field[f];
        iov[f].iov_len = m->len[f];
    }
    return m->n;
}

/* Stream verifier: reassembles one connection's bytes into messages of msg_size. */
struct verifier {
    uint64_t msg_size, flen, seq, off;
    unsigned nfields;
    int bad;
    uint64_t messages, errors;
};

static void verify_chunk(struct verifier *v, const uint8_t *p, size_t n)
{
    const unsigned N = v->nfields;
    while (n > 0) {
        unsigned f = (unsigned)(v->off / v->flen);
        if (f >= N)
            f = N - 1;
        uint64_t fstart = (uint64_t)f * v->flen;
        uint64_t flen = (f == N - 1) ? v->msg_size - fstart : v->flen;
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
    /* io_uring: this buffer's send is in flight / its notification is still to come */
    int sending, notif;
    uint64_t t_submit;
    struct msghdr mh;
    struct iovec iov[NOB_MAX_FIELDS];
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
    struct io_uring ring;
    int has_ring;
    int memfd;          /* sendfile: the buffers' file */
    uint64_t stride;    /* sendfile: bytes per buffer region in it (page-rounded) */
    int pipe_r, pipe_w; /* splice */
    uint64_t inflight;  /* io_uring: sends submitted, no CQE yet */
    uint64_t oldest;  /* smallest seq whose slot may still be pending */
    uint64_t next_id; /* id the kernel gives our next MSG_ZEROCOPY send */
    uint64_t seq;
    /* counters (owned by the thread until joined) */
    uint64_t bytes_total, msgs_total, send_calls, partial;
    uint64_t zc_sends, zc_completions, zc_copied, zc_notif, zc_enobufs, pool_waits;
    uint64_t zc_empty, zc_polls, uring_submits, uring_waits, file_writes, page_releases, vmsplices;
    /* published for the coordinator's window snapshots (single writer: this thread) */
    _Atomic uint64_t pub_bytes, pub_msgs;
    /* this thread's share of the window: CPU time and latency samples (message boundaries) */
    int in_window, window_done;
    struct rusage ru0, ru1;
    uint64_t *hist;
    uint64_t lat_n, lat_sum, lat_max, lat_min;
    int cpu_end; /* the CPU this thread was on when its window ended, -1 = unknown */
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

static int uses_pool(int strategy)
{
    return strategy == NOB_ZERO_COPY || strategy == NOB_IO_URING || strategy == NOB_IO_URING_ZC;
}

static int is_uring(int strategy) { return strategy == NOB_IO_URING || strategy == NOB_IO_URING_ZC; }

static int cfg_check_client(const struct nob_client_config *cfg, struct nob_error *err)
{
    if (cfg->strategy < 0 || cfg->strategy >= NOB_STRATEGIES)
        return fail(err, EINVAL, "config", "strategy %d is not 0..%d", cfg->strategy, NOB_STRATEGIES - 1);
    if (cfg->msg_size < NOB_MIN_MSG || cfg->msg_size > NOB_MAX_MSG)
        return fail(err, EINVAL, "config", "msg_size %llu is not %d..%d",
                    (unsigned long long)cfg->msg_size, NOB_MIN_MSG, NOB_MAX_MSG);
    if (cfg->fields < 1 || cfg->fields > NOB_MAX_FIELDS)
        return fail(err, EINVAL, "config", "fields %d is not 1..%d", cfg->fields, NOB_MAX_FIELDS);
    if (cfg->msg_size < (uint64_t)cfg->fields)
        return fail(err, EINVAL, "config", "a %llu-byte message cannot have %d fields (one byte each at least)",
                    (unsigned long long)cfg->msg_size, cfg->fields);
    if (cfg->uring_depth < 1 || cfg->uring_depth > NOB_MAX_URING_DEPTH)
        return fail(err, EINVAL, "config", "uring_depth %d is not 1..%d", cfg->uring_depth,
                    NOB_MAX_URING_DEPTH);
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
    return cfg_check_cpus(cfg->cpus, cfg->ncpus, err);
}

static int ring_init(struct io_uring *ring, int depth, int npool, int zc, struct nob_error *err)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE;
    unsigned cq = 2u * (unsigned)(npool + depth);
    p.cq_entries = cq < 64 ? 64 : cq;
    int r = io_uring_queue_init_params((unsigned)depth, ring, &p);
    if (r < 0)
        return fail(err, -r, "io_uring_queue_init", "kernel.io_uring_disabled, or a kernel without io_uring");
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    int op = zc ? IORING_OP_SENDMSG_ZC : IORING_OP_SENDMSG;
    int ok = probe && io_uring_opcode_supported(probe, op);
    if (probe)
        io_uring_free_probe(probe);
    if (!ok) {
        io_uring_queue_exit(ring);
        return fail(err, EOPNOTSUPP, "io_uring probe", "%s", zc ? "IORING_OP_SENDMSG_ZC (Linux 6.1+)"
                                                                : "IORING_OP_SENDMSG (Linux 5.3+)");
    }
    return 0;
}

/* Per thread, what its strategy needs beyond buffers: a ring, a memfd, a pipe. */
static int thread_setup(struct nob_client *c, struct nob_thread *t, struct nob_error *err)
{
    const struct nob_client_config *cfg = &c->cfg;
    if (is_uring(cfg->strategy)) {
        int rc = ring_init(&t->ring, cfg->uring_depth, t->npool, cfg->strategy == NOB_IO_URING_ZC, err);
        if (rc)
            return rc;
        t->has_ring = 1;
    }
    if (cfg->strategy == NOB_SENDFILE) {
        t->memfd = memfd_create("netobs-sendfile", MFD_CLOEXEC);
        if (t->memfd < 0)
            return fail(err, errno, "memfd_create", NULL);
        t->stride = page_round(cfg->msg_size);
        if (ftruncate(t->memfd, (off_t)(t->stride * (uint64_t)t->npool)) != 0)
            return fail(err, errno, "ftruncate(memfd)", NULL);
        for (int k = 0; k < t->npool; k++) { /* the fields, copied into the file once */
            struct iovec iov[NOB_MAX_FIELDS];
            int n = msgbuf_iov(&t->pool[k], iov);
            ssize_t w = pwritev(t->memfd, iov, n, (off_t)(t->stride * (uint64_t)k));
            if (w != (ssize_t)cfg->msg_size)
                return fail(err, w < 0 ? errno : EIO, "pwritev(memfd)", NULL);
            t->file_writes++;
        }
    }
    if (cfg->strategy == NOB_SPLICE) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            return fail(err, errno, "pipe2", NULL);
        t->pipe_r = p[0];
        t->pipe_w = p[1];
        fcntl(t->pipe_w, F_SETPIPE_SZ, (int)PIPE_BYTES); /* best effort: fs.pipe-max-size */
    }
    return 0;
}

int nob_strategy_probe(int strategy, struct nob_error *err)
{
    if (strategy < 0 || strategy >= NOB_STRATEGIES)
        return fail(err, EINVAL, "config", "strategy %d is not 0..%d", strategy, NOB_STRATEGIES - 1);
    if (strategy == NOB_ZERO_COPY) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        if (fd < 0)
            return fail(err, errno, "socket", NULL);
        int r = setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one));
        int e = errno;
        close(fd);
        if (r)
            return fail(err, e, "setsockopt(SO_ZEROCOPY)", NULL);
    }
    if (is_uring(strategy)) {
        struct io_uring ring;
        int rc = ring_init(&ring, 1, 1, strategy == NOB_IO_URING_ZC, err);
        if (rc)
            return rc;
        io_uring_queue_exit(&ring);
    }
    if (strategy == NOB_SENDFILE) {
        int fd = memfd_create("netobs-probe", MFD_CLOEXEC);
        if (fd < 0)
            return fail(err, errno, "memfd_create", NULL);
        int r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), e = errno;
        close(fd);
        if (r)
            return fail(err, e, "fallocate(PUNCH_HOLE)", "on a memfd");
    }
    if (strategy == NOB_SPLICE) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            return fail(err, errno, "pipe2", NULL);
        static uint8_t byte;
        struct iovec iov = {&byte, 1};
        ssize_t r = vmsplice(p[1], &iov, 1, SPLICE_F_NONBLOCK);
        int e = errno;
        close(p[0]);
        close(p[1]);
        if (r != 1)
            return fail(err, r < 0 ? e : EIO, "vmsplice", NULL);
    }
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
    if (cfg->strategy == NOB_ZERO_COPY || cfg->strategy == NOB_IO_URING_ZC) {
        npool = cfg->zc_pool;
        if (npool == 0) {
            uint64_t n = ZC_POOL_BYTES / cfg->msg_size;
            npool = n < 2 ? 2 : (n > ZC_POOL_MAX ? ZC_POOL_MAX : (int)n);
            if (cfg->strategy == NOB_IO_URING_ZC && npool < 2 * cfg->uring_depth)
                npool = 2 * cfg->uring_depth;
        }
    } else if (cfg->strategy == NOB_IO_URING) {
        npool = cfg->uring_depth; /* a buffer is free again once its send completed */
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
        t->memfd = t->pipe_r = t->pipe_w = -1;
        t->hist = calloc(HIST_BUCKETS, sizeof(uint64_t));
        if (uses_pool(cfg->strategy))
            t->slots = calloc((size_t)npool, sizeof(*t->slots));
        if (cfg->strategy == NOB_TWO_COPY)
            t->contig = malloc(cfg->msg_size);
        if (!t->pool || !t->hist || (uses_pool(cfg->strategy) && !t->slots) ||
            (cfg->strategy == NOB_TWO_COPY && !t->contig)) {
            nob_client_free(c);
            return fail(err, ENOMEM, "allocate message buffers", NULL);
        }
        for (int k = 0; k < npool; k++)
            if (msgbuf_alloc(&t->pool[k], cfg->msg_size, cfg->fields, cfg->strategy == NOB_SPLICE,
                             (uint64_t)k)) {
                nob_client_free(c);
                return fail(err, ENOMEM, "allocate message buffers", NULL);
            }
        t->lat_min = UINT64_MAX;
        t->cpu_end = -1;
        if ((rc = thread_setup(c, t, err))) {
            nob_client_free(c);
            return rc;
        }
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
            if (t->has_ring)
                io_uring_queue_exit(&t->ring);
            if (t->memfd >= 0)
                close(t->memfd);
            if (t->pipe_r >= 0)
                close(t->pipe_r);
            if (t->pipe_w >= 0)
                close(t->pipe_w);
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

/* Read one error-queue message (MSG_DONTWAIT). 1: a notification (or another queued error)
 * was read, 0: the queue was empty (counted: a wasted syscall), -errno. */
static int zc_read_one(struct nob_thread *t)
{
    for (;;) {
        char control[256];
        struct msghdr mh = {0};
        mh.msg_control = control;
        mh.msg_controllen = sizeof(control);
        ssize_t r = recvmsg(t->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                t->zc_empty++;
                return 0;
            }
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
        return 1;
    }
}

/* Wait up to wait_ms for the error queue to hold something (poll reports POLLERR when it
 * does), then read one message. Reads happen only when the kernel signalled a completion,
 * and only when the pool needs a buffer back (or at the end): the kernel merges adjacent
 * completion ranges while they wait in the queue, so one read frees many buffers.
 * 1: read one, 0: nothing came, -errno. */
static int zc_wait(struct nob_thread *t, int wait_ms)
{
    struct pollfd p = {t->fd, 0, 0}; /* POLLERR is always reported */
    t->zc_polls++;
    int n = poll(&p, 1, wait_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n == 0)
        return 0;
    if (!(p.revents & POLLERR)) {
        sleep_s(0.001); /* POLLHUP without errors: do not spin */
        return 0;
    }
    int r = zc_read_one(t);
    if (r == 0) { /* POLLERR with an empty queue: a socket error */
        int soerr = 0;
        socklen_t el = sizeof(soerr);
        getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &soerr, &el);
        if (soerr)
            return -soerr;
    }
    return r;
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
            int d = zc_wait(t, 10);
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
    t->cpu_end = current_cpu();
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

/* sendfile: send the buffer's region of the memfd. */
static int send_file(struct nob_thread *t, uint64_t base, uint64_t len)
{
    off_t off = (off_t)base;
    uint64_t left = len;
    while (left > 0) {
        ssize_t r = sendfile(t->fd, t->memfd, &off, left);
        if (r > 0) {
            count_sent(t, r);
            left -= (uint64_t)r;
            if (left)
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

/* splice: vmsplice the fields into the pipe (page references, as much as it holds), then
 * splice all of it to the socket; until every byte went. */
static int send_splice(struct nob_thread *t, struct iovec *iov, int cnt)
{
    int idx = 0;
    while (idx < cnt) {
        ssize_t in = vmsplice(t->pipe_w, iov + idx, (unsigned long)(cnt - idx), 0);
        if (in < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        t->vmsplices++;
        size_t left = (size_t)in;
        while (idx < cnt && left >= iov[idx].iov_len) {
            left -= iov[idx].iov_len;
            idx++;
        }
        if (idx < cnt) {
            iov[idx].iov_base = (uint8_t *)iov[idx].iov_base + left;
            iov[idx].iov_len -= left;
        }
        size_t inpipe = (size_t)in;
        while (inpipe > 0) {
            ssize_t r = splice(t->pipe_r, NULL, t->fd, NULL, inpipe, SPLICE_F_MOVE | SPLICE_F_MORE);
            if (r > 0) {
                count_sent(t, r);
                inpipe -= (size_t)r;
                if (inpipe || idx < cnt)
                    t->partial++;
                continue;
            }
            int e = send_failed(t, r);
            if (e == 0)
                continue;
            if (e == ECANCELED) {
                /* the pipe still holds bytes: it is closed with the thread; nothing is lost
                 * that was counted as sent */
            }
            return -e;
        }
    }
    return 0;
}

static void count_message(struct nob_thread *t, uint64_t lat)
{
    struct nob_client *c = t->c;
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
}

/* ---------------------------------------------------------------- io_uring senders */

/* Reap every CQE there is (waiting up to wait_ms for the first). 0 or -errno (a failed send). */
static int uring_reap(struct nob_thread *t, int wait_ms, const char **where)
{
    const struct nob_client_config *cfg = &t->c->cfg;
    const uint64_t P = (uint64_t)t->npool;
    struct io_uring_cqe *cqe;
    int r;
    if (wait_ms > 0) {
        struct __kernel_timespec ts = {wait_ms / 1000, (long long)(wait_ms % 1000) * 1000000};
        t->uring_waits++;
        r = io_uring_wait_cqe_timeout(&t->ring, &cqe, &ts);
        if (r == -ETIME || r == -EINTR || r == -EAGAIN)
            return 0;
        if (r < 0) {
            *where = "io_uring_wait_cqe";
            return r;
        }
    }
    int rc = 0;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&t->ring, head, cqe) {
        n++;
        uint64_t seq = cqe->user_data;
        if (seq == UINT64_MAX)
            continue; /* the cancel request's own CQE */
        struct zc_slot *sl = &t->slots[seq % P];
        if (cqe->flags & IORING_CQE_F_NOTIF) {
            t->zc_notif++;
            t->zc_completions++;
            if ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
                t->zc_copied++;
            sl->notif = 0;
            continue;
        }
        sl->sending = 0;
        if (t->inflight)
            t->inflight--;
        if (!(cqe->flags & IORING_CQE_F_MORE))
            sl->notif = 0; /* no notification will come for this one */
        if (cqe->res > 0) {
            count_sent(t, cqe->res);
            if (cfg->strategy == NOB_IO_URING_ZC)
                t->zc_sends++;
        }
        if (cqe->res == (int)cfg->msg_size) {
            count_message(t, now_ns() - sl->t_submit);
        } else if (rc == 0) {
            int e = cqe->res < 0 ? -cqe->res : EIO; /* short with MSG_WAITALL: the socket broke */
            if ((e == ECANCELED || e == EINTR) && atomic_load(&t->c->abort))
                e = ECANCELED;
            rc = -e;
            *where = cfg->strategy == NOB_IO_URING_ZC ? "io_uring sendmsg_zc" : "io_uring sendmsg";
        }
    }
    io_uring_cq_advance(&t->ring, n);
    return rc;
}

static uint64_t uring_notifs_pending(const struct nob_thread *t)
{
    uint64_t n = 0;
    for (int k = 0; k < t->npool; k++)
        n += t->slots[k].notif != 0;
    return n;
}

static void uring_cancel_all(struct nob_thread *t)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    sqe->user_data = UINT64_MAX; /* its own CQE: ignored by seq (slot of UINT64_MAX % P, not sending) */
    io_uring_submit(&t->ring);
}

/* io_uring / io_uring_zc: batches of up to uring_depth linked sends (a chain keeps their
 * order on the stream); the next batch is submitted when every send of the last one has
 * completed. A buffer is restamped only when its send completed and, for io_uring_zc, its
 * notification CQE (IORING_CQE_F_NOTIF) came: until then the kernel may still read it. */
static void uring_loop(struct nob_thread *t)
{
    struct nob_client *c = t->c;
    const struct nob_client_config *cfg = &c->cfg;
    const int zc = cfg->strategy == NOB_IO_URING_ZC;
    const uint64_t P = (uint64_t)t->npool;
    const char *where = "io_uring";
    int rc = 0;
    for (;;) {
        if (atomic_load(&c->abort))
            break;
        int ph = atomic_load(&c->phase);
        if (!t->in_window && !t->window_done && ph >= PHASE_MEASURE)
            window_start(t);
        if (cfg->count ? (t->seq >= cfg->count && t->inflight == 0) : ph == PHASE_END)
            break;
        if (t->inflight == 0) {
            int n = 0;
            struct io_uring_sqe *prev = NULL;
            while (n < cfg->uring_depth && (!cfg->count || t->seq < cfg->count)) {
                struct zc_slot *sl = &t->slots[t->seq % P];
                if (sl->sending || (sl->notif && !cfg->unsafe_reuse)) {
                    if (n == 0)
                        t->pool_waits++;
                    break;
                }
                struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
                if (!sqe)
                    break;
                struct msgbuf *m = &t->pool[t->seq % P];
                if (cfg->verify)
                    msgbuf_stamp(m, t->seq, cfg->corrupt_seq);
                memset(&sl->mh, 0, sizeof(sl->mh));
                sl->mh.msg_iov = sl->iov;
                sl->mh.msg_iovlen = (size_t)msgbuf_iov(m, sl->iov);
                if (zc) {
                    io_uring_prep_sendmsg_zc(sqe, t->fd, &sl->mh, MSG_NOSIGNAL | MSG_WAITALL);
                    sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
                } else {
                    io_uring_prep_sendmsg(sqe, t->fd, &sl->mh, MSG_NOSIGNAL | MSG_WAITALL);
                }
                sqe->user_data = t->seq;
                if (prev)
                    prev->flags |= IOSQE_IO_LINK;
                prev = sqe;
                sl->sending = 1;
                sl->notif = zc;
                sl->t_submit = now_ns();
                t->seq++;
                t->inflight++;
                n++;
            }
            if (n > 0) {
                int r = io_uring_submit(&t->ring);
                t->uring_submits++;
                if (r < 0) {
                    rc = r;
                    where = "io_uring_submit";
                    break;
                }
            }
        }
        /* wait: for the batch's sends, or (nothing in flight) for a notification */
        if ((rc = uring_reap(t, IO_TIMEOUT_MS, &where)) < 0)
            break;
    }
    window_end(t);
    atomic_fetch_add(&c->windows_ended, 1);
    /* the end: every send and notification back before the buffers may go (bounded) */
    int aborted = atomic_load(&c->abort) || rc < 0;
    if (aborted && t->inflight)
        uring_cancel_all(t);
    double deadline = now_s() + (aborted ? ZC_ABORT_WAIT_S : ZC_FINAL_WAIT_S);
    while ((t->inflight || uring_notifs_pending(t)) && now_s() < deadline) {
        int r = uring_reap(t, 20, &where);
        if (r < 0 && rc == 0 && !aborted)
            rc = r;
    }
    if (t->inflight && !aborted) { /* sends still blocked (a receiver that stopped reading): cancel them */
        uring_cancel_all(t);
        deadline = now_s() + ZC_ABORT_WAIT_S;
        while (t->inflight && now_s() < deadline)
            uring_reap(t, 20, &where);
    }
    if (rc < 0 && rc != -ECANCELED)
        thread_fail(t, -rc, where);
}

static void *client_thread(void *arg)
{
    struct nob_thread *t = arg;
    struct nob_client *c = t->c;
    const struct nob_client_config *cfg = &c->cfg;
    if (cfg->ncpus > 0) {
        int cpu = cfg->cpus[t->idx % cfg->ncpus], e = pin_self(cpu);
        if (e) {
            char where[64];
            snprintf(where, sizeof(where), "sched_setaffinity(cpu %d)", cpu);
            thread_fail(t, e, where);
            window_end(t);
            atomic_fetch_add(&c->windows_ended, 1);
            return NULL;
        }
    }
    if (is_uring(cfg->strategy)) {
        uring_loop(t);
        return NULL;
    }
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
        if (zc && !cfg->unsafe_reuse) {
            /* This buffer may still be in the kernel's hands: read completions until it is
             * not (only now, and only when poll says one is queued). */
            if (slot->pending)
                t->pool_waits++;
            int stop = 0;
            while (slot->pending) {
                int d = zc_wait(t, IO_TIMEOUT_MS);
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
        if (cfg->verify) {
            if (cfg->strategy == NOB_SPLICE && !cfg->unsafe_reuse) {
                msgbuf_release_pages(m); /* in-flight skbs may still point at these pages */
                t->page_releases++;
            }
            msgbuf_stamp(m, t->seq, cfg->corrupt_seq);
        }

        int rc;
        uint64_t ts0;
        const char *what = "sendmsg";
        if (cfg->strategy == NOB_TWO_COPY) {
            uint8_t *p = t->contig;
            for (int f = 0; f < m->n; f++) {
                memcpy(p, m->field[f], m->len[f]);
                p += m->len[f];
            }
            ts0 = now_ns();
            rc = send_buf(t, t->contig, cfg->msg_size);
            what = "send";
        } else if (cfg->strategy == NOB_SENDFILE) {
            uint64_t base = t->stride * (t->seq % P);
            rc = 0;
            if (cfg->verify) { /* the new stamp goes into fresh pages of the file */
                if (!cfg->unsafe_reuse) {
                    if (fallocate(t->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)base,
                                  (off_t)t->stride) != 0)
                        rc = -errno;
                    t->page_releases++;
                }
                struct iovec iov[NOB_MAX_FIELDS];
                int n = msgbuf_iov(m, iov);
                ssize_t w = rc ? 0 : pwritev(t->memfd, iov, n, (off_t)base);
                if (!rc && w != (ssize_t)cfg->msg_size)
                    rc = w < 0 ? -errno : -EIO;
                t->file_writes++;
                what = "pwritev(memfd)";
            }
            ts0 = now_ns();
            if (rc == 0) {
                rc = send_file(t, base, cfg->msg_size);
                what = "sendfile";
            }
        } else {
            struct iovec iov[NOB_MAX_FIELDS];
            int n = msgbuf_iov(m, iov);
            uint64_t first_id = t->next_id;
            if (zc) { /* open-ended until we know how many sends this message took */
                slot->lo = first_id;
                slot->hi = UINT64_MAX;
                slot->done = 0;
                slot->pending = 1;
            }
            ts0 = now_ns();
            if (cfg->strategy == NOB_SPLICE) {
                rc = send_splice(t, iov, n);
                what = "splice";
            } else {
                rc = send_iov(t, iov, n, zc ? MSG_ZEROCOPY : 0);
            }
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
            thread_fail(t, -rc, what);
            break;
        }
        t->seq++;
        count_message(t, lat);
    }
    window_end(t);
    atomic_fetch_add(&c->windows_ended, 1);

    if (zc && t->fd >= 0) {
        double deadline = now_s() + (atomic_load(&c->abort) ? ZC_ABORT_WAIT_S : ZC_FINAL_WAIT_S);
        while (zc_outstanding(t) > 0 && now_s() < deadline)
            if (zc_wait(t, 20) < 0)
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
    for (int i = 0; i < NOB_MAX_THREADS; i++)
        st->thread_cpu[i] = -1;
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
        st->zc_empty_reads += t->zc_empty;
        st->zc_polls += t->zc_polls;
        st->uring_submits += t->uring_submits;
        st->uring_waits += t->uring_waits;
        st->file_writes += t->file_writes;
        st->page_releases += t->page_releases;
        st->vmsplice_calls += t->vmsplices;
        st->per_thread_bytes[i] = t->bytes_total;
        st->thread_cpu[i] = t->cpu_end;
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
    st->zc_pool = uses_pool(c->cfg.strategy) ? c->t[0].npool : 0;
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
    uint64_t zc_mapped, zc_copied, zc_calls;
    int zc_fallback;
    int pin_err, cpu; /* sched_setaffinity's errno; the CPU it was on at its end (-1 = unknown) */
    double first, last;
    double cpu_user, cpu_sys;
    struct verifier v;
    int err;
    atomic_int done;
};

struct nob_server {
    struct nob_server_config cfg;
    int mode; /* NOB_RECV_* */
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
    int mode = cfg->recv_mode;
    if (mode < NOB_RECV_COPY || mode > NOB_RECV_ZEROCOPY)
        return fail(err, EINVAL, "config", "recv_mode %d is not %d..%d", mode, NOB_RECV_COPY,
                    NOB_RECV_ZEROCOPY);
    if (mode == NOB_RECV_TRUNC && cfg->verify)
        return fail(err, EINVAL, "config", "receive mode trunc discards the bytes: nothing to verify");
    if (cfg->fields < 1 || cfg->fields > NOB_MAX_FIELDS)
        return fail(err, EINVAL, "config", "fields %d is not 1..%d", cfg->fields, NOB_MAX_FIELDS);
    if ((cfg->verify || mode == NOB_RECV_FIELDS) &&
        (cfg->msg_size < NOB_MIN_MSG || cfg->msg_size > NOB_MAX_MSG))
        return fail(err, EINVAL, "config", "msg_size %llu is not %d..%d",
                    (unsigned long long)cfg->msg_size, NOB_MIN_MSG, NOB_MAX_MSG);
    if ((cfg->verify || mode == NOB_RECV_FIELDS) && cfg->msg_size < (uint64_t)cfg->fields)
        return fail(err, EINVAL, "config", "a %llu-byte message cannot have %d fields",
                    (unsigned long long)cfg->msg_size, cfg->fields);
    if (!(cfg->timeout_s >= 0))
        return fail(err, EINVAL, "config", "timeout must be >= 0");
    if (memchr(cfg->bind, 0, sizeof(cfg->bind)) == NULL)
        return fail(err, EINVAL, "config", "bind address is not terminated");
    int rc = cfg_check_cpus(cfg->cpus, cfg->ncpus, err);
    if (rc)
        return rc;
    struct sockaddr_storage ss;
    socklen_t sl = parse_addr(cfg->bind, cfg->port, &ss);
    if (!sl)
        return fail(err, EINVAL, "config", "bind address '%s' is not numeric", cfg->bind);
    struct nob_server *s = calloc(1, sizeof(*s));
    if (!s)
        return fail(err, ENOMEM, "allocate server", NULL);
    s->cfg = *cfg;
    s->mode = mode;
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

static void conn_got(struct nob_conn *k, const uint8_t *p, size_t n)
{
    double t = now_s();
    if (k->first == 0)
        k->first = t;
    k->last = t;
    k->bytes += (uint64_t)n;
    if (k->s->cfg.verify && p)
        verify_chunk(&k->v, p, n);
}

/* TCP_ZEROCOPY_RECEIVE: map whole pages of the receive queue into `map`, copy what cannot be
 * mapped (recv_skip_hint: a part of a page, or data in the skb's head) with recv(). Returns
 * 1 to go on, 0 at EOF, -errno (EOPNOTSUPP etc.: the caller falls back to copying). */
static int zc_receive_once(struct nob_conn *k, uint8_t *map, uint8_t *buf, size_t cap)
{
    struct pollfd p = {k->fd, POLLIN, 0};
    int n = poll(&p, 1, IO_TIMEOUT_MS);
    if (n <= 0)
        return n < 0 && errno != EINTR ? -errno : 1;
    struct nob_tcp_zc zc;
    memset(&zc, 0, sizeof(zc));
    zc.address = (uint64_t)(uintptr_t)map;
    zc.length = ZC_RX_MAP;
    socklen_t zl = sizeof(zc);
    if (getsockopt(k->fd, IPPROTO_TCP, TCP_ZEROCOPY_RECEIVE, &zc, &zl) != 0)
        return -errno;
    k->zc_calls++;
    if (zc.err)
        return -zc.err;
    if (zc.length) {
        k->zc_mapped += zc.length;
        conn_got(k, map, zc.length);
        k->recv_calls++;
    }
    if (zc.recv_skip_hint || (zc.length == 0)) {
        /* the rest cannot be mapped: copy it (with nothing mapped and nothing to skip, a
         * plain recv tells data from EOF) */
        size_t want = zc.recv_skip_hint ? zc.recv_skip_hint : cap;
        if (want > cap)
            want = cap;
        ssize_t r = recv(k->fd, buf, want, MSG_DONTWAIT);
        if (r == 0)
            return 0;
        if (r < 0)
            return errno == EAGAIN || errno == EINTR ? 1 : -errno;
        k->recv_calls++;
        k->zc_copied += (uint64_t)r;
        conn_got(k, buf, (size_t)r);
    }
    return 1;
}

static void *conn_thread(void *arg)
{
    struct nob_conn *k = arg;
    struct nob_server *s = k->s;
    const struct nob_server_config *cfg = &s->cfg;
    const int mode = s->mode, copy_out = mode == NOB_RECV_FIELDS;
    if (cfg->ncpus > 0 && (k->pin_err = pin_self(cfg->cpus[k->idx % cfg->ncpus]))) {
        close(k->fd); /* not pinned as asked: this connection is refused, the run fails */
        k->fd = -1;
        k->err = k->pin_err;
        atomic_store(&k->done, 1);
        return NULL;
    }
    struct rusage ru0, ru1;
    thread_rusage(&ru0);
    /* fields: a whole number of messages, received in large calls like the plain server
     * and copied out one by one; no message wraps, so nothing is moved between calls */
    uint64_t cap = RECV_BUF;
    if (copy_out)
        cap = cfg->msg_size * (cfg->msg_size < RECV_BUF ? RECV_BUF / cfg->msg_size : 1);
    uint8_t *buf = malloc(cap);
    struct msgbuf fields = {0};
    int ok = buf != NULL;
    if (ok && copy_out) {
        fields.n = cfg->fields;
        field_lens(cfg->msg_size, cfg->fields, fields.len);
        for (int f = 0; f < fields.n && ok; f++)
            ok = (fields.field[f] = malloc(fields.len[f])) != NULL;
    }
    if (!ok)
        k->err = ENOMEM;
    uint8_t *map = NULL;
    if (ok && mode == NOB_RECV_ZEROCOPY) {
        void *m = mmap(NULL, ZC_RX_MAP, PROT_READ, MAP_SHARED, k->fd, 0);
        if (m == MAP_FAILED)
            k->zc_fallback = errno ? errno : EIO;
        else
            map = m;
    }
    while (ok && map && !atomic_load(&s->stop_conns)) {
        int r = zc_receive_once(k, map, buf, cap);
        if (r == 1)
            continue;
        if (r < 0 && k->zc_calls == 0 && k->bytes == 0) {
            k->zc_fallback = -r; /* refused from the start: receive by copying */
            break;
        }
        if (r < 0)
            k->err = -r;
        ok = 0; /* EOF or an error */
    }
    if (map)
        munmap(map, ZC_RX_MAP);
    const int flags = mode == NOB_RECV_TRUNC ? MSG_TRUNC : 0;
    uint64_t off = 0, done = 0;   /* fields: bytes in buf, and of those copied out */
    while (ok && !atomic_load(&s->stop_conns)) {
        uint8_t *dst = copy_out ? buf + off : buf;
        size_t want = copy_out ? cap - off : cap;
        ssize_t r = recv(k->fd, dst, want, flags);
        if (r > 0) {
            k->recv_calls++;
            if (mode == NOB_RECV_ZEROCOPY)
                k->zc_copied += (uint64_t)r; /* the fallback */
            conn_got(k, flags & MSG_TRUNC ? NULL : dst, (size_t)r);
            if (copy_out) {
                off += (uint64_t)r;
                while (off - done >= cfg->msg_size) { /* the receive-side mirror of two_copy */
                    const uint8_t *p = buf + done;
                    for (int f = 0; f < fields.n; f++) {
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
    k->cpu = current_cpu();
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
        k->cpu = -1;
        k->v.msg_size = cfg->msg_size;
        k->v.nfields = (unsigned)cfg->fields;
        k->v.flen = cfg->fields > 0 ? cfg->msg_size / (uint64_t)cfg->fields : 0;
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
    for (int i = 0; i < NOB_MAX_CONNS; i++)
        st->conn_cpu[i] = -1;
    for (int i = 0; i < s->nconns; i++) {
        struct nob_conn *k = s->conns[i];
        pthread_join(k->tid, NULL);
        if (k->pin_err && rc == 0) {
            char where[64];
            snprintf(where, sizeof(where), "sched_setaffinity(cpu %d)", cfg->cpus[i % cfg->ncpus]);
            rc = fail(err, k->pin_err, where, "connection %d", i + 1);
        }
        st->bytes_received += k->bytes;
        st->per_conn_bytes[i] = k->bytes;
        st->conn_cpu[i] = k->cpu;
        st->recv_calls += k->recv_calls;
        st->messages_copied += k->msgs_copied;
        st->rx_zc_mapped += k->zc_mapped;
        st->rx_zc_copied += k->zc_copied;
        st->rx_zc_calls += k->zc_calls;
        if (k->zc_fallback && !st->rx_zc_fallback_errno)
            st->rx_zc_fallback_errno = k->zc_fallback;
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
    st->recv_mode = s->mode;
    st->first_byte_s = first;
    st->last_byte_s = last;
    st->active_s = last > first ? last - first : 0;
    return rc;
}
