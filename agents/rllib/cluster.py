"""Ray, started or joined in one place: a private local instance sized to the machine, or an existing cluster.

Why this module exists (details: ../shared/reference/rllib.md, section 7):

- ``ray.init(address=...)`` on an address where no head listens retries for about 14 minutes. :func:`check_address`
  first tries a plain TCP connection for a few seconds and fails with one line naming the address and the likely
  causes: no head there, or a head with token authentication the client does not share.
- Ray 2.60 enables token authentication for a local ``ray.init()`` and writes ``~/.ray/auth_token``; a head
  started with ``ray start --head`` uses it only if a token already exists. Client and head must agree
  (``RAY_AUTH_MODE=token`` with the head's token from ``ray get-auth-token``, or ``RAY_AUTH_MODE=disabled`` on both).
- Ray rewrites ``127.0.0.1`` to the machine's outward address and listens on every interface, unless
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set (then everything stays on 127.0.0.1). A private local instance
  sets it, so nothing outside the machine can reach it; a client of a loopback head needs it as well.
- ``ray stop`` stops every Ray process on the machine; nothing here calls it. A local instance is shut down by
  :func:`ray_session` when the command ends, and its temporary folder deleted.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

from lepton_sim.errors import LeptonError

ADDRESS_ENV = "RAY_ADDRESS"
CONNECT_TIMEOUT_S = 3.0
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Ray's own wait for a GCS that does not answer: one attempt of ~40 s instead of 20 (set before ray.init)
FAIL_FAST_ENV = {"RAY_gcs_server_port_wait_time_s": "1", "RAY_gcs_rpc_server_connect_timeout_s": "5"}


def cluster_address(address: str | None = None) -> str | None:
    """The cluster to join: ``address``, else ``$RAY_ADDRESS``; None (or ``local``) for a local instance."""
    address = address if address is not None else os.environ.get(ADDRESS_ENV) or None
    if address in (None, "", "local"):
        return None
    if address == "auto":
        raise LeptonError(
            "--ray-address auto could join any Ray instance on this machine (someone else's too); "
            "give the head's HOST:PORT (the address `ray start --head` printed)"
        )
    return address


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``ray://HOST:PORT`` for Ray Client; ``[v6]:PORT``) -> (host, port), or a clear error."""
    text = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LeptonError(
            f"--ray-address {address!r}: expected HOST:PORT of a Ray head, e.g. 10.0.0.5:6379 "
            "(the address `ray start --head` printed)"
        )
    return host, int(port)


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds, in one line, if nothing accepts TCP connections at ``address``."""
    host, port = split_address(address)
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as err:
        waited = time.monotonic() - start
        why = err.strerror or type(err).__name__
        if isinstance(err, TimeoutError) or "timed out" in str(err):
            why = f"no answer within {waited:.0f} s"
        raise LeptonError(
            f"cannot reach a Ray head at {address} ({why}). Likely causes: no head is running there "
            f"(start one with `ray start --head --port {port}`), a firewall, or a wrong host or port. A head that "
            "is reachable may still refuse this client: with token authentication (RAY_AUTH_MODE=token, the "
            "default where a token exists) set RAY_AUTH_MODE=token and the head's token (`ray get-auth-token` on "
            "the head; RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH here); a head bound to 127.0.0.1 "
            f"({LOOPBACK_ENV}=0) needs {LOOPBACK_ENV}=0 here as well"
        ) from None


def local_cpus() -> int:
    """CPUs this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        return 0


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[str | None]:
    """Ray for the block: an instance already running in this process (tests share one) is used as it is;
    otherwise join ``address`` (checked first; default ``$RAY_ADDRESS``) or start a private local instance
    (loopback only, no dashboard, its own temporary folder, sized to the machine) and shut it down afterwards.
    Yields the address joined (None for a local instance)."""
    address = cluster_address(address)
    if address is not None:
        check_address(address)
        for key, value in FAIL_FAST_ENV.items():
            os.environ.setdefault(key, value)
    else:
        os.environ.setdefault(LOOPBACK_ENV, "0")  # read when ray is imported and when it starts
    import ray

    if ray.is_initialized():
        yield address
        return
    temp_dir = None
    try:
        if address is not None:
            try:
                ray.init(address=address, log_to_driver=True, configure_logging=False)
            except (ConnectionError, RuntimeError) as err:
                raise LeptonError(
                    f"cannot join the Ray cluster at {address}: {' '.join(str(err).split())[:300]}. If the head "
                    "uses token authentication, set RAY_AUTH_MODE=token and its token (`ray get-auth-token` on the "
                    f"head); for a loopback head set {LOOPBACK_ENV}=0 here too"
                ) from None
        else:
            temp_dir = tempfile.mkdtemp(prefix="lepton-ray-")
            ray.init(
                num_cpus=num_cpus or local_cpus(),
                num_gpus=local_gpus(),
                include_dashboard=False,
                _temp_dir=temp_dir,
                configure_logging=False,
                log_to_driver=True,
            )
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
