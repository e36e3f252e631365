"""Analysis of runs and sweeps."""
