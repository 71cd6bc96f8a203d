"""asv benchmarks of jukicore (run from ``benches/``: ``asv run --python=same``).

Identifier benchmarks live in the ``ids_*`` modules; ``ids_numpy`` holds the
numpy baselines they (and ``benches/compare.py``) measure jukicore against.
"""
