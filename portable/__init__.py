"""portable: the same model on every accelerator stack, one command, an honest answer."""

__version__ = "0.1.0"
