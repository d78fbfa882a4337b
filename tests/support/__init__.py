"""Helpers shared by the tests (imported as ``tests.support.*``; pytest runs with ``--import-mode=importlib``
and the repository root on ``sys.path``, see pyproject.toml)."""
