"""Each kernel's signature (clconv.kernel_signatures) names the kernel's own parameters, in its order.

The kernels are built here with ``-cl-kernel-arg-info``, which lets a compiled kernel report its parameter
names; clconv's own builds leave it out, since only this comparison needs it.
"""

import keyword

import pyopencl as cl
import pytest

from clconv import kernel_signatures, programs


def parameter_name(field: str) -> str:
    """The kernel parameter a field stands for: a Python keyword's field carries a trailing underscore."""
    stripped = field[:-1]
    return stripped if field.endswith("_") and keyword.iskeyword(stripped) else field


@pytest.mark.parametrize("kernel", sorted(kernel_signatures.SIGNATURES))
def test_signature_fields_are_the_kernel_parameters(device, kernel):
    context = cl.Context([device.device])
    # Each kernel compiles with its tunables' defaults (every cl/ file defines them when not given), but with
    # 4-lane vectors: the default 16 lanes are what PyPI's PoCL 3.0 on Zen 4 cannot build (vector_bits_limit).
    defines = dict(programs.dtype_defines("float32", device), VEC=4)
    options = [*programs.build_options(defines), "-cl-kernel-arg-info"]
    # Past pyopencl's binary cache: Intel's runtime reports no argument names for a program made from a binary.
    program = cl.Program(context, programs.read_source(f"{kernel}.cl")).build(options, cache_dir=False)
    built = cl.Kernel(program, kernel)
    reported = [built.get_arg_info(i, cl.kernel_arg_info.NAME) for i in range(built.num_args)]
    fields = [parameter_name(field) for field in kernel_signatures.SIGNATURES[kernel]._fields]
    assert fields == reported, f"{kernel} on {device.tag}: signature {fields}, kernel {reported}"


def test_arguments_of_another_kernel_are_refused():
    args = kernel_signatures.PeakCopyArgs(src=None, dst=None)
    with pytest.raises(TypeError, match="reduce_partials takes ReducePartialsArgs, got PeakCopyArgs"):
        kernel_signatures.check_args("reduce_partials", args)
