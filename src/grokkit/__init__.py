"""grokkit: study and induce grokking in small models.

Components: :mod:`grokkit.tasks`, :mod:`grokkit.models`, :mod:`grokkit.losses`, :mod:`grokkit.optim`,
:mod:`grokkit.engine`; recipes in :mod:`grokkit.recipes`; :func:`grokkit.api.run` runs a config.
"""

__version__ = "0.1.0"
