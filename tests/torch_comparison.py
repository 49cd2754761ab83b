"""What the PyTorch tests share: comparing a clconv.torch function with PyTorch's, judged like the kernels,
and recording which clconv functions a backward pass calls."""

import numpy as np
import torch

from clconv import check


def assert_matches_torch(ours_function, torch_function, x, w, b, **args):
    """Output and every gradient of ``ours_function(x, w, b, **args)`` against ``torch_function``'s.

    The error bound of each element is the same computation on absolute values (clconv.check); both results
    carry rounding error, so they may differ by twice the dtype's tolerance (check.pairwise_tolerance).
    """
    ours = ours_function(x, w, b, **args)
    theirs = torch_function(x, w, b, **args)
    grad = torch.rand(ours.shape, generator=torch.Generator().manual_seed(1)) - 0.5
    ours_all = (ours, *torch.autograd.grad(ours, (x, w, b), grad))
    theirs_all = (theirs, *torch.autograd.grad(theirs, (x, w, b), grad))
    absolute = [t.detach().abs().double().requires_grad_() for t in (x, w, b)]
    bound_output = torch_function(*absolute, **args)
    bounds = (bound_output, *torch.autograd.grad(bound_output, absolute, grad.abs().double()))
    dtype = np.dtype(str(x.dtype).replace("torch.", ""))
    tolerance = check.pairwise_tolerance(dtype)
    for name, a, e, bound in zip(("output", "grad_x", "grad_w", "grad_b"), ours_all, theirs_all, bounds):
        assert a.shape == e.shape, name
        error = ((a.double() - e.double()).abs() / bound.clamp_min(check.bound_floor(dtype))).max().item()
        assert error <= tolerance, f"{name}: normalised error {error:.2e}"


def record_calls(monkeypatch, names) -> list:
    """Make the clconv.api functions ``names`` append their name to the returned list whenever they run."""
    from clconv import api

    calls = []
    for name in names:
        original = getattr(api, name)
        monkeypatch.setattr(api, name, lambda *a, _o=original, _n=name, **k: (calls.append(_n), _o(*a, **k))[1])
    return calls
