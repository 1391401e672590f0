/* netobs copy workers: the narrow waist between C and Python.
 *
 * One config struct in, one stats struct out, one error struct for failures.
 * Every function returns 0 or -errno; on failure `err` says which step failed.
 * The text between the CDEF markers is also the cffi cdef (native/build_workers.py
 * strips the preprocessor lines), so it must stay plain C declarations and
 * `#define NAME <integer>` constants.
 */
#ifndef NETOBS_WORKERS_H
#define NETOBS_WORKERS_H

#include <stdint.h>

/* CDEF BEGIN */
#define NOB_TWO_COPY 0
#define NOB_ONE_COPY 1
#define NOB_ZERO_COPY 2
#define NOB_IO_URING 3
#define NOB_IO_URING_ZC 4
#define NOB_SENDFILE 5
#define NOB_SPLICE 6
#define NOB_STRATEGIES 7

/* server receive modes */
#define NOB_RECV_COPY 0      /* recv() into one large buffer (the kernel's receive copy) */
#define NOB_RECV_FIELDS 1    /* ... then each whole message copied out into its fields */
#define NOB_RECV_TRUNC 2     /* recv(MSG_TRUNC): TCP discards the bytes, no receive copy */
#define NOB_RECV_ZEROCOPY 3  /* TCP_ZEROCOPY_RECEIVE: pages mapped, the rest copied */
#define NOB_RECV_SLOW 4      /* a receiver that hardly reads: NOB_SLOW_READ bytes, then NOB_SLOW_SLEEP_US asleep */
#define NOB_RECV_MODES 5
#define NOB_SLOW_READ 65536
#define NOB_SLOW_SLEEP_US 1000

#define NOB_FIELDS 8         /* the study's fields per message (the default) */
#define NOB_MAX_FIELDS 64
#define NOB_MAX_URING_DEPTH 256
#define NOB_MIN_MSG 8
#define NOB_MAX_MSG 67108864
#define NOB_MAX_THREADS 256
#define NOB_MAX_CONNS 1024
/* CPU ids accepted: 0..NOB_MAX_CPUS-1 */
#define NOB_MAX_CPUS 1024
#define NOB_ADDR_LEN 64

/* The client's counters: nob_client_stats.counters[NOB_CTR_<GROUP>_<NAME>], summed over the
 * sending threads, whole run (warm-up included). netobs.native derives the stats from these
 * names: counter <name> (lower case) goes into the point result's object <group> (lower
 * case; CALLS: its top level). A group outside NOB_GROUPS_ALWAYS is reported (not null) only
 * for the senders whose ops name it (stats.groups). Add a counter here, count it in C: done. */
#define NOB_GROUP_CALLS 1
#define NOB_GROUP_ZEROCOPY 2
#define NOB_GROUP_IO_URING 4
#define NOB_GROUP_PAGES 8
#define NOB_GROUPS_ALWAYS 3
#define NOB_CTR_CALLS_SEND_CALLS 0          /* send calls (or send CQEs) that moved bytes */
#define NOB_CTR_CALLS_PARTIAL_SENDS 1       /* calls that moved less than asked */
#define NOB_CTR_ZEROCOPY_COMPLETIONS 2      /* ids covered by completion ranges (io_uring_zc: notification CQEs) */
#define NOB_CTR_ZEROCOPY_COPIED 3           /* ids whose completion said SO_EE_CODE_ZEROCOPY_COPIED (or ZC_COPIED) */
#define NOB_CTR_ZEROCOPY_NOTIFICATIONS 4    /* error-queue messages (notification CQEs) read */
#define NOB_CTR_ZEROCOPY_ENOBUFS 5          /* ENOBUFS answers (drained and retried) */
#define NOB_CTR_ZEROCOPY_OUTSTANDING 6      /* ids still without completion at the end */
#define NOB_CTR_ZEROCOPY_SENDS 7            /* zero-copy calls that moved bytes (= completion ids) */
#define NOB_CTR_ZEROCOPY_POOL 8             /* buffers per thread (a setting, not a sum; 0: no pool) */
#define NOB_CTR_ZEROCOPY_POOL_WAITS 9       /* times a thread found its next buffer still pending */
#define NOB_CTR_ZEROCOPY_EMPTY_READS 10     /* MSG_ERRQUEUE reads that returned nothing (EAGAIN) */
#define NOB_CTR_ZEROCOPY_POLLS 11           /* poll() calls made to wait for a completion */
#define NOB_CTR_IO_URING_DEPTH 12           /* sends in flight per thread (the setting) */
#define NOB_CTR_IO_URING_SUBMITS 13         /* io_uring_submit() calls with new SQEs */
#define NOB_CTR_IO_URING_WAITS 14           /* waits for a CQE */
#define NOB_CTR_PAGES_FILE_WRITES 15        /* sendfile: pwritev() of the fields into the memfd */
#define NOB_CTR_PAGES_PAGE_RELEASES 16      /* sendfile: hole punches, splice: MADV_DONTNEED before a rewrite */
#define NOB_CTR_PAGES_VMSPLICE_CALLS 17     /* splice: vmsplice() calls */
#define NOB_NCTR 18

/* The server's counters: nob_server_stats.counters[NOB_SERVER_CTR_<GROUP>_<NAME>], summed over
 * the connections (whole run). netobs.native derives the server's report from these names as it
 * does the client's: counter <name> (lower case) of CALLS at the report's top level, of a group
 * in NOB_SERVER_GROUPS_NESTED in the report's object <group> (lower case), of any other group at
 * the top level as <group>_<name>. A group outside NOB_SERVER_GROUPS_ALWAYS is reported (not
 * null) only where the run used it (stats.groups: the receive mode's own, VERIFY with verify).
 * Add a counter here, count it in C: done. */
#define NOB_SERVER_GROUP_CALLS 1
#define NOB_SERVER_GROUP_VERIFY 2
#define NOB_SERVER_GROUP_MESSAGES 4
#define NOB_SERVER_GROUP_RX_ZEROCOPY 8
#define NOB_SERVER_GROUPS_ALWAYS 1
#define NOB_SERVER_GROUPS_NESTED 8
#define NOB_SERVER_CTR_CALLS_RECV_CALLS 0          /* receive calls (recv, TCP_ZEROCOPY_RECEIVE) that got bytes */
#define NOB_SERVER_CTR_CALLS_CONN_ERRORS 1         /* connections that ended with an error (reset, ...) */
#define NOB_SERVER_CTR_VERIFY_MESSAGES 2           /* complete messages checked */
#define NOB_SERVER_CTR_VERIFY_ERRORS 3             /* messages whose pattern did not match */
#define NOB_SERVER_CTR_VERIFY_PARTIAL_BYTES 4      /* bytes of a trailing incomplete message (not an error) */
#define NOB_SERVER_CTR_MESSAGES_COPIED 5           /* fields: complete messages copied out into fields */
#define NOB_SERVER_CTR_RX_ZEROCOPY_MAPPED_BYTES 6  /* zerocopy: bytes mapped by TCP_ZEROCOPY_RECEIVE */
#define NOB_SERVER_CTR_RX_ZEROCOPY_COPIED_BYTES 7  /* zerocopy: bytes left to be copied (recv_skip_hint, or the fallback) */
#define NOB_SERVER_CTR_RX_ZEROCOPY_CALLS 8         /* zerocopy: getsockopt(TCP_ZEROCOPY_RECEIVE) calls */
#define NOB_SERVER_NCTR 9

struct nob_error {
    int err;                 /* positive errno, 0 = none */
    char where[64];          /* the step that failed: "connect", "setsockopt(SO_ZEROCOPY)", ... */
    char detail[160];        /* extra context, may be empty */
};

struct nob_client_config {
    char host[64];           /* numeric IPv4 or IPv6 address (Python resolves names) */
    int port;
    int strategy;            /* NOB_<STRATEGY> */
    uint64_t msg_size;
    int fields;              /* separately allocated fields per message, 1..NOB_MAX_FIELDS */
    int threads;
    double duration_s;       /* measured window (ignored in count mode) */
    double warmup_s;         /* before the window (ignored in count mode) */
    uint64_t count;          /* > 0: each thread sends exactly `count` messages, no warm-up */
    int verify;              /* stamp every field of message k with k */
    int64_t corrupt_seq;     /* debug: flip one byte of this message (per thread); -1 = off */
    int nodelay;             /* set TCP_NODELAY */
    int sndbuf;              /* > 0: SO_SNDBUF */
    int zc_pool;             /* zero_copy / io_uring_zc buffer pool size per thread; 0 = auto */
    int uring_depth;         /* io_uring: sends in flight per thread (one linked chain) */
    int unsafe_reuse;        /* debug: rewrite buffers without waiting for the kernel (verify must fail) */
    double connect_timeout_s;
    int ctl_fd;              /* perf --control fifo (write "enable"/"disable"); -1 = none */
    int ack_fd;              /* perf ack fifo (read "ack"); -1 = none */
    int cpus[NOB_MAX_THREADS];
    int ncpus;               /* > 0: sending thread i runs only on CPU cpus[i % ncpus] (the thread
                                calls sched_setaffinity on itself when it starts, before it
                                sends); 0 = not pinned */
};

struct nob_client_stats {
    /* measured window */
    uint64_t bytes_sent;
    uint64_t messages;
    double window_s;
    double lat_mean_us, lat_p50_us, lat_p99_us, lat_p999_us, lat_max_us, lat_min_us;
    uint64_t lat_samples;
    double cpu_user_s, cpu_sys_s;   /* RUSAGE_THREAD deltas, summed over the sending threads */
    /* whole run, warm-up included */
    uint64_t bytes_sent_total;
    uint64_t messages_total;
    uint64_t counters[NOB_NCTR];    /* NOB_CTR_*, summed over the threads (whole run) */
    unsigned groups;                /* the NOB_GROUP_* the strategy reports (NOB_GROUPS_ALWAYS and its own) */
    int threads;
    int interrupted;                /* stopped by nob_client_stop() */
    uint64_t per_thread_bytes[256]; /* total bytes per thread */
    int thread_cpu[NOB_MAX_THREADS]; /* the CPU each thread was on when its window ended; -1 = unknown */
    int sndbuf_bytes;               /* SO_SNDBUF read back once connected (the kernel doubles what is
                                       set; not set: its default), the first connection's */
};

struct nob_server_config {
    char bind[64];           /* numeric address, "" = any IPv4 */
    int port;                /* 0 = ephemeral */
    int connections;         /* end after this many connections have all closed; 0 = until stop/timeout */
    int recv_mode;           /* NOB_RECV_* */
    int fields;              /* fields per message (the verify pattern and NOB_RECV_FIELDS) */
    int verify;              /* check the per-message pattern (needs msg_size) */
    uint64_t msg_size;
    double timeout_s;        /* 0 = none */
    int rcvbuf;              /* > 0: SO_RCVBUF */
    int cpus[NOB_MAX_THREADS];
    int ncpus;               /* > 0: the receiving thread of the i-th accepted connection runs only
                                on cpus[i % ncpus]; 0 = not pinned */
};

struct nob_server_stats {
    uint64_t bytes_received;
    int connections;                /* accepted */
    uint64_t per_conn_bytes[1024];
    int conn_cpu[NOB_MAX_CONNS];            /* the CPU each receiving thread was on when it ended; -1 = unknown */
    double first_byte_s, last_byte_s; /* CLOCK_MONOTONIC seconds */
    double active_s;                /* last_byte_s - first_byte_s */
    double cpu_user_s, cpu_sys_s;   /* RUSAGE_THREAD deltas, summed over the receiving threads */
    uint64_t counters[NOB_SERVER_NCTR]; /* NOB_SERVER_CTR_*, summed over the connections */
    unsigned groups;                /* the NOB_SERVER_GROUP_* this run reports */
    int rx_zc_fallback_errno;       /* > 0: zero-copy receive refused (errno); copied instead */
    int rcvbuf_bytes;               /* SO_RCVBUF of the first accepted connection, read back (the kernel
                                       doubles what is set; not set: its default) */
    int recv_mode;
    int timed_out;
    int interrupted;
    int port;
};

struct nob_client;
struct nob_server;

/* Client: create (validates, connects every thread's socket, allocates buffers),
 * run (blocks until done; call it without the GIL), stop (any thread, any time), free
 * (called while a run goes on in another thread, it stops the run and returns once the run
 * has; ordering a free before a run that has not begun is the caller's job). */
int nob_client_create(const struct nob_client_config *cfg, struct nob_client **out,
                      struct nob_error *err);
int nob_client_run(struct nob_client *c, struct nob_client_stats *st, struct nob_error *err);
void nob_client_stop(struct nob_client *c);
void nob_client_free(struct nob_client *c);

/* Server: open (bind + listen; the port is in nob_server_port), run (accepts and
 * receives until the expected connections closed, stop, or timeout), stop, free (as the
 * client's: a running server is stopped and waited for). */
int nob_server_open(const struct nob_server_config *cfg, struct nob_server **out,
                    struct nob_error *err);
int nob_server_port(struct nob_server *s);
int nob_server_run(struct nob_server *s, struct nob_server_stats *st, struct nob_error *err);
void nob_server_stop(struct nob_server *s);
void nob_server_free(struct nob_server *s);

/* Can this kernel run a strategy (io_uring and its opcodes, SO_ZEROCOPY, memfd, vmsplice)?
 * 0, or -errno with `err` naming what is missing. Opens and closes what it tries. */
int nob_strategy_probe(int strategy, struct nob_error *err);

/* The verify pattern, exposed for tests: byte i of field f of message seq. */
uint8_t nob_pattern_byte(uint64_t seq, unsigned field, uint64_t i);

/* For the bench: the least mean time, in ns, of one send syscall over `trials` rounds of
 * `calls` sendto() calls of `len` bytes on descriptor -1. The kernel answers EBADF at once,
 * so what is timed is the syscall path and whatever traces it (the cost per traced send). */
double nob_send_syscall_ns(unsigned calls, unsigned trials, unsigned len);
/* CDEF END */

#endif
