/* Sizes shared by bpf/netobs_profile.c and netobs/profiler.py (which reads the #defines). */
#ifndef NETOBS_PROFILE_H
#define NETOBS_PROFILE_H

#define NETOBS_PROF_PROCS 256        /* processes of one point (a hash: tgid -> role)      */
#define NETOBS_PROF_STACKS 16384     /* distinct stacks (kernel and user) of one point      */
#define NETOBS_PROF_KEYS 32768       /* distinct (process, kernel stack, user stack) sampled */
#define NETOBS_PROF_THREADS 4096     /* threads switched out at once                        */
#define NETOBS_PROF_LOST 0           /* netobs_prof_lost[]: samples/switches not recorded   */
#define NETOBS_PROF_NLOST 2          /* [0] on-CPU, [1] off-CPU                             */
/* prev_state bits that mean "asleep" (TASK_REPORT: S D T t X Z P I); none: still runnable */
#define NETOBS_PROF_SLEEP_STATES 0xff

#endif
