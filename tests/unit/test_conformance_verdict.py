"""The conformance verdict: never "passed" when a case crashed, hung, failed or ran nowhere."""

import pytest

from portable.conformance import Clause, ConformanceReport


def report(*outcomes):
    clauses = [Clause(f"test_outputs_match_golden[moe-tiny-{variant}-{case}]", outcome)
               for variant, case, outcome in outcomes]
    return ConformanceReport("x", {}, [Clause("test_close_is_idempotent", "passed"), *clauses])


ALL = ("decode-1x1", "decode-1x4", "prefill-2x16")


@pytest.mark.parametrize(("outcomes", "verdict"), [
    ([("sparse", c, "passed") for c in ALL] + [("fused", c, "unsupported") for c in ALL],
     "passed"),
    # IREE: the 1x1 decode case compiles, the others do not: not a pass
    ([("sparse", "decode-1x1", "passed"), ("sparse", "decode-1x4", "unsupported"),
      ("sparse", "prefill-2x16", "unsupported")], "unsupported"),
    ([("sparse", c, "unsupported") for c in ALL], "unsupported"),
    ([("sparse", c, "skipped") for c in ALL], "not run"),
    ([("sparse", c, "passed") for c in ALL] + [("dense", "decode-1x1", "failed")], "failed"),
    ([("sparse", "decode-1x1", "crashed")] + [("sparse", c, "not run") for c in ALL[1:]],
     "crashed"),
    ([("sparse", c, "passed") for c in ALL] + [("dense", "decode-1x1", "timeout")], "crashed"),
])
def test_verdict(outcomes, verdict):
    assert report(*outcomes).verdict == verdict
