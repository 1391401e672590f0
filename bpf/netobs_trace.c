/* netobs kernel tracing: where a point's bytes are copied, per process.
 *
 * Loaded by netobs/tracer.py with BCC. Which probe produces each figure is chosen by feature
 * detection in Python and passed here as cflags; every section below is compiled only when
 * its NETOBS_* macro is defined:
 *
 *   send path (tcp_sendmsg calls, bytes)     NETOBS_SEND_FEXIT | NETOBS_SEND_KPROBE |
 *                                            NETOBS_SEND_RAW (raw sock_send_length) |
 *                                            NETOBS_SEND_TP (sock:sock_send_length) |
 *                                            NETOBS_SEND_SYSCALL (sendto/sendmsg exits)
 *   MSG_ZEROCOPY sends (calls, bytes)        NETOBS_ZC_SYSCALL (sendto/sendmsg flags; the kernel
 *                                            passes flags 0 to sock_send_length, so it cannot serve;
 *                                            + NETOBS_ZC_GATE, raw tier: flags are read only for
 *                                            a role that may have a SO_ZEROCOPY socket, for
 *                                            sends and for error-queue reads alike)
 *   receive copy (skb_copy_datagram_iter)    NETOBS_RX_FENTRY + NETOBS_RX_FUNC | NETOBS_RX_KPROBE |
 *                                            NETOBS_RX_RAW | NETOBS_RX_TP (skb_copy_datagram_iovec)
 *   error-queue reads                        NETOBS_ERRQ_RAW | NETOBS_ERRQ_TP (sock_recv_length) |
 *                                            NETOBS_ERRQ_SYSCALL (recvfrom/recvmsg flags)
 *   zero-copy completion callbacks           NETOBS_ZCCB_FENTRY + NETOBS_ZCCB_FUNC | NETOBS_ZCCB_KPROBE
 *   deferred copies (skb_copy_ubufs)         NETOBS_ZCDEF_FENTRY + NETOBS_ZCDEF_FUNC | NETOBS_ZCDEF_KPROBE
 *   send/recv syscall calls and time         NETOBS_SYS (+ NETOBS_SYS_SAMPLE=N: every call counted,
 *                                            1 in N per thread timed; default 1, all timed)
 *   off-CPU time                             NETOBS_OFFCPU_RAW | NETOBS_OFFCPU (sched_switch)
 *   socket-memory pressure                   NETOBS_MEM_TP (sock:sock_exceed_buf_limit)
 *   children of tracked processes            NETOBS_INHERIT (sched:sched_process_fork)
 *   io_uring sends (no send syscall)         NETOBS_URING_TP (io_uring:io_uring_complete): a send
 *                                            CQE's bytes go to the send figures where those come
 *                                            from the syscalls, and a SENDMSG_ZC one (IORING_CQE_F_MORE:
 *                                            a notification follows) to the zero-copy sends
 *   sendfile/splice                          the send syscall programs take them too (NETOBS_NR_SENDFILE,
 *                                            NETOBS_NR_SPLICE, or their syscalls:* tracepoints): sends,
 *                                            and sends by page reference (the zero-copy sends' figures)
 *
 * The syscall-based figures come from one source, chosen for the whole program:
 * NETOBS_RAWSYS (raw tracepoints raw_syscalls:sys_enter/sys_exit, filtered on the syscall
 * numbers NETOBS_NR_* given by tracer.py for this architecture) or, without it, the
 * syscalls:sys_{enter,exit}_* tracepoints.
 *
 * Raw tracepoints get the tracepoint's TP_PROTO arguments as ctx->args[] and cost far less
 * than the regular ones (no perf trace record is built before the program runs).
 *
 * Kernel memory read: the kernel headers BCC compiles against may not match the running
 * kernel, so no struct is read through them. Only tracepoint arguments, scalar raw-tracepoint
 * arguments and scalar function arguments/return values are used, with two exceptions, both
 * at offsets netobs/tracer.py passes in (never from the headers):
 *   - NETOBS_SK_PROTOCOL_OFF: struct sock's sk_protocol, its offset from the running kernel's
 *     own BTF (/sys/kernel/btf/vmlinux), so that the raw sock_send_length counts TCP only,
 *     as the regular tracepoint's `protocol` does (one 2-byte read per send of a tracked process);
 *   - NETOBS_REGS_ARG2_OFF / _ARG3_OFF / _ARG4_OFF: syscall arguments in the user registers
 *     raw_syscalls:sys_enter passes (struct pt_regs, an architecture ABI: on x86-64 the saved
 *     rsi, rdx and r10): a send/recv syscall's flags, read only for a tracked thread, when a
 *     figure needs them (MSG_ZEROCOPY sends, MSG_ERRQUEUE reads) and its role's zero-copy gate
 *     is open; setsockopt's level and optname, read for a tracked process until its role's
 *     gate opens.
 *
 * Hot path: every program first reads the point's generation (0 between points) and the
 * slot of the current tgid in netobs_procs (or of the current tid in netobs_thr), and
 * returns at once for any other process. All are array lookups, which the verifier inlines,
 * and no map is updated through a helper per event: entries are rewritten in place. The
 * counters and histograms are one per-CPU value (one lookup per event).
 * Program names start with "netobs_" so that `bpftool prog show` identifies them (the
 * fentry/fexit ones are named by BCC after the kernel function).
 */
#include <uapi/linux/ptrace.h>
#include "netobs_trace.h"

/* [0]: the current point's generation, set by tracer.py; 0: no point, nothing is counted.
 * [NETOBS_CFG_ZC + role]: the role's zero-copy gate (NETOBS_ZC_GATE): 1 once one of its
 * processes may have a SO_ZEROCOPY socket; only then are its send/recv flags read. Set by
 * tracer.py at registration (a process with such a socket), and here by setsockopt(SO_ZEROCOPY).
 * Per role, not per process: a forked process may share its parent's sockets. */
BPF_ARRAY(netobs_cfg, u32, NETOBS_CFG_ZC + NETOBS_NROLES);
/* The current point's processes and their descendants, by tgid slot. */
BPF_ARRAY(netobs_procs, struct netobs_proc, NETOBS_PID_SLOTS);
/* Counters, histograms and per-CPU state: one value per CPU. */
BPF_PERCPU_ARRAY(netobs_pc, struct netobs_percpu, 1);

#if defined(NETOBS_SEND_SYSCALL) || defined(NETOBS_ZC_SYSCALL) || defined(NETOBS_ERRQ_SYSCALL) || \
    defined(NETOBS_SYS) || defined(NETOBS_OFFCPU) || defined(NETOBS_OFFCPU_RAW)
#define NETOBS_SYSCALLS 1
/* The point's threads that make send/recv syscalls, by tid slot (their off-CPU time counts;
 * a perf wrapper or a main thread waiting for its workers does not). */
BPF_ARRAY(netobs_thr, struct netobs_thread, NETOBS_PID_SLOTS);
#endif

_Static_assert((NETOBS_PID_SLOTS & (NETOBS_PID_SLOTS - 1)) == 0, "pid slots: a power of two");
_Static_assert((NETOBS_NROLES & (NETOBS_NROLES - 1)) == 0, "roles: a power of two (masked indices)");

static __always_inline struct netobs_percpu *netobs_pcpu(void)
{
    u32 zero = 0;
    return netobs_pc.lookup(&zero);
}

/* Indices are masked (the verifier then sees them in bounds whatever the compiler does with
 * a comparison); both sizes are powers of two. */
_Static_assert(NETOBS_LOST_SLOT == NETOBS_NROLES * NETOBS_NFIG && (NETOBS_LOST_SLOT & (NETOBS_LOST_SLOT - 1)) == 0,
               "counter slots: a power of two");
_Static_assert(NETOBS_NHIST == NETOBS_NROLES * 2 * NETOBS_HIST_SLOTS && (NETOBS_NHIST & (NETOBS_NHIST - 1)) == 0,
               "histogram slots: a power of two");

static __always_inline void netobs_add(struct netobs_percpu *pc, u32 role, u32 fig, u64 v)
{
    if (role >= NETOBS_NROLES || fig >= NETOBS_NFIG)
        return;
    pc->counts[(role * NETOBS_NFIG + fig) & (NETOBS_LOST_SLOT - 1)] += v;
}

/* Add to the current CPU's counter (for programs that add once per event). */
static __always_inline void netobs_add1(u32 role, u32 fig, u64 v)
{
    struct netobs_percpu *pc = netobs_pcpu();
    if (pc)
        netobs_add(pc, role, fig, v);
}

static __always_inline void netobs_lost(void)
{
    struct netobs_percpu *pc = netobs_pcpu();
    if (pc)
        pc->counts[NETOBS_LOST_SLOT] += 1;
}

/* The current point's generation, 0 when there is none. */
static __always_inline u32 netobs_gen(void)
{
    u32 zero = 0;
    u32 *g = netobs_cfg.lookup(&zero);
    return g ? *g : 0;
}

/* Whether role `role`'s zero-copy gate is open (see netobs_cfg). */
static __always_inline int netobs_zc_open(u32 role)
{
    u32 idx = NETOBS_CFG_ZC + (role & (NETOBS_NROLES - 1));
    u32 *gate = netobs_cfg.lookup(&idx);
    return gate && *gate;
}

static __always_inline struct netobs_proc *netobs_proc_slot(u32 tgid)
{
    u32 idx = tgid & (NETOBS_PID_SLOTS - 1);
    return netobs_procs.lookup(&idx);
}

/* The entry of process `tgid`, or NULL when it is not one of the point's. */
static __always_inline struct netobs_proc *netobs_proc_of(u32 tgid, u32 gen)
{
    if (!gen)
        return NULL;
    struct netobs_proc *p = netobs_proc_slot(tgid);
    if (!p || p->tgid != tgid || p->gen != gen)
        return NULL;
    return p;
}

/* The role of process `tgid`, or NULL when it is not one of the point's. */
static __always_inline u32 *netobs_role_of(u32 tgid, u32 gen)
{
    struct netobs_proc *p = netobs_proc_of(tgid, gen);
    return p ? &p->role : NULL;
}

/* The role of the current process, or NULL when it is not one of the point's. */
static __always_inline u32 *netobs_role(void)
{
    return netobs_role_of(bpf_get_current_pid_tgid() >> 32, netobs_gen());
}

#ifdef NETOBS_SYSCALLS
/* The entry of tracked thread `tid`, or NULL. */
static __always_inline struct netobs_thread *netobs_thread_of(u32 tid, u32 gen)
{
    if (!gen)
        return NULL;
    u32 idx = tid & (NETOBS_PID_SLOTS - 1);
    struct netobs_thread *t = netobs_thr.lookup(&idx);
    if (!t || t->tid != tid || t->gen != gen)
        return NULL;
    return t;
}
#endif

/* ---- children inherit their parent's role ---------------------------------------------- */
#ifdef NETOBS_INHERIT
/* Regular tracepoint: the raw one gives task_struct pointers only (forks are rare). */
int netobs_fork(struct tracepoint__sched__sched_process_fork *args)
{
    u32 gen = netobs_gen();
    u32 *role = netobs_role_of(bpf_get_current_pid_tgid() >> 32, gen);
    if (!role)
        return 0;
    u32 r = *role;
    u32 child = args->child_pid;
    struct netobs_proc *p = netobs_proc_slot(child);
    if (!p)
        return 0;
    if (p->gen == gen && p->tgid != child) {
        netobs_lost();  /* another of the point's processes holds the slot */
        return 0;
    }
    p->tgid = child;
    p->role = r;
    p->gen = gen;
    return 0;
}
#endif

/* ---- send path: tcp_sendmsg ------------------------------------------------------------- */
static __always_inline void netobs_send_done(struct netobs_percpu *pc, u32 role, long ret)
{
    netobs_add(pc, role, NETOBS_FIG_SENDMSG_CALLS, 1);
    if (ret > 0)
        netobs_add(pc, role, NETOBS_FIG_SENDMSG_BYTES, ret);
}

static __always_inline void netobs_send1(u32 role, long ret)
{
    struct netobs_percpu *pc = netobs_pcpu();
    if (pc)
        netobs_send_done(pc, role, ret);
}

#ifdef NETOBS_SEND_FEXIT
KRETFUNC_PROBE(tcp_sendmsg, void *sk, void *msg, size_t size, int ret)
{
    u32 *role = netobs_role();
    if (role)
        netobs_send1(*role, ret);
    return 0;
}
#endif

#ifdef NETOBS_SEND_KPROBE
int netobs_send_kr(struct pt_regs *ctx)
{
    u32 *role = netobs_role();
    if (role)
        netobs_send1(*role, (int)PT_REGS_RC(ctx));
    return 0;
}
#endif

#ifdef NETOBS_SEND_RAW
/* sock_send_length(struct sock *sk, int ret, int flags): after every socket sendmsg, with
 * its return value; TCP's is tcp_sendmsg's. sk_protocol is read at its BTF offset. */
int netobs_send_raw(struct bpf_raw_tracepoint_args *ctx)
{
    u32 *role = netobs_role();
    if (!role)
        return 0;
    u16 proto = 0;
    bpf_probe_read_kernel(&proto, sizeof(proto), (void *)ctx->args[0] + NETOBS_SK_PROTOCOL_OFF);
    if (proto == NETOBS_IPPROTO_TCP)
        netobs_send1(*role, (int)ctx->args[1]);
    return 0;
}
#endif

#ifdef NETOBS_SEND_TP
/* Fires after every socket sendmsg with its return value; TCP's is tcp_sendmsg's. */
int netobs_send_tp(struct tracepoint__sock__sock_send_length *args)
{
    if (args->protocol != NETOBS_IPPROTO_TCP)
        return 0;
    u32 *role = netobs_role();
    if (role)
        netobs_send1(*role, args->ret);
    return 0;
}
#endif

/* ---- receive copy: skb_copy_datagram_iter ---------------------------------------------- */
static __always_inline void netobs_rx_copy(int len)
{
    u32 *role = netobs_role();
    if (!role)
        return;
    struct netobs_percpu *pc = netobs_pcpu();
    if (!pc)
        return;
    netobs_add(pc, *role, NETOBS_FIG_RX_COPY_CALLS, 1);
    if (len > 0)
        netobs_add(pc, *role, NETOBS_FIG_RX_COPY_BYTES, len);
}

#ifdef NETOBS_RX_FENTRY
#define NETOBS_KFUNC(fn, ...) KFUNC_PROBE(fn, ##__VA_ARGS__)
NETOBS_KFUNC(NETOBS_RX_FUNC, void *skb, int offset, void *to, int len)
{
    netobs_rx_copy(len);
    return 0;
}
#endif

#ifdef NETOBS_RX_KPROBE
/* skb_copy_datagram_iter(skb, offset, to, len), formerly skb_copy_datagram_iovec: same len. */
int netobs_rx_kp(struct pt_regs *ctx)
{
    netobs_rx_copy((int)PT_REGS_PARM4(ctx));
    return 0;
}
#endif

#ifdef NETOBS_RX_RAW
/* skb_copy_datagram_iovec(const struct sk_buff *skb, int len) */
int netobs_rx_raw(struct bpf_raw_tracepoint_args *ctx)
{
    netobs_rx_copy((int)ctx->args[1]);
    return 0;
}
#endif

#ifdef NETOBS_RX_TP
int netobs_rx_tp(struct tracepoint__skb__skb_copy_datagram_iovec *args)
{
    netobs_rx_copy(args->len);
    return 0;
}
#endif

/* ---- zero-copy completions: error-queue reads, callbacks, deferred copies ---------------- */
static __always_inline void netobs_errq(int ret, int flags)
{
    if (!(flags & NETOBS_MSG_ERRQUEUE) || ret < 0)
        return;
    u32 *role = netobs_role();
    if (role)
        netobs_add1(*role, NETOBS_FIG_ERRQUEUE_READS, 1);
}

#ifdef NETOBS_ERRQ_RAW
/* sock_recv_length(struct sock *sk, int ret, int flags) */
int netobs_errq_raw(struct bpf_raw_tracepoint_args *ctx)
{
    netobs_errq((int)ctx->args[1], (int)ctx->args[2]);
    return 0;
}
#endif

#ifdef NETOBS_ERRQ_TP
int netobs_errq_tp(struct tracepoint__sock__sock_recv_length *args)
{
    netobs_errq(args->ret, args->flags);
    return 0;
}
#endif

#if defined(NETOBS_ZCCB_FENTRY) || defined(NETOBS_ZCDEF_FENTRY) || \
    defined(NETOBS_ZCCB_KPROBE) || defined(NETOBS_ZCDEF_KPROBE)
/* One event of `fig` for the current process, if it is tracked (the zero-copy kernel paths). */
static __always_inline void netobs_count_one(u32 fig)
{
    u32 *role = netobs_role();
    if (role)
        netobs_add1(*role, fig, 1);
}
#endif

#if defined(NETOBS_ZCCB_FENTRY) || defined(NETOBS_ZCDEF_FENTRY)
#ifndef NETOBS_KFUNC
#define NETOBS_KFUNC(fn, ...) KFUNC_PROBE(fn, ##__VA_ARGS__)
#endif
#endif

#ifdef NETOBS_ZCCB_FENTRY
NETOBS_KFUNC(NETOBS_ZCCB_FUNC)
{
    netobs_count_one(NETOBS_FIG_ZC_CALLBACKS);
    return 0;
}
#endif

#ifdef NETOBS_ZCCB_KPROBE
int netobs_zccb_kp(struct pt_regs *ctx)
{
    netobs_count_one(NETOBS_FIG_ZC_CALLBACKS);
    return 0;
}
#endif

#ifdef NETOBS_ZCDEF_FENTRY
NETOBS_KFUNC(NETOBS_ZCDEF_FUNC)
{
    netobs_count_one(NETOBS_FIG_ZC_DEFERRED_COPIES);
    return 0;
}
#endif

#ifdef NETOBS_ZCDEF_KPROBE
int netobs_zcdef_kp(struct pt_regs *ctx)
{
    netobs_count_one(NETOBS_FIG_ZC_DEFERRED_COPIES);
    return 0;
}
#endif

/* ---- send/recv syscalls: time, and the flags they carry --------------------------------- */
#ifdef NETOBS_SYSCALLS
#ifndef NETOBS_SYS_SAMPLE
#define NETOBS_SYS_SAMPLE 1
#endif
_Static_assert(NETOBS_SYS_SAMPLE >= 1, "NETOBS_SYS_SAMPLE: time 1 in N calls, N >= 1");

/* Per-thread entries stay in netobs_thr between syscalls and are rewritten in place;
 * `active` says what the syscall in flight leaves for sys_exit. They are freed when the
 * thread exits (sched_switch) and by every new point (a new generation).
 *
 * Cost: every send/recv call of a tracked thread is counted here, exactly; only 1 in
 * NETOBS_SYS_SAMPLE (per thread and kind, a countdown: deterministic, every thread sampled
 * evenly) reads the clock, here and in sys_exit (bpf_ktime_get_ns is ~60 ns in a VM). An
 * untimed call with no exit figure to serve leaves sys_exit nothing to do.
 * The thread's own entry is looked up first: its process's role is in it, so the process
 * slot is read only for a thread's first call.
 * `regs`: where to read the flags from (raw sys_enter), or NULL when `flags` is given
 * (`read`: whether any figure needs them). */
static __always_inline int netobs_sys_enter(u32 kind, u32 flags, const void *regs, u32 off, int read)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    u32 gen = netobs_gen();
    if (!gen)
        return 0;
    u32 idx = tid & (NETOBS_PID_SLOTS - 1);
    struct netobs_thread *s = netobs_thr.lookup(&idx);
    if (!s)
        return 0;
    if (s->tid != tid || s->gen != gen) {
        u32 *role = netobs_role_of(id >> 32, gen);
        if (!role)
            return 0;
        if (s->gen == gen) {
            netobs_lost();  /* another of the point's threads holds the slot */
            return 0;
        }
        /* first socket syscall of this thread: from now on it is tracked (off-CPU time too) */
        s->off_ts = 0;
        s->tid = tid;
        s->role = *role;
        s->skip[0] = 0;
        s->skip[1] = 0;
        s->active = 0;
        s->gen = gen;
    }
    u32 act = 0;
#ifdef NETOBS_SYS
    struct netobs_percpu *pc = netobs_pcpu();
    if (!pc)
        return 0;
    netobs_add(pc, s->role, kind == NETOBS_KIND_SEND ? NETOBS_FIG_SEND_SYSCALLS : NETOBS_FIG_RECV_SYSCALLS, 1);
    u32 k = kind & 1;
    u32 left = s->skip[k];
    if (left == 0) {
        s->skip[k] = NETOBS_SYS_SAMPLE - 1;
        act = NETOBS_ACT_TIMED;
    } else {
        s->skip[k] = left - 1;
    }
#endif
#ifdef NETOBS_ZC_SYSCALL
    if (kind == NETOBS_KIND_SEND && (flags & NETOBS_FLAG_PAGES))
        act |= NETOBS_ACT_EXIT;   /* sendfile/splice: pages sent by reference */
#endif
#ifdef NETOBS_ZC_GATE
    /* A send can skip the copy, and a completion can be queued, only on a SO_ZEROCOPY
     * socket: without one in the process, no flags are read (a register read costs ~40 ns
     * per call in a VM). */
    if (read && regs && !netobs_zc_open(s->role))
        read = 0;
#endif
    if (read) {
        if (regs)
            bpf_probe_read_kernel(&flags, sizeof(flags), regs + off);
#ifdef NETOBS_ZC_SYSCALL
        if (kind == NETOBS_KIND_SEND && (flags & NETOBS_MSG_ZEROCOPY))
            act |= NETOBS_ACT_EXIT;
#endif
#ifdef NETOBS_ERRQ_SYSCALL
        if (kind == NETOBS_KIND_RECV && (flags & NETOBS_MSG_ERRQUEUE))
            act |= NETOBS_ACT_EXIT;
#endif
    }
#ifdef NETOBS_SEND_SYSCALL
    if (kind == NETOBS_KIND_SEND && !(flags & NETOBS_FLAG_URING))
        act |= NETOBS_ACT_EXIT;   /* every send's return value */
#endif
    s->active = act;
    if (!act)
        return 0;
    s->kind = kind;
    s->flags = flags;
    if (act & NETOBS_ACT_TIMED)
        s->sys_ts = bpf_ktime_get_ns();
    return 0;
}

#ifdef NETOBS_ZC_GATE
/* setsockopt(fd, level, optname, ...) of a tracked process, from raw sys_enter's saved user
 * registers: SO_ZEROCOPY (on or off, either way) opens its role's zero-copy gate. */
static __always_inline int netobs_setsockopt(const void *regs)
{
    u32 *role = netobs_role();
    if (!role || netobs_zc_open(*role))
        return 0;
    int level = 0, optname = 0;
    bpf_probe_read_kernel(&level, sizeof(level), regs + NETOBS_REGS_ARG2_OFF);
    bpf_probe_read_kernel(&optname, sizeof(optname), regs + NETOBS_REGS_ARG3_OFF);
    if (level == NETOBS_SOL_SOCKET && optname == NETOBS_SO_ZEROCOPY) {
        u32 idx = NETOBS_CFG_ZC + (*role & (NETOBS_NROLES - 1));
        u32 *gate = netobs_cfg.lookup(&idx);
        if (gate)
            *gate = 1;
    }
    return 0;
}
#endif

static __always_inline int netobs_sys_exit(long ret)
{
    struct netobs_thread *s = netobs_thread_of((u32)bpf_get_current_pid_tgid(), netobs_gen());
    if (!s)
        return 0;
    u32 act = s->active;
    if (!act)
        return 0;
#ifdef NETOBS_SYS
    u64 delta = 0;
    if (act & NETOBS_ACT_TIMED)
        delta = bpf_ktime_get_ns() - s->sys_ts;
#endif
    s->active = 0;
    struct netobs_percpu *pc = netobs_pcpu();
    if (!pc)
        return 0;
    u32 role = s->role;
    u32 kind = s->kind;
    u32 flags = s->flags;
#ifdef NETOBS_SYS
    if (act & NETOBS_ACT_TIMED) {
        netobs_add(pc, role, kind == NETOBS_KIND_SEND ? NETOBS_FIG_SEND_SYSCALL_NS : NETOBS_FIG_RECV_SYSCALL_NS, delta);
        u32 slot = bpf_log2l(delta);
        if (slot >= NETOBS_HIST_SLOTS)
            slot = NETOBS_HIST_SLOTS - 1;
        if (role < NETOBS_NROLES && kind < 2) {
            pc->hist[((role * 2 + kind) * NETOBS_HIST_SLOTS + slot) & (NETOBS_NHIST - 1)] += 1;
            pc->sampled[(role * 2 + kind) & (NETOBS_NSAMPLED - 1)] += 1;
        }
    }
#endif
    if (kind == NETOBS_KIND_SEND && (flags & NETOBS_FLAG_URING)) {
        /* io_uring_enter: counted and timed above; its sends come from their CQEs */
    } else if (kind == NETOBS_KIND_SEND) {
#ifdef NETOBS_SEND_SYSCALL
        netobs_send_done(pc, role, ret);
#endif
#ifdef NETOBS_ZC_SYSCALL
        if ((flags & (NETOBS_MSG_ZEROCOPY | NETOBS_FLAG_PAGES)) && ret > 0) {
            netobs_add(pc, role, NETOBS_FIG_ZC_SENDS, 1);
            netobs_add(pc, role, NETOBS_FIG_ZC_SEND_BYTES, ret);
        }
#endif
    } else {
#ifdef NETOBS_ERRQ_SYSCALL
        if ((flags & NETOBS_MSG_ERRQUEUE) && ret >= 0)
            netobs_add(pc, role, NETOBS_FIG_ERRQUEUE_READS, 1);
#endif
    }
    return 0;
}

#ifdef NETOBS_RAWSYS
/* Whether the flags argument is read, per kind: only when a figure needs it. */
#ifdef NETOBS_ZC_SYSCALL
#define NETOBS_SEND_READ 1
#else
#define NETOBS_SEND_READ 0
#endif
#ifdef NETOBS_ERRQ_SYSCALL
#define NETOBS_RECV_READ 1
#else
#define NETOBS_RECV_READ 0
#endif
/* raw_syscalls:sys_enter(struct pt_regs *regs, long id): every syscall of every process runs
 * this; all but the four socket syscalls leave at the first comparisons. */
int netobs_rsys_in(struct bpf_raw_tracepoint_args *ctx)
{
    long nr = ctx->args[1];
    const void *regs = (const void *)ctx->args[0];
    if (nr == NETOBS_NR_SENDMSG)
        return netobs_sys_enter(NETOBS_KIND_SEND, 0, regs, NETOBS_REGS_ARG3_OFF, NETOBS_SEND_READ);
    if (nr == NETOBS_NR_SENDTO)
        return netobs_sys_enter(NETOBS_KIND_SEND, 0, regs, NETOBS_REGS_ARG4_OFF, NETOBS_SEND_READ);
    if (nr == NETOBS_NR_RECVMSG)
        return netobs_sys_enter(NETOBS_KIND_RECV, 0, regs, NETOBS_REGS_ARG3_OFF, NETOBS_RECV_READ);
    if (nr == NETOBS_NR_RECVFROM)
        return netobs_sys_enter(NETOBS_KIND_RECV, 0, regs, NETOBS_REGS_ARG4_OFF, NETOBS_RECV_READ);
    if (nr == NETOBS_NR_SENDFILE || nr == NETOBS_NR_SPLICE)
        return netobs_sys_enter(NETOBS_KIND_SEND, NETOBS_FLAG_PAGES, NULL, 0, 0);
    if (nr == NETOBS_NR_IO_URING_ENTER)
        return netobs_sys_enter(NETOBS_KIND_SEND, NETOBS_FLAG_URING, NULL, 0, 0);
#ifdef NETOBS_ZC_GATE
    if (nr == NETOBS_NR_SETSOCKOPT)
        return netobs_setsockopt(regs);
#endif
    return 0;
}
/* raw_syscalls:sys_exit(struct pt_regs *regs, long ret): only threads with a send/recv
 * syscall in flight that left it work count (their entry in netobs_thr says which). */
int netobs_rsys_out(struct bpf_raw_tracepoint_args *ctx)
{
    return netobs_sys_exit((long)ctx->args[1]);
}
#else
int netobs_sendto_in(struct tracepoint__syscalls__sys_enter_sendto *args)
{
    return netobs_sys_enter(NETOBS_KIND_SEND, args->flags, NULL, 0, 1);
}
int netobs_sendmsg_in(struct tracepoint__syscalls__sys_enter_sendmsg *args)
{
    return netobs_sys_enter(NETOBS_KIND_SEND, args->flags, NULL, 0, 1);
}
int netobs_sendfile_in(struct tracepoint__syscalls__sys_enter_sendfile64 *args)
{
    return netobs_sys_enter(NETOBS_KIND_SEND, NETOBS_FLAG_PAGES, NULL, 0, 0);
}
int netobs_splice_in(struct tracepoint__syscalls__sys_enter_splice *args)
{
    return netobs_sys_enter(NETOBS_KIND_SEND, NETOBS_FLAG_PAGES, NULL, 0, 0);
}
int netobs_recvfrom_in(struct tracepoint__syscalls__sys_enter_recvfrom *args)
{
    return netobs_sys_enter(NETOBS_KIND_RECV, args->flags, NULL, 0, 1);
}
int netobs_recvmsg_in(struct tracepoint__syscalls__sys_enter_recvmsg *args)
{
    return netobs_sys_enter(NETOBS_KIND_RECV, args->flags, NULL, 0, 1);
}
/* One exit program serves all four syscalls: sys_exit_* share the (nr, ret) layout. */
int netobs_sys_out(struct tracepoint__syscalls__sys_exit_sendto *args)
{
    return netobs_sys_exit(args->ret);
}
#endif /* NETOBS_RAWSYS */
#endif /* NETOBS_SYSCALLS */

/* ---- io_uring sends ---------------------------------------------------------------------- */
#ifdef NETOBS_URING_TP
/* Every CQE posted (io_uring_complete), in the context of the ring's task or its io-wq
 * workers (threads of its process). The point's processes use io_uring only to send, so a
 * CQE with a positive result is a send's (the cancel netobs may submit at a stop uses
 * user_data ~0). A SENDMSG_ZC send's CQE carries IORING_CQE_F_MORE (its notification follows,
 * as a CQE of its own with IORING_CQE_F_NOTIF, which is not a send). */
int netobs_uring_tp(struct tracepoint__io_uring__io_uring_complete *args)
{
    u32 *role = netobs_role();
    if (!role)
        return 0;
    u32 cflags = args->cflags;
    int res = args->res;
    if ((cflags & NETOBS_CQE_F_NOTIF) || res <= 0 || args->user_data == ~0ULL)
        return 0;
    struct netobs_percpu *pc = netobs_pcpu();
    if (!pc)
        return 0;
#ifdef NETOBS_SEND_SYSCALL
    netobs_send_done(pc, *role, res);   /* no send syscall saw it */
#endif
#ifdef NETOBS_ZC_SYSCALL
    if (cflags & NETOBS_CQE_F_MORE) {
        netobs_add(pc, *role, NETOBS_FIG_ZC_SENDS, 1);
        netobs_add(pc, *role, NETOBS_FIG_ZC_SEND_BYTES, res);
    }
#endif
    return 0;
}
#endif

/* ---- off-CPU time ----------------------------------------------------------------------- */
#ifdef NETOBS_OFFCPU_RAW
/* sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
 * unsigned int prev_state) (5.18+), run in prev's context. `next` is not read: a thread that
 * went off-CPU at off_ts came back at this CPU's previous switch (it has run here since), so
 * its off-CPU interval is accounted when it next leaves the CPU (or exits). An interval whose
 * thread is still on the CPU when the point stops is not counted. */
int netobs_offcpu_raw(struct bpf_raw_tracepoint_args *ctx)
{
    /* Between points (generation 0) every switch on the machine returns here, before any
     * clock read. A stale last_switch is harmless: a tracked thread's interval needs
     * in >= its off_ts, which is set during the point. */
    u32 gen = netobs_gen();
    if (!gen)
        return 0;
    struct netobs_percpu *pc = netobs_pcpu();
    if (!pc)
        return 0;
    u64 now = bpf_ktime_get_ns();
    u64 in = pc->last_switch;
    pc->last_switch = now;
    struct netobs_thread *t = netobs_thread_of((u32)bpf_get_current_pid_tgid(), gen);
    if (!t)
        return 0;
    if (t->off_ts && in >= t->off_ts) {
        netobs_add(pc, t->role, NETOBS_FIG_OFFCPU_SWITCHES, 1);
        netobs_add(pc, t->role, NETOBS_FIG_OFFCPU_NS, in - t->off_ts);
    }
    if ((u32)ctx->args[3] & NETOBS_TASK_DEAD) {
        t->gen = 0;  /* free the slot */
        return 0;
    }
    t->off_ts = now;
    return 0;
}
#endif

#ifdef NETOBS_OFFCPU
int netobs_offcpu(struct tracepoint__sched__sched_switch *args)
{
    u64 now = 0;
    u32 gen = netobs_gen();
    if (!gen)
        return 0;
    struct netobs_thread *p = netobs_thread_of(args->prev_pid, gen);
    if (p) {
        if (args->prev_state & NETOBS_TASK_EXITING) {
            p->gen = 0;  /* free the slot */
        } else {
            now = bpf_ktime_get_ns();
            p->off_ts = now;
        }
    }
    struct netobs_thread *n = netobs_thread_of(args->next_pid, gen);
    if (n && n->off_ts) {
        if (!now)
            now = bpf_ktime_get_ns();
        u64 delta = now - n->off_ts;
        n->off_ts = 0;
        netobs_add1(n->role, NETOBS_FIG_OFFCPU_SWITCHES, 1);
        netobs_add1(n->role, NETOBS_FIG_OFFCPU_NS, delta);
    }
    return 0;
}
#endif

/* ---- socket-memory pressure ------------------------------------------------------------- */
#ifdef NETOBS_MEM_TP
int netobs_mem_tp(struct tracepoint__sock__sock_exceed_buf_limit *args)
{
    u32 *role = netobs_role();
    if (role)
        netobs_add1(*role, NETOBS_FIG_MEM_PRESSURE_EVENTS, 1);
    return 0;
}
#endif
