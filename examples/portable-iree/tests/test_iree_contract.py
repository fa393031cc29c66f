"""IREE's whole conformance suite: portable's shipped contract, subclassed.

IREE cannot compile the reference MoE (its llvm-cpu TopK lowering fails), so the
parity cases and the session clauses are skipped as "not supported by this stack",
which `portable conformance --backend iree` reports per case, never as passed.
"""

from portable.testing import AdapterContract


class TestIree(AdapterContract):
    backend = "iree"
