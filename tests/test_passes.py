"""Every pass of every algorithm against the NumPy oracle, per device, case and dtype."""

import numpy as np
import pytest

from clconv import check
from clconv.algorithms import ALGORITHMS
from clconv.params import PASSES

# 2-D cases, 1-D ones (run as 2-D layers of height 1), 3-D ones (unfolded along depth into one 2-D layer) and
# transposed ones (1-D, 2-D and 3-D), each case in each dtype.
CASE_PARAMS = [
    pytest.param(case, dtype, id=prefix + check.case_id(case, dtype)) for dtype in check.DTYPES
    for prefix, cases in (("", check.CASES), ("1d-", check.CASES_1D), ("3d-", check.CASES_3D),
                          ("transposed-", check.TRANSPOSED_CASES))
    for case in cases
]


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case, dtype", CASE_PARAMS)
def test_pass_matches_oracle(pass_name, case, dtype, algo, device):
    if np.dtype(dtype) == np.float64 and not device.fp64:
        with pytest.raises(TypeError, match="cl_khr_fp64"):
            check.check_pass(pass_name, case, dtype, device=device.device, algo=algo)
        return
    result = check.check_pass(pass_name, case, dtype, device=device.device, algo=algo)
    assert result.passed, f"{pass_name} {case.params(dtype).describe()} on {device.summary()}: {result.message}"
