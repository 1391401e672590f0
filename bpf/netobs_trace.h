/* netobs kernel tracing: the layout shared by bpf/netobs_trace.c and netobs/tracer.py.
 *
 * netobs/tracer.py reads the NETOBS_FIG_* and NETOBS_* sizes below from this file, so the
 * figure order is defined once. Keep each as `#define NAME <integer>` on its own line.
 */
#ifndef NETOBS_TRACE_H
#define NETOBS_TRACE_H

/* Roles: which of a point's processes an event belongs to. */
#define NETOBS_ROLE_CLIENT 0
#define NETOBS_ROLE_SERVER 1
#define NETOBS_NROLES 2
/* netobs_cfg: [0] the point's generation, [NETOBS_CFG_ZC + role] the role's zero-copy gate. */
#define NETOBS_CFG_ZC 1

/* Per-role counters, in the order of DESIGN.md's trace figures. */
#define NETOBS_FIG_SENDMSG_CALLS 0
#define NETOBS_FIG_SENDMSG_BYTES 1
#define NETOBS_FIG_ZC_SENDS 2
#define NETOBS_FIG_ZC_SEND_BYTES 3
#define NETOBS_FIG_RX_COPY_CALLS 4
#define NETOBS_FIG_RX_COPY_BYTES 5
#define NETOBS_FIG_ERRQUEUE_READS 6
#define NETOBS_FIG_ZC_CALLBACKS 7
#define NETOBS_FIG_ZC_DEFERRED_COPIES 8
#define NETOBS_FIG_SEND_SYSCALLS 9
#define NETOBS_FIG_SEND_SYSCALL_NS 10
#define NETOBS_FIG_RECV_SYSCALLS 11
#define NETOBS_FIG_RECV_SYSCALL_NS 12
#define NETOBS_FIG_OFFCPU_SWITCHES 13
#define NETOBS_FIG_OFFCPU_NS 14
#define NETOBS_FIG_MEM_PRESSURE_EVENTS 15
#define NETOBS_NFIG 16

/* netobs_counts: [role * NETOBS_NFIG + fig], then one slot counting lost events
 * (a map update that failed because a map was full). */
#define NETOBS_LOST_SLOT 32
#define NETOBS_NCOUNTERS 33

/* netobs_hist: log2 histograms of syscall time, [(role * 2 + kind) * NETOBS_HIST_SLOTS + slot]
 * where slot = bpf_log2l(ns): slot s counts durations in [2^(s-1), 2^s) ns (slot 0: 0 ns). */
#define NETOBS_KIND_SEND 0
#define NETOBS_KIND_RECV 1
#define NETOBS_HIST_SLOTS 64
#define NETOBS_NHIST 256

/* netobs_percpu.sampled: the send/recv syscalls whose time was taken, [role * 2 + kind].
 * Every call is counted (NETOBS_FIG_SEND_SYSCALLS, ...), but only 1 in NETOBS_SYS_SAMPLE
 * (a cflag, per thread and kind, deterministic: the 1st, N+1th, ... call) is timed; its time
 * goes to NETOBS_FIG_*_SYSCALL_NS and the histogram, and tracer.py scales the time by
 * calls / sampled calls. */
#define NETOBS_NSAMPLED 4

/* The point's processes and threads live in arrays indexed by pid & (NETOBS_PID_SLOTS - 1)
 * (a power of two), each entry tagged with its pid and the point's generation: an array
 * lookup is inlined by the verifier, a hash lookup costs ~70 ns per event in a VM. Where
 * pid_max <= NETOBS_PID_SLOTS no two pids share a slot; otherwise a tracked pid whose slot
 * another tracked pid holds is not counted and counts as a lost event. */
#define NETOBS_PID_SLOTS 65536

/* Flags the programs test (include/linux/socket.h). */
#define NETOBS_MSG_ERRQUEUE 0x2000
#define NETOBS_MSG_ZEROCOPY 0x4000000
#define NETOBS_IPPROTO_TCP 6
/* Not a socket flag: netobs marks a sendfile()/splice() call with it (a send by page
 * reference, counted with the zero-copy sends). MSG_CMSG_COMPAT's bit, never a user's flag. */
#define NETOBS_FLAG_PAGES 0x80000000
/* ... and an io_uring_enter() call of a tracked thread with this one (a send syscall of the
 * io_uring senders: counted and timed, its return value is not bytes). */
#define NETOBS_FLAG_URING 0x40000000
/* io_uring CQE flags (include/uapi/linux/io_uring.h) */
#define NETOBS_CQE_F_MORE 2
#define NETOBS_CQE_F_NOTIF 8
/* setsockopt(SOL_SOCKET, SO_ZEROCOPY): asm-generic values (x86, arm64, riscv, ...). The gate
 * (NETOBS_ZC_GATE) is compiled only with the raw syscall programs, i.e. on the architectures of
 * tracer.RAW_SYSCALL_ARCH; one with other values (alpha, mips, parisc, sparc) needs them there. */
#define NETOBS_SOL_SOCKET 1
#define NETOBS_SO_ZEROCOPY 60
/* sched:sched_switch's prev_state bits of a task that is exiting (EXIT_DEAD, EXIT_ZOMBIE). */
#define NETOBS_TASK_EXITING 0x30
/* The raw sched_switch's prev_state is the task's __state: TASK_DEAD once it is exiting. */
#define NETOBS_TASK_DEAD 0x80

#ifndef NETOBS_PYTHON_ONLY
/* netobs_thread.active: what sys_exit has to do for the send/recv syscall in flight. */
#define NETOBS_ACT_TIMED 1   /* a sampled call: sys_ts is its entry time */
#define NETOBS_ACT_EXIT 2    /* an exit figure needs its return value (flags, syscall sends) */

/* Per tracked thread (created at its first send/recv syscall, rewritten in place after that):
 * the send/recv syscall in flight, and when it last went off-CPU. Only the thread itself
 * writes its entry (its syscalls, and sched_switch while it is `prev`), so no locking. */
struct netobs_thread {
    u64 sys_ts;     /* entry time of the syscall in flight, when it is timed */
    u64 off_ts;     /* when it went off-CPU (0: unknown) */
    u32 tid;        /* whose entry this is */
    u32 gen;        /* the point's generation (netobs_cfg); another value: a free slot */
    u32 role;       /* its process's role, set when the entry is created */
    u32 kind;       /* NETOBS_KIND_SEND / NETOBS_KIND_RECV */
    u32 flags;      /* the syscall's flags argument, where a program needs it */
    u32 active;     /* NETOBS_ACT_* bits of the syscall in flight; 0: nothing for sys_exit */
    u32 skip[2];    /* per kind: calls left before the next timed one (sampling countdown) */
};

/* A process of the point (or a descendant). */
struct netobs_proc {
    u32 tgid;
    u32 role;
    u32 gen;        /* the point's generation; another value: a free slot */
    u32 pad;
};

/* Everything a program adds to, per CPU, in one map value: one lookup per event. */
struct netobs_percpu {
    u64 counts[NETOBS_NCOUNTERS];
    u64 hist[NETOBS_NHIST];
    u64 sampled[NETOBS_NSAMPLED];
    u64 last_switch;  /* time of this CPU's last sched_switch (raw off-CPU accounting) */
};
#endif

#endif /* NETOBS_TRACE_H */
