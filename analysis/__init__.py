"""netobs.analysis: reads a results directory (never live state) and answers from it."""
