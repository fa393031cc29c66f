"""Acme's adapter for portable (an example vendor package)."""
