"""Each kernel variant is built and launched in a child process before it is built in the caller's.

A native OpenCL compiler that aborts or hangs (PyPI's PoCL 3.0 with LLVM 14 on a CPU it does not know,
say) would otherwise take the caller's process down with it, and no ``try`` can catch an abort. So the
first time a *variant* (kernel source, build options, work-group shape) is needed on a device, a checker
process (:func:`serve`, one per caller process, kept for its lifetime) builds it and
launches one work-group of it, with buffers of the real sizes and the real scalar arguments. PoCL
compiles one work-group function per work-group shape at the first launch, so the launch is part of the
check. The verdict is stored beside the tuning data, keyed by device, driver, clconv version and a digest
of the kernel sources, so each machine pays for it once:

- ``ok``: the caller builds the variant itself; PoCL and pyopencl then find the checker's binaries in
  their caches, so the check costs the caller little more than the compile it replaces;
- ``crashed`` (a signal or an exit ended the checker), ``hung`` (it ran past the time limit) or
  ``rejected`` (the compiler refused the source or the launch failed): the variant is never built in the
  caller's process on that device; :class:`KernelVariantFailed` tells the plan to fall back.

A failed check is repeated once under a build salt (``-DCLCONV_BUILD_SALT``), which changes the key of
every kernel cache (PoCL's, pyopencl's) without changing the code: a cache entry left broken by an earlier
crash cannot fail a good variant, and a variant that passes under a salt is built with that salt.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pyopencl as cl

from . import __version__, kernel_signatures, programs
from .cache_files import JsonCacheFile, cache_folder
from .tuning_cache import device_key

#: Seconds a check may take before it counts as a hung compiler (CLCONV_KERNEL_CHECK_TIMEOUT overrides).
DEFAULT_TIMEOUT_SECONDS = 300.0
TIMEOUT_ENV_VAR = "CLCONV_KERNEL_CHECK_TIMEOUT"
#: "0" turns the checks off: variants without a stored verdict are built in-process unchecked.
ENABLE_ENV_VAR = "CLCONV_KERNEL_CHECK"
#: Test-only: "abort:TEXT" or "hang:TEXT" makes the checker abort (SIGABRT) or hang on every variant whose
#: description contains TEXT, in place of building it. Read by the checker process only.
FAULT_ENV_VAR = "CLCONV_TEST_CHECK_FAULT"

#: Where the verdicts are kept, when not beside the tuning data (``clconv bench --cold-cache`` sets it).
FILE_ENV_VAR = "CLCONV_KERNEL_CHECKS"

SALT_DEFINE = "CLCONV_BUILD_SALT"
STATUSES = ("ok", "crashed", "hung", "rejected")


def verdicts_path() -> Path:
    override = os.environ.get(FILE_ENV_VAR)
    return Path(override) if override else cache_folder() / "kernel_checks.json"


_VERDICTS = JsonCacheFile(verdicts_path, version=1, what="kernel-check verdicts")


def sources_digest() -> str:
    """A digest of every OpenCL source clconv ships: an edited kernel is a new variant.

    Read again whenever a file's size or modification time changes: a process that outlives an edit of the
    sources (a long benchmark while a kernel is being changed) would otherwise store the verdicts of the
    edited kernels under the digest of the old ones, and a rejected edit would condemn the good variant.
    """
    paths = sorted(path for path in programs.source_dir().iterdir() if path.suffix in (".cl", ".h"))
    return _digest_of(tuple((path, path.stat().st_mtime_ns, path.stat().st_size) for path in paths))


@functools.lru_cache(maxsize=8)
def _digest_of(stamped_paths: tuple) -> str:
    digest = hashlib.sha256()
    for path, _, _ in stamped_paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One kernel as a compiler sees it: source, -D defines and work-group shape."""

    kernel: str  # the entry kernel, also the file name cl/<kernel>.cl
    defines: tuple  # sorted (name, value) pairs
    local: tuple

    def describe(self) -> str:
        defines = " ".join(f"{name}={value}" for name, value in self.defines)
        return f"{self.kernel} [{defines}] work-group {'x'.join(map(str, self.local))}"


class KernelVariantFailed(RuntimeError):
    """A variant failed its check on a device: it must not be built in this process."""

    def __init__(self, variant: Variant, info, verdict: dict):
        self.variant = variant
        self.info = info
        self.verdict = verdict
        super().__init__(
            f"{variant.describe()} {verdict['status']} its check on {info.name} "
            f"({info.platform_name} {info.platform_version}, driver {info.driver_version}): "
            f"{verdict.get('detail', '')}")


class KernelFallbackWarning(RuntimeWarning):
    """A kernel variant failed its check in a child process on this device; clconv runs the next-best one."""


_warned: set = set()
_warned_lock = threading.Lock()


def warn_fallback(failure: KernelVariantFailed, instead: str, stacklevel: int) -> None:
    """Warn once per device and variant that ``failure``'s variant gives way to what ``instead`` says (a
    sentence: "The forward pass runs direct instead")."""
    key = (device_key(failure.info), failure.variant)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(f"clconv: {failure}. {instead}; that variant stays unused on this device (verdict kept in "
                  f"{verdicts_path()}).", KernelFallbackWarning, stacklevel=stacklevel)


def _enabled() -> bool:
    return os.environ.get(ENABLE_ENV_VAR, "1").strip().lower() not in ("0", "no", "off", "false")


def _timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV_VAR)
    if not text:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV_VAR} must be a number of seconds, got {text!r}") from None


def _argument_spec(arg, dtype) -> list:
    """How the checker recreates one kernel argument: a buffer of the same size, a null, or the same scalar
    (of the kernel's scalar ``dtype``; None for a buffer parameter)."""
    if arg is None:
        return ["null"]
    if isinstance(arg, cl.MemoryObjectHolder):
        return ["buffer", int(arg.size)]
    if dtype is None or np.ndim(arg) != 0:
        raise TypeError(f"kernel argument of type {type(arg).__name__} cannot be checked")
    return ["scalar", dtype.str, dtype.type(arg).item()]


# -- the caller's side ---------------------------------------------------------------------------------

_lock = threading.Lock()
_known: dict = {}  # (device key, variant) -> verdict, this process's memory of the file and of its checks
_checker = None
_unchecked_devices: set = set()
#: Checks run by this process (not read from the file); lets tests see that a verdict was reused.
checks_run = 0


def build_salt(target, kernel: str, defines: dict, local: tuple, args: tuple) -> int:
    """The salt to build a variant with after its check passed; raises KernelVariantFailed otherwise.

    ``args`` are the arguments of the launch about to happen, as the kernel's signature
    (kernel_signatures); the check launches one work-group with arguments of the same sizes and values.
    """
    kernel_signatures.check_args(kernel, args)
    info = target.info
    variant = Variant(kernel, tuple(sorted(defines.items())), tuple(int(n) for n in local))
    dtypes = kernel_signatures.scalar_dtypes(kernel, defines)
    verdict = _verdict(info, variant, lambda: [_argument_spec(a, d) for a, d in zip(args, dtypes)])
    if verdict["status"] in ("ok", "unchecked"):
        return verdict.get("salt", 0)
    raise KernelVariantFailed(variant, info, verdict)


def _verdict(info, variant: Variant, arg_specs) -> dict:
    """A variant's verdict on a device: remembered, stored, or checked now with the argument specs that
    ``arg_specs()`` gives. With the checks off and no verdict, 'unchecked' (a stored failure still counts)."""
    key = (device_key(info), variant)
    with _lock:
        verdict = _known.get(key) or _stored(info, variant)
        if verdict is None and not _enabled():
            return {"status": "unchecked"}
        if verdict is None:
            verdict = _check_with_retry(info, variant, arg_specs())
            if verdict["status"] in STATUSES:
                _store(info, variant, verdict)
            else:
                _warn_unchecked(info, verdict)
        _known[key] = verdict
    return verdict


#: The kernel whose check tells whether a device's compiler builds clconv's kernels at all: the smallest one.
PROBE_KERNEL = "reduce_partials"


def compiler_failure(info) -> str | None:
    """Why a device's OpenCL compiler builds none of clconv's kernels, or None where it builds them.

    Decided by the check of the smallest kernel (fp32, one work-item), run and kept like any variant's. A
    compiler that cannot build for the host CPU fails every kernel: PyPI's PoCL 3.0 (LLVM 14) on an AMD Zen 5
    asks its clang for the CPU 'generic', which clang refuses ('unknown target CPU'). ``clconv devices``,
    ``check`` and ``bench`` and the test suite name such a device and leave it out.
    """
    defines = programs.dtype_defines(np.float32, info)
    # ReducePartialsArgs: partial, count, splits, out, out_offset.
    arg_specs = [["buffer", 4], ["scalar", "<i4", 1], ["scalar", "<i4", 1], ["buffer", 4], ["scalar", "<i4", 0]]
    verdict = _verdict(info, Variant(PROBE_KERNEL, tuple(sorted(defines.items())), (1, 1, 1)), lambda: arg_specs)
    if verdict["status"] in ("ok", "unchecked"):
        return None
    detail = verdict.get("detail", "")
    # A build log repeats pyopencl's error name around the compiler's words: its "error:" lines say it.
    errors = [line.strip() for line in detail.splitlines() if line.strip().startswith("error:")]
    return f"its compiler {verdict['status']} clconv's smallest kernel ({'; '.join(errors[:3]) or detail})"


def split_by_compiler(infos) -> tuple[list, dict]:
    """``infos`` whose compiler builds clconv's kernels, and {info: compiler_failure(info)} for the others."""
    failures = {info: compiler_failure(info) for info in infos}
    return [info for info in infos if failures[info] is None], {i: f for i, f in failures.items() if f is not None}


def checked_kernel(target, kernel: str, defines: dict, local: tuple, args: tuple):
    """The kernel of a variant, built in this process only after its check passed (with the salt the check
    settled on), its scalar argument types set from its signature; raises KernelVariantFailed otherwise."""
    salt = build_salt(target, kernel, defines, local, args)
    salted = dict(defines, **{SALT_DEFINE: salt}) if salt else defines
    built = programs.get_kernel(target.context, kernel, salted)
    built.set_scalar_arg_dtypes(kernel_signatures.scalar_dtypes(kernel, defines))
    return built


def _warn_unchecked(info, verdict: dict) -> None:
    if device_key(info) not in _unchecked_devices:
        _unchecked_devices.add(device_key(info))
        warnings.warn(f"clconv: kernels for {info.name} ({info.platform_name}) run unchecked in this process: "
                      f"{verdict.get('detail', '')}", RuntimeWarning, stacklevel=6)


def _version_key() -> str:
    return f"clconv {__version__}, sources {sources_digest()}"


def _stored(info, variant: Variant) -> dict | None:
    verdict = (_VERDICTS.entries().get(device_key(info), {}).get(_version_key(), {})
               .get(variant.describe()))
    return verdict if isinstance(verdict, dict) and verdict.get("status") in STATUSES else None


def _store(info, variant: Variant, verdict: dict) -> None:
    def change(entries):
        entries.setdefault(device_key(info), {}).setdefault(_version_key(), {})[variant.describe()] = verdict

    try:
        _VERDICTS.update(change)
    except OSError:
        pass  # a read-only cache folder: the verdict still holds for this process


def _check_with_retry(info, variant: Variant, arg_specs: list) -> dict:
    global checks_run
    checks_run += 1
    verdict = _check(info, variant, arg_specs, salt=0)
    if verdict["status"] in ("crashed", "rejected"):
        # Once more, past every kernel cache: an entry broken by an earlier crash must not condemn the variant.
        retry = _check(info, variant, arg_specs, salt=int(time.time() * 1000) % 1_000_000_000 + 1)
        if retry["status"] == "ok":
            return retry
    return verdict


def _check(info, variant: Variant, arg_specs: list, salt: int) -> dict:
    global _checker
    if os.name == "nt":
        return {"status": "unchecked", "detail": "the checker process talks over POSIX pipes, which Windows lacks"}
    defines = dict(variant.defines)
    if salt:
        defines[SALT_DEFINE] = salt
    request = {
        "device": [info.platform_name, info.platform_version, info.name, info.driver_version],
        "kernel": variant.kernel, "options": list(programs.build_options(defines)), "local": list(variant.local),
        "args": arg_specs, "description": variant.describe(),
    }
    if _checker is None or not _checker.alive():
        if _checker is not None:
            _checker.close()
        _checker = _Checker()
    verdict = _checker.ask(request, _timeout())
    if verdict["status"] == "ok":
        verdict["salt"] = salt
    verdict["checked_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return verdict


class _Checker:
    """The checker process: one JSON request per line on its stdin, one JSON verdict per line back."""

    def __init__(self):
        self.log = tempfile.TemporaryFile()
        package_parent = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
        # Its own session: a Ctrl-C meant for the caller must not look like a crashed compiler.
        self.process = subprocess.Popen([sys.executable, "-c", "from clconv.kernel_check import serve; serve()"],
                                        stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, env=env, start_new_session=True)
        self.pending = b""
        self.log_start = 0  # where the current check's output starts in the log

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, request: dict, timeout: float) -> dict:
        self.log_start = self.log.seek(0, os.SEEK_END)
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except OSError:
            pass  # it died; reading below reports how
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                return {"status": "hung", "detail": f"no verdict within {timeout:g} s (the time limit, "
                                                    f"{TIMEOUT_ENV_VAR}); the checker was killed"}
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return self._death()
                self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def _death(self) -> dict:
        code = self.process.wait()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        self.log.seek(self.log_start)
        output = self.log.read().decode(errors="replace").strip().splitlines()
        last = [line for line in output if line.strip()][-3:]
        return {"status": "crashed", "detail": f"the checker process died ({how})"
                                               + (": " + " | ".join(last) if last else "")}

    def stop(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()

    def close(self) -> None:
        """Let it finish (end of its input), then release the pipes and the log."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            self.stop()
        self.process.stdout.close()
        self.log.close()


@atexit.register
def _close_checker():
    if _checker is not None:
        _checker.close()


# -- the checker process ---------------------------------------------------------------------------------

def _find_device(platform_name, platform_version, name, driver_version):
    for platform in cl.get_platforms():
        if (platform.name.strip(), platform.version.strip()) != (platform_name, platform_version):
            continue
        try:
            candidates = platform.get_devices()
        except cl.Error:
            continue
        for device in candidates:
            if (device.name.strip(), device.driver_version.strip()) == (name, driver_version):
                return device
    return None


def _fault(description: str) -> None:
    """The test-only hook: die or hang in place of a chosen variant's build."""
    action, _, text = os.environ.get(FAULT_ENV_VAR, "").partition(":")
    if text and text in description:
        if action == "abort":
            os.abort()
        if action == "hang":
            time.sleep(1e9)


def _run_check(request: dict, contexts: dict) -> dict:
    device = _find_device(*request["device"])
    if device is None:
        return {"status": "unchecked", "detail": "the checker process does not see this device"}
    if device.int_ptr not in contexts:
        context = cl.Context([device])
        contexts[device.int_ptr] = (context, cl.CommandQueue(context, device))
    context, queue = contexts[device.int_ptr]
    _fault(request["description"])
    try:
        program = cl.Program(context, programs.read_source(f"{request['kernel']}.cl")).build(request["options"])
        kernel = cl.Kernel(program, request["kernel"])
        args = []
        for spec in request["args"]:
            if spec[0] == "null":
                args.append(None)
            elif spec[0] == "buffer":
                args.append(cl.Buffer(context, cl.mem_flags.READ_WRITE, max(1, spec[1])))
            else:
                args.append(np.array(spec[2], dtype=spec[1])[()])
        local = tuple(request["local"])
        kernel(queue, local, local, *args)
        queue.finish()
    except cl.MemoryError as error:  # the checker's copies of the buffers did not fit: no verdict on the code
        return {"status": "unchecked", "detail": f"the checker could not allocate its buffers: {error}"}
    except cl.Error as error:
        return {"status": "rejected", "detail": str(error).strip()[-2000:]}
    except Exception as error:  # not the compiler's verdict (a broken pyopencl cache, say): no verdict at all
        return {"status": "unchecked", "detail": f"the checker failed: {type(error).__name__}: {error}"}
    return {"status": "ok"}


def serve() -> None:
    """The checker's loop; native output (compiler logs) goes to stderr, verdicts to the real stdout."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    contexts = {}
    for line in sys.stdin:
        replies.write(json.dumps(_run_check(json.loads(line), contexts)) + "\n")
        replies.flush()

