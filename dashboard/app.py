"""Checkout entry point: ``streamlit run dashboard/app.py -- --api URL``.

The app itself is ``evalsuite.dashboard`` (inside the package, so an installed wheel runs
``evalsuite dashboard`` without this folder); this file only starts it.
"""

from evalsuite.dashboard.app import main

main()
