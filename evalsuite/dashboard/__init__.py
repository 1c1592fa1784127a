"""The Streamlit dashboard: leaderboard (paper Tables 1 and 2), curves, checkpoints, queue.

It reads the results service only through its HTTP API (``docs/api.md``). The logic that
can be checked without a browser (table layout, emphasis, exports, curve shaping) lives in
small modules here; the ``view_*`` modules are thin Streamlit pages over them. The package
(not the top-level ``dashboard/`` folder) holds the code so an installed wheel can run
``evalsuite dashboard``; ``dashboard/app.py`` is only a checkout's entry script.
"""
