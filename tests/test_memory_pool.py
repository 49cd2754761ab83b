"""The memory pool of each Target: device arrays that calls create come from it and go back to it, and a buffer
handed out again (holding whatever its last user left there) gives the same results as fresh memory."""

import dataclasses

import numpy as np
import pyopencl as cl
import pyopencl.tools as cl_tools
import pytest

import clconv
from clconv import check, platforms, tuner
from clconv.params import PASSES

# A 2-D layer, a 1-D one and a 3-D one (whose plan adds scratch arrays of its own, which come from the pool too).
POOL_CASES = [pytest.param(next(case for case in check.CASES if case.name == "3x3-s2-d2-g3"), id="2d"),
              pytest.param(next(case for case in check.CASES_1D if case.name == "k7-s2-d3-g3"), id="1d"),
              pytest.param(next(case for case in check.CASES_3D if case.name == "2x3x1-s2x1x2-d2x1x1-asympad"),
                           id="3d")]


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_device_results_reuse_pooled_memory_whatever_it_holds(device, case, pass_name):
    """The second call's result (and scratch) come from the memory the first call gave back, none of it new, after
    that result was filled with NaN: a kernel that left any element unwritten, relying on fresh memory being zero,
    fails here."""
    target = platforms.resolve(device.device)
    pool = target.memory_pool
    inputs = check.random_inputs(case, np.float32)
    expected = check.run_pass(pass_name, case, inputs, device=device.device)
    given = tuner.to_device(target.queue, inputs)
    pool.free_held()
    first = check.run_pass(pass_name, case, given, device=device.device)
    assert isinstance(first.base_data, cl_tools.PooledBuffer)
    assert first.allocator is None  # what a caller computes from a result does not draw on clconv's pool
    first.fill(np.nan)
    target.queue.finish()
    del first
    managed = pool.managed_bytes
    assert pool.held_blocks >= 1
    second = check.run_pass(pass_name, case, given, device=device.device)
    assert pool.managed_bytes == managed
    assert np.array_equal(second.get(), expected)


def test_free_held_memory_gives_back_what_results_left(device):
    case = POOL_CASES[0].values[0]
    target = platforms.resolve(device.device)
    given = tuner.to_device(target.queue, check.random_inputs(case, np.float32))
    clconv.free_held_memory(device.device)
    result = check.run_pass("forward", case, given, device=device.device)
    nbytes = result.nbytes
    target.queue.finish()
    del result
    assert clconv.free_held_memory(device.device) >= nbytes
    assert target.memory_pool.held_blocks == 0
    assert clconv.free_held_memory(device.device) == 0


def test_an_out_of_order_queue_gets_no_pool(device):
    """A buffer given back while its commands are queued may be handed out at once only where the queue runs
    commands in order, so a caller's out-of-order queue allocates each array anew, and still computes right."""
    if not device.device.queue_properties & cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE:
        pytest.skip(f"{device.name} has no out-of-order queues")
    case = POOL_CASES[0].values[0]
    inputs = check.random_inputs(case, np.float32)
    expected = check.run_pass("forward", case, inputs, device=device.device)
    context = cl.Context([device.device])
    queue = cl.CommandQueue(context, device.device,
                            properties=cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE)
    assert platforms.resolve(queue).memory_pool is None
    result = check.run_pass("forward", case, tuner.to_device(queue, inputs), device=queue)
    assert not isinstance(result.base_data, cl_tools.PooledBuffer)
    assert np.array_equal(result.get(), expected)


def test_targets_on_one_queue_share_its_pool(device):
    """A device result passed back in (its queue, not the device, then names the call's Target) finds the same pool."""
    target = platforms.resolve(device.device)
    assert platforms.target_for_queue(target.queue).memory_pool is target.memory_pool is not None


def test_blocks_past_the_largest_allocation_are_not_pooled(device):
    """The pool rounds a request up to its block size; where that block would pass the device's largest allocation,
    the buffer is allocated at its exact size instead, outside the pool, so a request the device allows still runs."""
    target = platforms.resolve(device.device)
    pool = target.memory_pool
    nbytes = 4096 + 4
    block = pool.alloc_size(pool.bin_number(nbytes))
    assert block > nbytes
    assert isinstance(target.call_buffer(nbytes), cl_tools.PooledBuffer)
    tight = dataclasses.replace(target, info=dataclasses.replace(target.info, max_alloc_bytes=block - 1))
    exact = tight.call_buffer(nbytes)
    assert not isinstance(exact, cl_tools.PooledBuffer) and exact.size == nbytes
