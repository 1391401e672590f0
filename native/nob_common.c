/* netobs copy workers: what every part shares. Time and errors, the messages (N separately
 * allocated fields, stamped with the verify pattern), and the send-all helpers the sender
 * families use (send every byte, advancing an offset or an iovec, retrying a timeout).
 */
#include "nob_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ZC_POOL_BYTES (8u << 20)   /* auto pool: about this many bytes of messages per thread */
#define ZC_POOL_MAX 1024

void nob_sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int nob_fail(struct nob_error *err, int e, const char *where, const char *fmt, ...)
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

uint64_t nob_page_round(uint64_t n)
{
    uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
    return (n + ps - 1) / ps * ps;
}

/* ---------------------------------------------------------------- threads, sockets */

/* Pin the calling thread to one CPU. 0 or the errno of sched_setaffinity. */
int nob_pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : errno;
}

/* The CPU the calling thread is on now, -1 if unknown. */
int nob_current_cpu(void)
{
    int cpu = sched_getcpu();
    return cpu < 0 ? -1 : cpu;
}

/* The pinning lists of both roles: 0..NOB_MAX_THREADS ids, each 0..NOB_MAX_CPUS-1. */
int nob_check_cpus(const int *cpus, int ncpus, struct nob_error *err)
{
    if (ncpus < 0 || ncpus > NOB_MAX_THREADS)
        return nob_fail(err, EINVAL, "config", "ncpus %d is not 0..%d", ncpus, NOB_MAX_THREADS);
    for (int i = 0; i < ncpus; i++)
        if (cpus[i] < 0 || cpus[i] >= NOB_MAX_CPUS)
            return nob_fail(err, EINVAL, "config", "cpu %d is not 0..%d", cpus[i], NOB_MAX_CPUS - 1);
    return 0;
}

double nob_tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6; }

void nob_thread_rusage(struct rusage *ru)
{
    if (getrusage(RUSAGE_THREAD, ru) != 0)
        memset(ru, 0, sizeof(*ru));
}

void nob_set_io_timeout(int fd, int opt)
{
    struct timeval tv = {0, IO_TIMEOUT_MS * 1000};
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* Parse a numeric address; "" means any IPv4 address. Returns the sockaddr length or 0. */
socklen_t nob_parse_addr(const char *host, int port, struct sockaddr_storage *ss)
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

static void stamp_field(uint8_t *p, uint64_t len, uint64_t seq, unsigned f)
{
    uint64_t i = 0, q = 0;
    for (; i + 8 <= len; i += 8, q++)
        put_le64(p + i, pat_word(seq, f, q));
    for (; i < len; i++)
        p[i] = nob_pattern_byte(seq, f, i);
}

/* ---------------------------------------------------------------- messages */

void nob_field_lens(uint64_t msg_size, int n, uint64_t len[NOB_MAX_FIELDS])
{
    for (int f = 0; f < n; f++)
        len[f] = msg_size / (uint64_t)n;
    len[n - 1] += msg_size % (uint64_t)n;
}

int nob_msgbuf_alloc(struct msgbuf *m, uint64_t msg_size, int n, int paged, uint64_t seq)
{
    m->n = n;
    m->paged = paged;
    nob_field_lens(msg_size, n, m->len);
    for (int f = 0; f < n; f++) {
        if (paged) {
            m->cap[f] = nob_page_round(m->len[f]);
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

void nob_msgbuf_free(struct msgbuf *m)
{
    for (int f = 0; f < m->n; f++) {
        if (m->paged && m->field[f])
            munmap(m->field[f], m->cap[f]);
        else
            free(m->field[f]);
        m->field[f] = NULL;
    }
}

void nob_msgbuf_release_pages(struct msgbuf *m)
{
    for (int f = 0; f < m->n; f++)
        madvise(m->field[f], m->cap[f], MADV_DONTNEED);
}

void nob_msgbuf_stamp(struct msgbuf *m, uint64_t seq, int64_t corrupt_seq)
{
    for (int f = 0; f < m->n; f++)
        stamp_field(m->field[f], m->len[f], seq, (unsigned)f);
    if (corrupt_seq >= 0 && (uint64_t)corrupt_seq == seq)
        m->field[m->n - 1][m->len[m->n - 1] - 1] ^= 0x5a;
}

int nob_zc_pool_auto(const struct nob_client_config *cfg)
{
    if (cfg->zc_pool)
        return cfg->zc_pool;
    uint64_t n = ZC_POOL_BYTES / cfg->msg_size;
    return n < 2 ? 2 : (n > ZC_POOL_MAX ? ZC_POOL_MAX : (int)n);
}

/* ---------------------------------------------------------------- send-all helpers */

int nob_send_all(struct nob_thread *t, nob_send_fn call, const void *src, uint64_t off, uint64_t len)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t r = call(t, src, off + done, len - done);
        if (r > 0) {
            count_sent(t, r);
            done += (uint64_t)r;
            if (done < len)
                t->ctr[NOB_CTR_CALLS_PARTIAL_SENDS]++;
            continue;
        }
        int e = send_failed(t, r);
        if (e == 0)
            continue;
        return -e;
    }
    return 0;
}

int nob_sendmsg_all(struct nob_thread *t, struct iovec *iov, int cnt, int flags,
                    const struct nob_sendmsg_hooks *hooks)
{
    int idx = 0;
    while (idx < cnt) {
        struct msghdr mh = {0};
        mh.msg_iov = iov + idx;
        mh.msg_iovlen = (size_t)(cnt - idx);
        ssize_t r = sendmsg(t->fd, &mh, MSG_NOSIGNAL | flags);
        if (r > 0) {
            count_sent(t, r);
            if (hooks && hooks->moved)
                hooks->moved(t, r);
            idx = iov_advance(iov, idx, cnt, (size_t)r);
            if (idx < cnt)
                t->ctr[NOB_CTR_CALLS_PARTIAL_SENDS]++;
            continue;
        }
        int e = send_failed(t, r);
        if (e == 0)
            continue;
        if (hooks && hooks->refused && e != ECANCELED) {
            int again = hooks->refused(t, e);
            if (again == 0)
                continue;
            return -again;
        }
        return -e;
    }
    return 0;
}
