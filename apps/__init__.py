"""Thin entry points: `python -m apps.<job>`."""
