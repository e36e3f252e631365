"""Analysis of runs and sweeps: :mod:`~grokkit.analysis.threshold` (critical data threshold of a sweep) and
:mod:`~grokkit.analysis.progress` (progress measures of a run's model: Fourier key frequencies, restricted/excluded
loss, softmax collapse, weight norms)."""
