/* netobs copy workers, inside: what the driver (netobs_workers.c), the server (nob_server.c),
 * the shared helpers (nob_common.c) and the sender families (send_*.c) share.
 *
 * A sender is a `struct nob_sender` (its ops): the driver's client_thread owns the phases,
 * the window, the latency samples and the stop; a sender only probes, sets up its private
 * state, submits messages (step), reaps completions, drains and tears down. Its state is its
 * family's own (`nob_thread.priv`); its figures are counters by index (NOB_CTR_* in
 * netobs_workers.h). Nothing outside this header and the families knows a strategy by name.
 */
#ifndef NOB_INTERNAL_H
#define NOB_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "netobs_workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#define IO_TIMEOUT_MS 100          /* bound on any blocking socket call */
#define ZC_FINAL_WAIT_S 2.0        /* wait this long for outstanding completions at the end */
#define ZC_ABORT_WAIT_S 0.3        /* ... or this long after a stop request */

enum { PHASE_WARMUP = 0, PHASE_MEASURE = 1, PHASE_END = 2 };

/* ---------------------------------------------------------------- time, errors */

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void nob_sleep_s(double s);
/* Fill `err` (if still empty) and return -e. */
int nob_fail(struct nob_error *err, int e, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
uint64_t nob_page_round(uint64_t n);

/* ---------------------------------------------------------------- threads, sockets */

/* Pin the calling thread to one CPU: 0 or sched_setaffinity's errno. */
int nob_pin_self(int cpu);
/* The CPU the calling thread is on now, -1 if unknown. */
int nob_current_cpu(void);
/* The pinning list of either role: 0..NOB_MAX_THREADS ids, each 0..NOB_MAX_CPUS-1. */
int nob_check_cpus(const int *cpus, int ncpus, struct nob_error *err);
double nob_tv_s(struct timeval tv);
void nob_thread_rusage(struct rusage *ru);
/* SO_SNDTIMEO/SO_RCVTIMEO of IO_TIMEOUT_MS: a stop is seen within a fraction of a second */
void nob_set_io_timeout(int fd, int opt);
/* A numeric address ("": any IPv4) into ss: its length, or 0. */
socklen_t nob_parse_addr(const char *host, int port, struct sockaddr_storage *ss);

/* ---------------------------------------------------------------- messages */

struct msgbuf {
    int n;          /* fields */
    int paged;      /* each field in pages of its own (mmap): splice's, so pages can be dropped */
    uint8_t *field[NOB_MAX_FIELDS];
    uint64_t len[NOB_MAX_FIELDS];
    uint64_t cap[NOB_MAX_FIELDS];  /* bytes mapped (paged) */
};

void nob_field_lens(uint64_t msg_size, int n, uint64_t len[NOB_MAX_FIELDS]);
int nob_msgbuf_alloc(struct msgbuf *m, uint64_t msg_size, int n, int paged, uint64_t seq);
void nob_msgbuf_free(struct msgbuf *m);
void nob_msgbuf_stamp(struct msgbuf *m, uint64_t seq, int64_t corrupt_seq);
/* splice: let go of the fields' pages before a rewrite (in-flight skbs keep the old ones) */
void nob_msgbuf_release_pages(struct msgbuf *m);

/* Word q (8 bytes, little-endian) of field f of message seq. Its first word is seq*8+f,
 * readable in a hex dump; later words differ so a shifted stream does not match. */
static inline uint64_t pat_word(uint64_t seq, unsigned f, uint64_t q)
{
    return ((seq << 3) | f) + q * 0x9E3779B97F4A7C15ull;
}

static inline void put_le64(uint8_t *p, uint64_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    __builtin_memcpy(p, &w, 8);
#else
    for (int b = 0; b < 8; b++)
        p[b] = (uint8_t)(w >> (8 * b));
#endif
}

static inline int msgbuf_iov(const struct msgbuf *m, struct iovec *iov)
{
    for (int f = 0; f < m->n; f++) {
        iov[f].iov_base = m->field[f];
        iov[f].iov_len = m->len[f];
    }
    return m->n;
}

/* Step over `n` bytes of iov[idx..cnt): the index of the first entry not wholly covered,
 * that entry moved past what was covered of it. */
static inline int iov_advance(struct iovec *iov, int idx, int cnt, size_t n)
{
    while (idx < cnt && n >= iov[idx].iov_len) {
        n -= iov[idx].iov_len;
        idx++;
    }
    if (idx < cnt) {
        iov[idx].iov_base = (uint8_t *)iov[idx].iov_base + n;
        iov[idx].iov_len -= n;
    }
    return idx;
}

/* ---------------------------------------------------------------- the client */

struct nob_thread;
struct nob_client;

/* One strategy. Every function returns 0 (step: also 0) or -errno, and on failure sets
 * t->what to the step that failed; -ECANCELED means the run is being stopped. */
struct nob_sender {
    unsigned groups;     /* its NOB_GROUP_* counters beside NOB_GROUPS_ALWAYS */
    int paged;           /* its buffers' fields in pages of their own */
    int extra_msgs;      /* message-sized buffers of its own per thread (for the memory check) */
    int async;           /* messages complete in reap (the driver times submit to completion
                            there); else step sends one whole message and the driver times it */
    /* can this kernel run it (opens and closes what it tries); NULL: always */
    int (*probe)(struct nob_error *err);
    /* buffers per thread; NULL: one, and no pool reported */
    int (*pool)(const struct nob_client_config *cfg);
    /* its private state (t->priv), once the buffers exist; NULL: none */
    int (*setup)(struct nob_thread *t, struct nob_error *err);
    /* socket options before connect; NULL: none */
    int (*sockopt)(struct nob_thread *t, struct nob_error *err);
    /* sync: make buffer m ready for message t->seq (wait for it, restamp it), untimed; NULL: none */
    int (*prepare)(struct nob_thread *t, struct msgbuf *m);
    /* submit at least one message (sync: send all of m; async: what the window allows) */
    int (*step)(struct nob_thread *t, struct msgbuf *m);
    /* completions, waiting up to wait_ms for the first; NULL: none */
    int (*reap)(struct nob_thread *t, int wait_ms);
    /* the end: what the kernel still holds, bounded (aborted: shorter); NULL: nothing */
    int (*drain)(struct nob_thread *t, int aborted);
    /* free the private state (also after a failed setup); NULL: nothing */
    void (*teardown)(struct nob_thread *t);
};

/* The senders by NOB_<STRATEGY> code (netobs_workers.c). */
const struct nob_sender *nob_sender_of(int strategy);

struct nob_thread {
    struct nob_client *c;
    const struct nob_client_config *cfg;
    const struct nob_sender *ops;
    int idx, fd;
    pthread_t tid;
    int started;
    struct msgbuf *pool;
    int npool;
    void *priv;         /* the sender family's own state */
    uint64_t seq;       /* the next message */
    uint64_t inflight;  /* async senders: messages submitted, not yet complete */
    /* counters (owned by the thread until joined) */
    uint64_t bytes_total, msgs_total;
    uint64_t ctr[NOB_NCTR];
    /* published for the coordinator's window snapshots (single writer: this thread) */
    _Atomic uint64_t pub_bytes, pub_msgs;
    /* this thread's share of the window: CPU time and latency samples (message boundaries) */
    int in_window, window_done;
    struct rusage ru0, ru1;
    uint64_t *hist;
    uint64_t lat_n, lat_sum, lat_max, lat_min;
    int cpu_end;        /* the CPU this thread was on when its window ended, -1 = unknown */
    int sndbuf;         /* SO_SNDBUF read back once connected */
    const char *what;   /* the step an op failed in */
    /* failure */
    int err;
    char where[64];
};

struct nob_client {
    struct nob_client_config cfg;
    const struct nob_sender *ops;
    struct nob_thread *t;
    int nthreads;
    atomic_int stop_requested; /* by the user (nob_client_stop) */
    atomic_int abort;          /* everything stops now: user stop, a thread failed, stuck end */
    atomic_int phase;
    atomic_int windows_ended;
    atomic_int failed;
    int ran;
    atomic_int running;        /* inside nob_client_run: nob_client_free waits for it to return */
    /* the measured window, as the coordinator saw it: [t0, t1] and every thread's counters then */
    double t0, t1;
    uint64_t bytes0, bytes1, msgs0, msgs1;
    int snap0, snap1;
};

static inline int nob_aborted(const struct nob_thread *t)
{
    return atomic_load(&t->c->abort);
}

/* What every successful send call adds, published for the coordinator's window edges. */
static inline void count_sent(struct nob_thread *t, ssize_t r)
{
    t->ctr[NOB_CTR_CALLS_SEND_CALLS]++;
    t->bytes_total += (uint64_t)r;
    atomic_store_explicit(&t->pub_bytes, t->bytes_total, memory_order_relaxed);
}

/* After a send that moved nothing (r <= 0): 0 to try again (SO_SNDTIMEO expired or a signal,
 * and no abort), ECANCELED when the run is being aborted, else the errno to report. */
static inline int send_failed(struct nob_thread *t, ssize_t r)
{
    int e = r == 0 ? EAGAIN : errno;
    if (e == EINTR || e == EAGAIN || e == EWOULDBLOCK)
        return nob_aborted(t) ? ECANCELED : 0;
    return e;
}

/* One message of an async sender completed `lat` ns after it was submitted (the driver's
 * message count and latency samples). */
void nob_message_sent(struct nob_thread *t, uint64_t lat);

/* Send-all helpers, shared by the families. Each returns 0, -ECANCELED on stop, or -errno. */
/* `len` bytes by a syscall that takes an offset: send() from a buffer, sendfile() from a file */
typedef ssize_t (*nob_send_fn)(struct nob_thread *t, const void *src, uint64_t off, uint64_t left);
int nob_send_all(struct nob_thread *t, nob_send_fn call, const void *src, uint64_t off, uint64_t len);
/* every byte of iov[0..cnt) with sendmsg(flags); after each call that moved bytes `moved`
 * (NULL: nothing); an errno other than a retry goes to `refused`: 0 to retry, else the errno
 * to fail with (NULL: fail). */
struct nob_sendmsg_hooks {
    void (*moved)(struct nob_thread *t, ssize_t r);
    int (*refused)(struct nob_thread *t, int e);
};
int nob_sendmsg_all(struct nob_thread *t, struct iovec *iov, int cnt, int flags,
                    const struct nob_sendmsg_hooks *hooks);
/* restamp buffer m for message t->seq when verifying */
static inline void nob_restamp(struct nob_thread *t, struct msgbuf *m)
{
    if (t->cfg->verify)
        nob_msgbuf_stamp(m, t->seq, t->cfg->corrupt_seq);
}
/* the auto pool of the zero-copy senders: about ZC_POOL_BYTES of messages, 2..ZC_POOL_MAX */
int nob_zc_pool_auto(const struct nob_client_config *cfg);

#endif
