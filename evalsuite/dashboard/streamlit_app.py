"""The script ``evalsuite dashboard`` hands to ``streamlit run`` (ships inside the wheel)."""

from evalsuite.dashboard.app import main

main()
