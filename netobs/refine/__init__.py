"""`netobs refine`: the experiments that decide what the answers left open (issue 26)."""
