"""Scale-out on Ray: many bundles built in parallel (``build_many``) and env rollouts in Ray
actors (``RayVectorEnv``), on a local Ray or a cluster. Ray is the ``[ray]`` extra: importing
this package needs only lyra-sim; the functions import Ray when called and, without it, raise
``MissingDependencyError`` naming the extra.

This package may import lyra_sim (converters, envs, kits, scene, sim) and, lazily, ray.
"""

from __future__ import annotations

from typing import Any

from lyra_sim.errors import MissingDependencyError

INSTALL_HINT = "pip install 'lyra-sim[ray]'  (or: pip install 'ray>=2.9')"


def require_ray(feature: str) -> Any:
    """The ``ray`` module, or ``MissingDependencyError`` saying that ``feature`` needs the extra."""
    try:
        import ray
    except ImportError as error:
        raise MissingDependencyError(f"{feature} needs Ray, the [ray] extra: {INSTALL_HINT}") from error
    return ray


def connect(address: str | None, feature: str, **init_options: Any) -> tuple[Any, bool]:
    """Join Ray: the running session if this process has one, else ``address``.

    ``address`` None starts a local Ray (or joins the cluster named by ``RAY_ADDRESS``); "auto"
    joins the cluster this machine belongs to; "ray://HOST:10001" connects through Ray Client.
    Returns (ray module, whether we started the connection and so must shut it down).
    """
    ray = require_ray(feature)
    if ray.is_initialized():
        return ray, False
    options = {"include_dashboard": False, "log_to_driver": False, **init_options}
    if address:
        options["address"] = address
    try:
        ray.init(**options)
    except ConnectionError as error:
        from lyra_sim.errors import LyraSimError

        raise LyraSimError(f"{feature}: cannot reach the Ray cluster at {address!r}: {error}") from error
    return ray, True


def limit_threads(threads: int) -> None:
    """Make this worker process use ``threads`` CPU threads in torch and numba (one Ray CPU each),
    so that N workers on N cores do not oversubscribe them."""
    import torch

    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except (ImportError, ValueError):  # numba is a dependency, but a worker may lack a thread pool
        pass


__all__ = ["INSTALL_HINT", "connect", "limit_threads", "require_ray"]
