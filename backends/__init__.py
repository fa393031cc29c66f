"""Built-in adapters, one module per stack; installed as `portable.backends`."""
