/* netobs copy workers: the receiving server, one thread per connection, and its receive
 * modes as a table (struct nob_receiver): each mode sets up its buffers, receives once per
 * step, and tears down; the connection's loop owns the stop, the byte counts, the verifier
 * and the CPU figures.
 *   copy:     recv() into one large buffer (the kernel's receive copy)
 *   fields:   ... then each whole message copied out into its fields (the mirror of two_copy)
 *   trunc:    recv(MSG_TRUNC): TCP discards the bytes, no receive copy
 *   zerocopy: TCP_ZEROCOPY_RECEIVE: pages mapped, the rest copied; refused: copy instead
 */
#include "nob_internal.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

#define RECV_BUF (256u << 10)
#define ZC_RX_MAP (2u << 20)       /* TCP_ZEROCOPY_RECEIVE mapping per connection */

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

/* ---------------------------------------------------------------- server */

struct nob_conn {
    struct nob_server *s;
    int fd, idx;
    pthread_t tid;
    uint64_t bytes;
    uint64_t ctr[NOB_SERVER_NCTR]; /* NOB_SERVER_CTR_* (the verifier's and the errors: at its end) */
    int zc_fallback;
    int rcvbuf;            /* SO_RCVBUF read back once accepted */
    int pin_err, cpu; /* sched_setaffinity's errno; the CPU it was on at its end (-1 = unknown) */
    double first, last;
    double cpu_user, cpu_sys;
    struct verifier v;
    int err;
    atomic_int done;
    /* the receive mode's buffers */
    uint8_t *buf;
    uint64_t cap;
    struct msgbuf fields;  /* fields: where each message is copied out */
    uint64_t off, copied;  /* fields: bytes in buf, and of those copied out */
    uint8_t *map;          /* zerocopy: the mapping (NULL: copying, the fallback) */
};

/* One receive mode. setup: 0 or an errno; step: receive once, 1 to go on, 0 at EOF, -errno. */
struct nob_receiver {
    const char *name;
    int discards;          /* the bytes never reach user space (nothing to verify) */
    int needs_msg_size;    /* works on whole messages */
    int (*setup)(struct nob_conn *k);
    int (*step)(struct nob_conn *k);
    void (*teardown)(struct nob_conn *k);
    unsigned groups;       /* its NOB_SERVER_GROUP_* counters beside NOB_SERVER_GROUPS_ALWAYS */
};

static const struct nob_receiver *const RECEIVERS[NOB_RECV_MODES];

struct nob_server {
    struct nob_server_config cfg;
    int mode; /* NOB_RECV_* */
    int lfd, port;
    atomic_int stop;       /* stop request from the user */
    atomic_int stop_conns; /* receiving threads stop now */
    struct nob_conn *conns[NOB_MAX_CONNS];
    int nconns;
    int ran;
    atomic_int running; /* inside nob_server_run: nob_server_free waits for it to return */
};

int nob_server_open(const struct nob_server_config *cfg, struct nob_server **out,
                    struct nob_error *err)
{
    *out = NULL;
    if (cfg->port < 0 || cfg->port > 65535)
        return nob_fail(err, EINVAL, "config", "port %d is not 0..65535", cfg->port);
    if (cfg->connections < 0 || cfg->connections > NOB_MAX_CONNS)
        return nob_fail(err, EINVAL, "config", "connections %d is not 0..%d", cfg->connections,
                    NOB_MAX_CONNS);
    int mode = cfg->recv_mode;
    if (mode < 0 || mode >= NOB_RECV_MODES)
        return nob_fail(err, EINVAL, "config", "recv_mode %d is not 0..%d", mode, NOB_RECV_MODES - 1);
    if (RECEIVERS[mode]->discards && cfg->verify)
        return nob_fail(err, EINVAL, "config", "receive mode %s discards the bytes: nothing to verify",
                        RECEIVERS[mode]->name);
    if (cfg->fields < 1 || cfg->fields > NOB_MAX_FIELDS)
        return nob_fail(err, EINVAL, "config", "fields %d is not 1..%d", cfg->fields, NOB_MAX_FIELDS);
    if ((cfg->verify || RECEIVERS[mode]->needs_msg_size) &&
        (cfg->msg_size < NOB_MIN_MSG || cfg->msg_size > NOB_MAX_MSG))
        return nob_fail(err, EINVAL, "config", "msg_size %llu is not %d..%d",
                    (unsigned long long)cfg->msg_size, NOB_MIN_MSG, NOB_MAX_MSG);
    if ((cfg->verify || RECEIVERS[mode]->needs_msg_size) && cfg->msg_size < (uint64_t)cfg->fields)
        return nob_fail(err, EINVAL, "config", "a %llu-byte message cannot have %d fields",
                    (unsigned long long)cfg->msg_size, cfg->fields);
    if (!(cfg->timeout_s >= 0))
        return nob_fail(err, EINVAL, "config", "timeout must be >= 0");
    if (memchr(cfg->bind, 0, sizeof(cfg->bind)) == NULL)
        return nob_fail(err, EINVAL, "config", "bind address is not terminated");
    int rc = nob_check_cpus(cfg->cpus, cfg->ncpus, err);
    if (rc)
        return rc;
    struct sockaddr_storage ss;
    socklen_t sl = nob_parse_addr(cfg->bind, cfg->port, &ss);
    if (!sl)
        return nob_fail(err, EINVAL, "config", "bind address '%s' is not numeric", cfg->bind);
    struct nob_server *s = calloc(1, sizeof(*s));
    if (!s)
        return nob_fail(err, ENOMEM, "allocate server", NULL);
    s->cfg = *cfg;
    s->mode = mode;
    s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0) {
        int e = errno;
        free(s);
        return nob_fail(err, e, "socket", NULL);
    }
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (cfg->rcvbuf > 0)
        setsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &cfg->rcvbuf, sizeof(cfg->rcvbuf));
    if (bind(s->lfd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        nob_server_free(s);
        return nob_fail(err, e, "bind", "%s port %d", cfg->bind[0] ? cfg->bind : "0.0.0.0",
                    cfg->port);
    }
    if (listen(s->lfd, 1024) != 0) {
        int e = errno;
        nob_server_free(s);
        return nob_fail(err, e, "listen", NULL);
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

/* As nob_client_free: a server whose run is still going is stopped and waited for, never
 * freed under its receiving threads (nor its listening fd closed under its accept loop). */
void nob_server_free(struct nob_server *s)
{
    if (!s)
        return;
    if (atomic_load(&s->running)) {
        nob_server_stop(s);
        while (atomic_load(&s->running))
            nob_sleep_s(0.001);
    }
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
    k->ctr[NOB_SERVER_CTR_RX_ZEROCOPY_CALLS]++;
    if (zc.err)
        return -zc.err;
    if (zc.length) {
        k->ctr[NOB_SERVER_CTR_RX_ZEROCOPY_MAPPED_BYTES] += zc.length;
        conn_got(k, map, zc.length);
        k->ctr[NOB_SERVER_CTR_CALLS_RECV_CALLS]++;
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
        k->ctr[NOB_SERVER_CTR_CALLS_RECV_CALLS]++;
        k->ctr[NOB_SERVER_CTR_RX_ZEROCOPY_COPIED_BYTES] += (uint64_t)r;
        conn_got(k, buf, (size_t)r);
    }
    return 1;
}


/* recv() into dst: the kernel's receive copy (MSG_TRUNC: discarded instead). Bytes, 0 at EOF,
 * -EAGAIN to retry (the receive timeout, a signal), -errno. */
static ssize_t recv_into(struct nob_conn *k, uint8_t *dst, size_t want, int flags)
{
    ssize_t r = recv(k->fd, dst, want, flags);
    if (r > 0) {
        k->ctr[NOB_SERVER_CTR_CALLS_RECV_CALLS]++;
        conn_got(k, flags & MSG_TRUNC ? NULL : dst, (size_t)r);
        return r;
    }
    if (r == 0)
        return 0;
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        return -EAGAIN;
    return -errno;
}

/* recv_into's answer as a step's: bytes or a retry -> 1 */
static int step_of(ssize_t r) { return r > 0 || r == -EAGAIN ? 1 : (int)r; }

static int buf_setup(struct nob_conn *k)
{
    k->cap = RECV_BUF;
    return (k->buf = malloc(k->cap)) ? 0 : ENOMEM;
}

static void buf_teardown(struct nob_conn *k)
{
    free(k->buf);
    k->buf = NULL;
}

static int copy_step(struct nob_conn *k) { return step_of(recv_into(k, k->buf, k->cap, 0)); }

static int trunc_step(struct nob_conn *k) { return step_of(recv_into(k, k->buf, k->cap, MSG_TRUNC)); }

/* fields: a whole number of messages, received in large calls like the plain server and
 * copied out one by one; no message wraps, so nothing is moved between calls */
static int fields_setup(struct nob_conn *k)
{
    const struct nob_server_config *cfg = &k->s->cfg;
    k->cap = cfg->msg_size * (cfg->msg_size < RECV_BUF ? RECV_BUF / cfg->msg_size : 1);
    if (!(k->buf = malloc(k->cap)))
        return ENOMEM;
    k->fields.n = cfg->fields;
    nob_field_lens(cfg->msg_size, cfg->fields, k->fields.len);
    for (int f = 0; f < k->fields.n; f++)
        if (!(k->fields.field[f] = malloc(k->fields.len[f])))
            return ENOMEM;
    return 0;
}

static void fields_teardown(struct nob_conn *k)
{
    buf_teardown(k);
    nob_msgbuf_free(&k->fields);
}

static int fields_step(struct nob_conn *k)
{
    const uint64_t msg_size = k->s->cfg.msg_size;
    ssize_t r = recv_into(k, k->buf + k->off, k->cap - k->off, 0);
    if (r <= 0)
        return step_of(r);
    k->off += (uint64_t)r;
    while (k->off - k->copied >= msg_size) { /* the receive-side mirror of two_copy */
        const uint8_t *p = k->buf + k->copied;
        for (int f = 0; f < k->fields.n; f++) {
            memcpy(k->fields.field[f], p, k->fields.len[f]);
            p += k->fields.len[f];
        }
        k->copied += msg_size;
        k->ctr[NOB_SERVER_CTR_MESSAGES_COPIED]++;
    }
    if (k->off == k->cap)
        k->off = k->copied = 0;
    return 1;
}

static int zc_setup(struct nob_conn *k)
{
    int e = buf_setup(k);
    if (e)
        return e;
    void *m = mmap(NULL, ZC_RX_MAP, PROT_READ, MAP_SHARED, k->fd, 0);
    if (m == MAP_FAILED)
        k->zc_fallback = errno ? errno : EIO;
    else
        k->map = m;
    return 0;
}

static void zc_unmap(struct nob_conn *k)
{
    if (k->map)
        munmap(k->map, ZC_RX_MAP);
    k->map = NULL;
}

static void zc_teardown(struct nob_conn *k)
{
    zc_unmap(k);
    buf_teardown(k);
}

static int zc_step(struct nob_conn *k)
{
    if (!k->map) { /* the fallback: receive by copying, counted as copied */
        ssize_t r = recv_into(k, k->buf, k->cap, 0);
        if (r > 0)
            k->ctr[NOB_SERVER_CTR_RX_ZEROCOPY_COPIED_BYTES] += (uint64_t)r;
        return step_of(r);
    }
    int r = zc_receive_once(k, k->map, k->buf, k->cap);
    if (r == 1)
        return 1;
    if (r < 0 && k->ctr[NOB_SERVER_CTR_RX_ZEROCOPY_CALLS] == 0 && k->bytes == 0) {
        k->zc_fallback = -r; /* refused from the start: receive by copying */
        zc_unmap(k);
        return 1;
    }
    return r; /* EOF or an error */
}

/* slow: a receiver that hardly reads (a little, then a sleep), so the sender's send buffer is
 * full most of the time: the planted cause of blocking on a full send buffer */
static int slow_step(struct nob_conn *k)
{
    ssize_t r = recv_into(k, k->buf, NOB_SLOW_READ < k->cap ? NOB_SLOW_READ : k->cap, 0);
    if (r > 0)
        nob_sleep_s(NOB_SLOW_SLEEP_US / 1e6);
    return step_of(r);
}

/* By NOB_RECV_* code. */
static const struct nob_receiver RECEIVER_COPY = {"copy", 0, 0, buf_setup, copy_step, buf_teardown};
static const struct nob_receiver RECEIVER_FIELDS = {"fields", 0, 1, fields_setup, fields_step, fields_teardown,
                                                     NOB_SERVER_GROUP_MESSAGES};
static const struct nob_receiver RECEIVER_TRUNC = {"trunc", 1, 0, buf_setup, trunc_step, buf_teardown};
static const struct nob_receiver RECEIVER_ZEROCOPY = {"zerocopy", 0, 0, zc_setup, zc_step, zc_teardown,
                                                       NOB_SERVER_GROUP_RX_ZEROCOPY};
static const struct nob_receiver RECEIVER_SLOW = {"slow", 0, 0, buf_setup, slow_step, buf_teardown};
static const struct nob_receiver *const RECEIVERS[NOB_RECV_MODES] = {
    [NOB_RECV_COPY] = &RECEIVER_COPY,
    [NOB_RECV_FIELDS] = &RECEIVER_FIELDS,
    [NOB_RECV_TRUNC] = &RECEIVER_TRUNC,
    [NOB_RECV_ZEROCOPY] = &RECEIVER_ZEROCOPY,
    [NOB_RECV_SLOW] = &RECEIVER_SLOW,
};

static void *conn_thread(void *arg)
{
    struct nob_conn *k = arg;
    struct nob_server *s = k->s;
    const struct nob_server_config *cfg = &s->cfg;
    const struct nob_receiver *ops = RECEIVERS[s->mode];
    if (cfg->ncpus > 0 && (k->pin_err = nob_pin_self(cfg->cpus[k->idx % cfg->ncpus]))) {
        close(k->fd); /* not pinned as asked: this connection is refused, the run fails */
        k->fd = -1;
        k->err = k->pin_err;
        atomic_store(&k->done, 1);
        return NULL;
    }
    struct rusage ru0, ru1;
    nob_thread_rusage(&ru0);
    int e = ops->setup(k);
    if (e)
        k->err = e;
    while (!e && !atomic_load(&s->stop_conns)) {
        int r = ops->step(k);
        if (r == 1)
            continue;
        if (r < 0)
            k->err = -r;
        break; /* EOF or an error */
    }
    nob_thread_rusage(&ru1);
    k->cpu = nob_current_cpu();
    k->cpu_user = nob_tv_s(ru1.ru_utime) - nob_tv_s(ru0.ru_utime);
    k->cpu_sys = nob_tv_s(ru1.ru_stime) - nob_tv_s(ru0.ru_stime);
    close(k->fd);
    k->fd = -1;
    ops->teardown(k);
    atomic_store(&k->done, 1);
    return NULL;
}

static int server_run(struct nob_server *s, struct nob_server_stats *st, struct nob_error *err);

int nob_server_run(struct nob_server *s, struct nob_server_stats *st, struct nob_error *err)
{
    memset(st, 0, sizeof(*st));
    if (s->ran)
        return nob_fail(err, EALREADY, "run", "a server runs once");
    s->ran = 1;
    atomic_store(&s->running, 1);
    int rc = server_run(s, st, err);
    atomic_store(&s->running, 0); /* the last touch of s: nob_server_free may go on */
    return rc;
}

static int server_run(struct nob_server *s, struct nob_server_stats *st, struct nob_error *err)
{
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
            rc = nob_fail(err, errno, "poll(listen)", NULL);
            break;
        }
        if (n <= 0)
            continue;
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
                continue;
            rc = nob_fail(err, errno, "accept", NULL);
            break;
        }
        if (s->nconns >= NOB_MAX_CONNS ||
            (cfg->connections > 0 && s->nconns >= cfg->connections)) {
            close(fd); /* more connections than expected: refuse them */
            continue;
        }
        nob_set_io_timeout(fd, SO_RCVTIMEO);
        struct nob_conn *k = calloc(1, sizeof(*k));
        if (!k) {
            close(fd);
            rc = nob_fail(err, ENOMEM, "allocate connection", NULL);
            break;
        }
        k->s = s;
        k->fd = fd;
        socklen_t bl = sizeof(k->rcvbuf); /* inherited from the listening socket, doubled by the kernel */
        if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &k->rcvbuf, &bl))
            k->rcvbuf = 0;
        k->idx = s->nconns;
        k->cpu = -1;
        k->v.msg_size = cfg->msg_size;
        k->v.nfields = (unsigned)cfg->fields;
        k->v.flen = cfg->fields > 0 ? cfg->msg_size / (uint64_t)cfg->fields : 0;
        int e = pthread_create(&k->tid, NULL, conn_thread, k);
        if (e) {
            close(fd);
            free(k);
            rc = nob_fail(err, e, "pthread_create", "connection %d", s->nconns + 1);
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
            rc = nob_fail(err, k->pin_err, where, "connection %d", i + 1);
        }
        st->bytes_received += k->bytes;
        st->per_conn_bytes[i] = k->bytes;
        st->conn_cpu[i] = k->cpu;
        k->ctr[NOB_SERVER_CTR_VERIFY_MESSAGES] = k->v.messages;
        k->ctr[NOB_SERVER_CTR_VERIFY_ERRORS] = k->v.errors;
        k->ctr[NOB_SERVER_CTR_VERIFY_PARTIAL_BYTES] = k->v.off;
        k->ctr[NOB_SERVER_CTR_CALLS_CONN_ERRORS] = k->err != 0;
        for (int c = 0; c < NOB_SERVER_NCTR; c++)
            st->counters[c] += k->ctr[c];
        if (i == 0)
            st->rcvbuf_bytes = k->rcvbuf;
        if (k->zc_fallback && !st->rx_zc_fallback_errno)
            st->rx_zc_fallback_errno = k->zc_fallback;
        st->cpu_user_s += k->cpu_user;
        st->cpu_sys_s += k->cpu_sys;
        if (k->first && (first == 0 || k->first < first))
            first = k->first;
        if (k->last > last)
            last = k->last;
    }
    st->connections = s->nconns;
    st->recv_mode = s->mode;
    st->groups = NOB_SERVER_GROUPS_ALWAYS | RECEIVERS[s->mode]->groups | (cfg->verify ? NOB_SERVER_GROUP_VERIFY : 0);
    st->first_byte_s = first;
    st->last_byte_s = last;
    st->active_s = last > first ? last - first : 0;
    return rc;
}
