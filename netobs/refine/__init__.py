"""`netobs refine`: the experiments that decide what the answers left open (issue 26).

- `rule`:    the declared sequential stopping rule (Bonferroni over a fixed maximum of looks);
- `plan`:    from a results directory's runs, the points that would decide what is open
             (repeats where a comparison is open, size bisection where a ranking flips,
             interventions from `interventions`: its table, `interventions.toml`), costed;
- `interventions`: the table from a hypothesis to the one parameter change that removes its
             mechanism, the planned pairs, and their judgement (evidence "intervention");
- `plateau`: where throughput stops rising with the thread count, bisected the same way;
- `driver`:  round after round: plan, cut to the budget, measure, judge again (the real
             measurement and the simulated one are two `measure` callables behind one planner);
- `store`:   the real measurement: the planned points run into the same results directory
             through the sweep's store, lock and checks.
Nothing here prints; `netobs.cli.refine` does.
"""
