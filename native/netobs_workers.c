/* netobs copy workers: the client's driver. The senders themselves are a table of ops
 * (struct nob_sender, nob_internal.h), one family per file:
 *   send_copy.c      two_copy (memcpy the fields into one buffer, send()), one_copy (sendmsg()
 *                    with an iovec over the fields)
 *   send_zerocopy.c  zero_copy: SO_ZEROCOPY + sendmsg(MSG_ZEROCOPY), completions from MSG_ERRQUEUE
 *   send_uring.c     io_uring / io_uring_zc: IORING_OP_SENDMSG(_ZC) in linked batches
 *   send_pages.c     sendfile (from a memfd), splice (vmsplice into a pipe, splice to the socket)
 * The receiving server and its receive modes are nob_server.c; what all share, nob_common.c.
 *
 * A message is N separately allocated fields (--fields, default 8: msg_size / N each, the
 * remainder on the last). This file owns what every sender has in common: validation,
 * buffers, connections, pinning, the phases (warm-up, measured window, end), each thread's
 * window (CPU time, latency samples at message boundaries), the perf control fifo, the stop,
 * and the stats (counters summed by index).
 *
 * Blocking calls are bounded (SO_SNDTIMEO/SO_RCVTIMEO of 100 ms, poll timeouts) so a stop
 * request is seen within a fraction of a second. Functions return 0 or -errno and fill
 * struct nob_error with the failing step.
 */
#include "nob_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

_Static_assert(sizeof(((struct nob_client_stats *)0)->per_thread_bytes) / sizeof(uint64_t) ==
                   NOB_MAX_THREADS, "per_thread_bytes must hold NOB_MAX_THREADS");
_Static_assert(sizeof(((struct nob_server_stats *)0)->per_conn_bytes) / sizeof(uint64_t) ==
                   NOB_MAX_CONNS, "per_conn_bytes must hold NOB_MAX_CONNS");

#define CTL_ACK_TIMEOUT_S 2.0      /* perf control: wait this long for "ack" */
#define END_GRACE_S 3.0            /* after the window ends, a thread may finish its message */

/* ---------------------------------------------------------------- the senders */

extern const struct nob_sender nob_two_copy, nob_one_copy, nob_zero_copy, nob_io_uring, nob_io_uring_zc,
    nob_sendfile, nob_splice;

/* By NOB_<STRATEGY> code: adding a sender is a line here (and its ops in its family's file). */
static const struct nob_sender *const SENDERS[NOB_STRATEGIES] = {
    [NOB_TWO_COPY] = &nob_two_copy,
    [NOB_ONE_COPY] = &nob_one_copy,
    [NOB_ZERO_COPY] = &nob_zero_copy,
    [NOB_IO_URING] = &nob_io_uring,
    [NOB_IO_URING_ZC] = &nob_io_uring_zc,
    [NOB_SENDFILE] = &nob_sendfile,
    [NOB_SPLICE] = &nob_splice,
};

const struct nob_sender *nob_sender_of(int strategy)
{
    return strategy >= 0 && strategy < NOB_STRATEGIES ? SENDERS[strategy] : NULL;
}

int nob_strategy_probe(int strategy, struct nob_error *err)
{
    const struct nob_sender *ops = nob_sender_of(strategy);
    if (!ops)
        return nob_fail(err, EINVAL, "config", "strategy %d is not 0..%d", strategy, NOB_STRATEGIES - 1);
    return ops->probe ? ops->probe(err) : 0;
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

static int cfg_check_client(const struct nob_client_config *cfg, struct nob_error *err)
{
    if (!nob_sender_of(cfg->strategy))
        return nob_fail(err, EINVAL, "config", "strategy %d is not 0..%d", cfg->strategy, NOB_STRATEGIES - 1);
    if (cfg->msg_size < NOB_MIN_MSG || cfg->msg_size > NOB_MAX_MSG)
        return nob_fail(err, EINVAL, "config", "msg_size %llu is not %d..%d",
                        (unsigned long long)cfg->msg_size, NOB_MIN_MSG, NOB_MAX_MSG);
    if (cfg->fields < 1 || cfg->fields > NOB_MAX_FIELDS)
        return nob_fail(err, EINVAL, "config", "fields %d is not 1..%d", cfg->fields, NOB_MAX_FIELDS);
    if (cfg->msg_size < (uint64_t)cfg->fields)
        return nob_fail(err, EINVAL, "config", "a %llu-byte message cannot have %d fields (one byte each at least)",
                        (unsigned long long)cfg->msg_size, cfg->fields);
    if (cfg->uring_depth < 1 || cfg->uring_depth > NOB_MAX_URING_DEPTH)
        return nob_fail(err, EINVAL, "config", "uring_depth %d is not 1..%d", cfg->uring_depth,
                        NOB_MAX_URING_DEPTH);
    if (cfg->threads < 1 || cfg->threads > NOB_MAX_THREADS)
        return nob_fail(err, EINVAL, "config", "threads %d is not 1..%d", cfg->threads,
                        NOB_MAX_THREADS);
    if (cfg->count == 0 && !(cfg->duration_s > 0 && cfg->duration_s <= 3600))
        return nob_fail(err, EINVAL, "config", "duration %g is not in (0, 3600]", cfg->duration_s);
    if (cfg->count == 0 && !(cfg->warmup_s >= 0 && cfg->warmup_s <= 3600))
        return nob_fail(err, EINVAL, "config", "warmup %g is not in [0, 3600]", cfg->warmup_s);
    if (cfg->port < 1 || cfg->port > 65535)
        return nob_fail(err, EINVAL, "config", "port %d is not 1..65535", cfg->port);
    if (memchr(cfg->host, 0, sizeof(cfg->host)) == NULL)
        return nob_fail(err, EINVAL, "config", "host is not terminated");
    struct sockaddr_storage ss;
    if (!nob_parse_addr(cfg->host, cfg->port, &ss) || cfg->host[0] == 0)
        return nob_fail(err, EINVAL, "config", "host '%s' is not a numeric address", cfg->host);
    if (cfg->zc_pool < 0 || cfg->zc_pool > 65536)
        return nob_fail(err, EINVAL, "config", "zc_pool %d is not 0..65536", cfg->zc_pool);
    return nob_check_cpus(cfg->cpus, cfg->ncpus, err);
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
        return nob_fail(err, ENOMEM, "allocate client", NULL);
    c->cfg = *cfg;
    c->ops = nob_sender_of(cfg->strategy);
    c->nthreads = cfg->threads;
    const struct nob_sender *ops = c->ops;
    int npool = ops->pool ? ops->pool(cfg) : 1;
    /* Refuse what would not fit rather than let the OOM killer decide. */
    double need = (double)cfg->threads * (double)cfg->msg_size * (double)(npool + ops->extra_msgs);
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psz > 0 && need > 0.5 * (double)pages * (double)psz) {
        free(c);
        return nob_fail(err, ENOMEM, "allocate message buffers",
                        "%.0f MiB of messages, more than half of this host's %.0f MiB",
                        need / 1048576.0, (double)pages * (double)psz / 1048576.0);
    }
    c->t = calloc((size_t)c->nthreads, sizeof(*c->t));
    if (!c->t) {
        free(c);
        return nob_fail(err, ENOMEM, "allocate client", NULL);
    }
    for (int i = 0; i < c->nthreads; i++) {
        struct nob_thread *t = &c->t[i];
        t->c = c;
        t->cfg = &c->cfg;
        t->ops = ops;
        t->idx = i;
        t->fd = -1;
        t->npool = npool;
        t->lat_min = UINT64_MAX;
        t->cpu_end = -1;
        t->pool = calloc((size_t)npool, sizeof(*t->pool));
        t->hist = calloc(HIST_BUCKETS, sizeof(uint64_t));
        if (!t->pool || !t->hist) {
            nob_client_free(c);
            return nob_fail(err, ENOMEM, "allocate message buffers", NULL);
        }
        for (int k = 0; k < npool; k++)
            if (nob_msgbuf_alloc(&t->pool[k], cfg->msg_size, cfg->fields, ops->paged, (uint64_t)k)) {
                nob_client_free(c);
                return nob_fail(err, ENOMEM, "allocate message buffers", NULL);
            }
        if (ops->setup && (rc = ops->setup(t, err))) {
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

/* Freeing a client whose run is still going (another thread inside nob_client_run) would
 * pull the buffers, the zero-copy pool state and the threads' own struct from under its
 * sending threads: stop it and wait until the run returned (its threads joined) first. */
void nob_client_free(struct nob_client *c)
{
    if (!c)
        return;
    if (atomic_load(&c->running)) {
        nob_client_stop(c);
        while (atomic_load(&c->running))
            nob_sleep_s(0.001);
    }
    if (c->t) {
        for (int i = 0; i < c->nthreads; i++) {
            struct nob_thread *t = &c->t[i];
            if (t->fd >= 0)
                close(t->fd);
            if (c->ops->teardown)
                c->ops->teardown(t);
            if (t->pool)
                for (int k = 0; k < t->npool; k++)
                    nob_msgbuf_free(&t->pool[k]);
            free(t->pool);
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
    socklen_t sl = nob_parse_addr(cfg->host, cfg->port, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return nob_fail(err, errno, "socket", NULL);
    t->fd = fd;
    int one = 1, rc;
    if (c->ops->sockopt && (rc = c->ops->sockopt(t, err)))
        return rc;
    if (cfg->nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
        return nob_fail(err, errno, "setsockopt(TCP_NODELAY)", NULL);
    if (cfg->sndbuf > 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cfg->sndbuf, sizeof(cfg->sndbuf)))
        return nob_fail(err, errno, "setsockopt(SO_SNDBUF)", NULL);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        if (errno != EINPROGRESS)
            return nob_fail(err, errno, "connect", "%s port %d", cfg->host, cfg->port);
        double deadline = now_s() + (cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 3.0);
        for (;;) {
            if (atomic_load(&c->abort))
                return nob_fail(err, ECANCELED, "connect", "stopped");
            struct pollfd p = {fd, POLLOUT, 0};
            int n = poll(&p, 1, IO_TIMEOUT_MS);
            if (n > 0)
                break;
            if (n < 0 && errno != EINTR)
                return nob_fail(err, errno, "connect", "poll");
            if (now_s() > deadline)
                return nob_fail(err, ETIMEDOUT, "connect", "%s port %d", cfg->host, cfg->port);
        }
        int soerr = 0;
        socklen_t el = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el);
        if (soerr)
            return nob_fail(err, soerr, "connect", "%s port %d", cfg->host, cfg->port);
    }
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    nob_set_io_timeout(fd, SO_SNDTIMEO);
    socklen_t bl = sizeof(t->sndbuf); /* what the kernel granted: twice what was asked, capped by wmem_max */
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &t->sndbuf, &bl))
        t->sndbuf = 0;
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
        return nob_fail(err, w < 0 ? errno : EIO, "perf control write", "%.*s", (int)len - 1, cmd);
    if (cfg->ack_fd < 0)
        return 0;
    double deadline = now_s() + CTL_ACK_TIMEOUT_S;
    char buf[64];
    size_t got = 0;
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0)
            return nob_fail(err, ETIMEDOUT, "perf control ack", "no ack for %.*s within %.0f s",
                        (int)len - 1, cmd, CTL_ACK_TIMEOUT_S);
        struct pollfd p = {cfg->ack_fd, POLLIN, 0};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            return nob_fail(err, errno, "perf control ack", NULL);
        if (n <= 0)
            continue;
        ssize_t r = read(cfg->ack_fd, buf + got, sizeof(buf) - 1 - got);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r < 0)
            return nob_fail(err, errno, "perf control ack", NULL);
        if (r == 0) {
            if (p.revents & POLLHUP)
                nob_sleep_s(0.01); /* no writer right now; perf keeps its end open */
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

static void window_start(struct nob_thread *t)
{
    t->in_window = 1;
    nob_thread_rusage(&t->ru0);
}

static void window_end(struct nob_thread *t)
{
    if (!t->in_window)
        return;
    nob_thread_rusage(&t->ru1);
    t->cpu_end = nob_current_cpu();
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

void nob_message_sent(struct nob_thread *t, uint64_t lat) { count_message(t, lat); }

/* One sending thread: the one loop of every sender. It owns the phases (the window opens at
 * a message boundary once the coordinator says measure, and closes at the end), the stop,
 * and the latency of a sync sender's message (the time around its step: its send call(s),
 * not the wait for a buffer nor the restamp). The sender submits (step), and for an async
 * one the loop then waits in reap, where its messages complete. At the end the sender drains
 * what the kernel still holds. */
static void *client_thread(void *arg)
{
    struct nob_thread *t = arg;
    struct nob_client *c = t->c;
    const struct nob_client_config *cfg = &c->cfg;
    const struct nob_sender *ops = t->ops;
    const uint64_t P = (uint64_t)t->npool;
    int rc = 0;
    t->what = "send";
    if (cfg->ncpus > 0) {
        int cpu = cfg->cpus[t->idx % cfg->ncpus], e = nob_pin_self(cpu);
        if (e) {
            char where[64];
            snprintf(where, sizeof(where), "sched_setaffinity(cpu %d)", cpu);
            thread_fail(t, e, where);
            atomic_fetch_add(&c->windows_ended, 1);
            return NULL;
        }
    }
    for (;;) {
        if (atomic_load(&c->abort))
            break;
        int ph = atomic_load(&c->phase);
        if (!t->in_window && !t->window_done && ph >= PHASE_MEASURE)
            window_start(t);
        if (cfg->count ? (t->seq >= cfg->count && t->inflight == 0) : ph == PHASE_END)
            break;
        if (ops->async) {
            if ((rc = ops->step(t, NULL)) < 0 || (rc = ops->reap(t, IO_TIMEOUT_MS)) < 0)
                break;
            continue;
        }
        struct msgbuf *m = &t->pool[t->seq % P];
        if (ops->prepare && (rc = ops->prepare(t, m)) < 0)
            break;
        uint64_t ts0 = now_ns();
        rc = ops->step(t, m);
        uint64_t lat = now_ns() - ts0;
        if (rc < 0)
            break;
        t->seq++;
        count_message(t, lat);
    }
    window_end(t);
    atomic_fetch_add(&c->windows_ended, 1);
    if (rc < 0 && rc != -ECANCELED)
        thread_fail(t, -rc, t->what);
    if (ops->drain) {
        int r = ops->drain(t, atomic_load(&c->abort) || rc < 0);
        if (r < 0 && r != -ECANCELED && rc == 0)
            thread_fail(t, -r, t->what);
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
        nob_sleep_s(left < 0.02 ? left : 0.02);
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
        for (int k = 0; k < NOB_NCTR; k++)
            st->counters[k] += t->ctr[k];
        st->per_thread_bytes[i] = t->bytes_total;
        st->thread_cpu[i] = t->cpu_end;
        if (t->window_done) {
            st->cpu_user_s += nob_tv_s(t->ru1.ru_utime) - nob_tv_s(t->ru0.ru_utime);
            st->cpu_sys_s += nob_tv_s(t->ru1.ru_stime) - nob_tv_s(t->ru0.ru_stime);
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
    /* what is not a sum: ids without completion, and the settings */
    uint64_t *n = st->counters;
    n[NOB_CTR_ZEROCOPY_OUTSTANDING] = n[NOB_CTR_ZEROCOPY_SENDS] > n[NOB_CTR_ZEROCOPY_COMPLETIONS]
                                          ? n[NOB_CTR_ZEROCOPY_SENDS] - n[NOB_CTR_ZEROCOPY_COMPLETIONS] : 0;
    n[NOB_CTR_ZEROCOPY_POOL] = c->ops->pool ? (uint64_t)c->t[0].npool : 0;
    n[NOB_CTR_IO_URING_DEPTH] = (uint64_t)c->cfg.uring_depth;
    st->groups = NOB_GROUPS_ALWAYS | c->ops->groups;
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
    st->threads = c->nthreads;
    st->sndbuf_bytes = c->nthreads > 0 ? c->t[0].sndbuf : 0;
    st->interrupted = atomic_load(&c->stop_requested);
}

static int client_run(struct nob_client *c, struct nob_client_stats *st, struct nob_error *err);

int nob_client_run(struct nob_client *c, struct nob_client_stats *st, struct nob_error *err)
{
    memset(st, 0, sizeof(*st));
    if (c->ran)
        return nob_fail(err, EALREADY, "run", "a client runs once");
    c->ran = 1;
    atomic_store(&c->running, 1);
    int rc = client_run(c, st, err);
    atomic_store(&c->running, 0); /* the last touch of c: nob_client_free may go on */
    return rc;
}

static int client_run(struct nob_client *c, struct nob_client_stats *st, struct nob_error *err)
{
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
            rc = nob_fail(err, e, "pthread_create", "thread %d of %d", i + 1, c->nthreads);
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
        nob_sleep_s(0.001);
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
                rc = nob_fail(err, c->t[i].err, c->t[i].where, "thread %d", i);
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
