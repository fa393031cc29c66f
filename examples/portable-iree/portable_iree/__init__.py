"""IREE's adapter for portable: a compile-ahead stack (an example vendor package)."""
