import numpy as np

from portable.parity import compare, compare_output


def test_float_within_tolerance_passes_and_reports_error():
    expected = np.ones((2, 3), dtype=np.float32)
    result = compare_output("y", expected + 5e-5, expected)
    assert result.passed
    assert 4e-5 < result.max_abs < 6e-5


def test_float_outside_tolerance_fails_with_count():
    expected = np.zeros(10, dtype=np.float32)
    actual = expected.copy()
    actual[3] = 1e-2
    result = compare_output("y", actual, expected)
    assert not result.passed and result.mismatched == 1


def test_integers_must_match_exactly():
    expected = np.array([[1, 2], [3, 4]], dtype=np.int64)
    assert compare_output("ids", expected.copy(), expected).passed
    actual = expected.copy()
    actual[0, 0] = 9
    assert not compare_output("ids", actual, expected).passed


def test_nan_and_shape_mismatch_fail():
    expected = np.zeros(4, dtype=np.float32)
    actual = expected.copy()
    actual[0] = np.nan
    nan_result = compare_output("y", actual, expected)
    assert not nan_result.passed and nan_result.nonfinite == 1
    assert not compare_output("y", np.zeros(3, np.float32), expected).passed


def test_float16_gets_a_looser_tolerance():
    expected = np.ones(4, dtype=np.float16)
    assert compare_output("y", expected + np.float16(4e-3), expected).passed


def test_report_missing_output_fails():
    report = compare({}, {"y": np.zeros(2, np.float32)}, "golden")
    assert not report.passed
    assert report.to_dict()["outputs"]["y"]["note"] == "output missing"
