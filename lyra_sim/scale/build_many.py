"""``build_many``: many splat scenes -> many SimBundles, one Ray task per scene.

The driver (the process that calls ``build_many``) reads each input file and sends its bytes to
a Ray task through the object store; the task builds the bundle in a temporary folder of its
worker and sends it back as a tar archive, which the driver unpacks into ``OUT_DIR/<name>``
atomically. So the workers of a cluster need lyra-sim installed but no shared filesystem, and
``OUT_DIR`` only ever holds complete bundles.

Resuming: a bundle is skipped when ``OUT_DIR/<name>/manifest.json`` records the same source
SHA-256 and the same build parameters as this run (the manifest keeps both). Failures are
isolated: a task catches its own errors, and a crashed worker is reported like any error; the
other scenes go on. When a true surface sits beside an input (``NAME.truth.obj``, ``.ply``,
``.stl`` or ``.glb``, in the input's coordinates) the task scores the bundle's collision
geometry against it (F-score at ``fscore_threshold`` metres).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from lyra_sim.converters.config import BuildConfig
from lyra_sim.errors import BundleError
from lyra_sim.io_utils import atomic_path, file_sha256, write_json
from lyra_sim.scale import connect, limit_threads

TRUTH_SUFFIXES = (".obj", ".ply", ".stl", ".glb")
REPORT_NAME = "build-many.json"


@dataclass
class SceneResult:
    """What happened to one input.

    Attributes:
        name: the bundle's folder name inside the output folder.
        source: the input path as given.
        status: "built", "skipped" (an up-to-date bundle was there) or "failed".
        seconds: wall time of the build inside its task (0 when skipped, None when the task died).
        bundle: path of the bundle (None when failed).
        gaussians: Gaussians in the input (None unless built).
        fscore: F-score of the collision geometry against the truth beside the input, or None.
        accuracy: all the ``SurfaceAccuracy`` fields of that comparison, or None.
        error: the error message when failed.
        sha256: SHA-256 of the input file (None when it could not be read).
    """

    name: str
    source: str
    status: str
    seconds: float | None = None
    bundle: str | None = None
    gaussians: int | None = None
    fscore: float | None = None
    accuracy: dict | None = None
    error: str | None = None
    sha256: str | None = None
    extra: dict = field(default_factory=dict)


def bundle_names(inputs: Sequence[Path]) -> list[str]:
    """One folder name per input: its file name without the scene extension, made unique in order."""
    names, seen = [], set()
    for path in inputs:
        base = path.name
        for suffix in (".compressed.ply", ".ply", ".splat", ".spz", ".pt"):
            if base.lower().endswith(suffix) and len(base) > len(suffix):
                base = base[: -len(suffix)]
                break
        name, k = base, 2
        while name in seen:
            name, k = f"{base}-{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


def truth_beside(path: Path) -> Path | None:
    """The true surface given beside ``path`` (``NAME.truth.obj`` and friends), or None."""
    stem = bundle_names([path])[0]
    for suffix in TRUTH_SUFFIXES:
        candidate = path.with_name(f"{stem}.truth{suffix}")
        if candidate.is_file():
            return candidate
    return None


def is_up_to_date(bundle: Path, source_sha256: str, config: BuildConfig) -> bool:
    """Whether ``bundle`` was built from these bytes with these parameters (and is complete)."""
    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
        same_source = manifest["source"]["sha256"] == source_sha256
        same_config = manifest["build"]["config"] == json.loads(json.dumps(config.to_dict()))
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not (same_source and same_config):
        return False
    from lyra_sim.bundle import load_bundle

    try:
        load_bundle(bundle)
    except BundleError:
        return False
    return True


def build_one(name: str, filename: str, data: bytes, truth: tuple[str, bytes] | None, config: BuildConfig,
              fscore_threshold: float, threads: int) -> dict[str, Any]:
    """The body of one Ray task (also callable in-process): build, score, pack. Never raises."""
    started = time.perf_counter()
    limit_threads(threads)
    source = None
    try:
        from lyra_sim.converters.bundle import build_bundle
        from lyra_sim.scene.io import load_scene
        from lyra_sim.bundle import load_bundle

        with tempfile.TemporaryDirectory(prefix="lyra_build_many_") as work:
            work = Path(work)
            source = work / "input" / Path(filename).name
            source.parent.mkdir()
            source.write_bytes(data)
            scene = load_scene(source)
            bundle_dir = build_bundle(scene, work / name, config, progress=False)
            manifest_path = bundle_dir / "manifest.json"
            manifest = json.loads(manifest_path.read_text())
            manifest["source"]["path"] = filename  # the driver's path, not this worker's copy
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
            accuracy = None
            if truth is not None:
                import trimesh

                truth_name, truth_data = truth
                truth_mesh = trimesh.load(io.BytesIO(truth_data), file_type=Path(truth_name).suffix[1:], force="mesh", process=False)
                if len(truth_mesh.faces) == 0:
                    raise BundleError(f"{truth_name}: the true surface has no faces")
                from lyra_sim.kits.evaluation import bundle_accuracy_against_mesh

                accuracy = bundle_accuracy_against_mesh(load_bundle(bundle_dir), truth_mesh, fscore_threshold)
            archive = io.BytesIO()
            with tarfile.open(fileobj=archive, mode="w") as tar:
                tar.add(bundle_dir, arcname=".")
        return {"status": "built", "seconds": round(time.perf_counter() - started, 3), "archive": archive.getvalue(),
                "gaussians": len(scene), "accuracy": accuracy, "node": os.uname().nodename}
    except Exception as error:  # noqa: BLE001 - isolate every failure of one scene from the rest
        from lyra_sim.errors import LyraSimError

        message = str(error) if isinstance(error, LyraSimError) else f"{type(error).__name__}: {error}"
        if source is not None:
            message = message.replace(str(source), filename)  # name the user's file, not our copy
        return {"status": "failed", "seconds": round(time.perf_counter() - started, 3), "error": message}


def _unpack(archive: bytes, destination: Path) -> None:
    """Unpack a bundle archive onto ``destination`` atomically (members may not leave the folder)."""
    with atomic_path(destination) as folder:
        folder.mkdir()
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
            for member in tar.getmembers():
                target = (folder / member.name).resolve()
                if not (member.isfile() or member.isdir()) or (target != folder.resolve() and folder.resolve() not in target.parents):
                    raise BundleError(f"bundle archive for {destination.name}: refusing member {member.name!r}")
            tar.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))


def build_many(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: BuildConfig = BuildConfig(),
    *,
    address: str | None = None,
    cpus_per_task: float = 1,
    fscore_threshold: float = 0.01,
    max_in_flight: int | None = None,
    progress: bool = True,
) -> list[SceneResult]:
    """Build a SimBundle for every input scene on Ray; returns one ``SceneResult`` per input.

    Args:
        inputs: splat scene files (any format ``load_scene`` reads).
        out_dir: output folder; bundle ``NAME`` lands in ``out_dir/NAME`` and a report of the
            run in ``out_dir/build-many.json``.
        config: build parameters, the same for every scene.
        address: None for a local Ray (or the one this process is connected to, or
            ``RAY_ADDRESS``), "auto" for the cluster this machine is part of, or
            "ray://HEAD:10001" (Ray Client).
        cpus_per_task: Ray CPUs reserved by each task; also its torch/numba thread count.
        fscore_threshold: distance (m) of the F-score against a truth beside an input.
        max_in_flight: tasks submitted at once (default: twice what the cluster runs at once),
            which bounds the input bytes held in the object store.
        progress: a progress bar across the scenes.

    Failures never raise: they are results with ``status == "failed"`` and the error.
    """
    from tqdm.auto import tqdm

    if cpus_per_task <= 0:
        raise ValueError(f"cpus_per_task must be > 0, got {cpus_per_task}")
    if not fscore_threshold > 0:
        raise ValueError(f"fscore_threshold must be > 0, got {fscore_threshold}")
    paths = [Path(p) for p in inputs]
    if not paths:
        raise BundleError("build-many: no input scenes given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = bundle_names(paths)
    previous = _previous_scores(out_dir / REPORT_NAME)
    results: list[SceneResult | None] = [None] * len(paths)
    pending: list[tuple[int, str]] = []  # (index, sha256)
    for index, (path, name) in enumerate(zip(paths, names)):
        if not path.is_file():
            problem = "is a folder; pass the scene files inside it" if path.is_dir() else "does not exist"
            results[index] = SceneResult(name, str(path), "failed", error=f"{path}: {problem}")
            continue
        digest = file_sha256(path)
        if is_up_to_date(out_dir / name, digest, config):
            accuracy = previous.get((name, digest))  # the score the bundle got when it was built
            results[index] = SceneResult(name, str(path), "skipped", seconds=0.0, bundle=str(out_dir / name),
                                         fscore=None if accuracy is None else accuracy["fscore"], accuracy=accuracy, sha256=digest)
        else:
            pending.append((index, digest))

    started = time.perf_counter()
    bar = tqdm(total=len(paths), desc="build-many", unit="scene", disable=not progress)
    bar.update(len(paths) - len(pending))
    counts = {status: sum(1 for r in results if r is not None and r.status == status) for status in ("built", "skipped", "failed")}
    bar.set_postfix(counts)
    ray, started_ray = (None, False)
    if pending:
        ray, started_ray = connect(address, "lyra-sim build-many")
    try:
        if pending:
            task = ray.remote(build_one).options(num_cpus=cpus_per_task, max_retries=1)
            slots = max_in_flight or max(2, int(2 * ray.cluster_resources().get("CPU", 1) // cpus_per_task))
            in_flight: dict[Any, int] = {}
            queue = list(pending)
            digests = dict(pending)
            while queue or in_flight:
                while queue and len(in_flight) < slots:
                    index, _ = queue.pop(0)
                    path, truth = paths[index], truth_beside(paths[index])
                    truth_payload = (truth.name, truth.read_bytes()) if truth is not None else None
                    ref = task.remote(names[index], str(path), path.read_bytes(), truth_payload, config, fscore_threshold, max(1, round(cpus_per_task)))
                    in_flight[ref] = index
                (done,), _ = ray.wait(list(in_flight), num_returns=1)
                index = in_flight.pop(done)
                results[index] = _collect(ray, done, names[index], paths[index], out_dir)
                results[index].sha256 = digests[index]
                counts[results[index].status] += 1
                bar.update(1)
                bar.set_postfix(counts)
    finally:
        bar.close()
        if started_ray:
            ray.shutdown()
    final = [r for r in results if r is not None]
    write_report(out_dir / REPORT_NAME, final, time.perf_counter() - started, address, cpus_per_task, config)
    return final


def _previous_scores(report: Path) -> dict[tuple[str, str], dict]:
    """(name, source SHA-256) -> accuracy, from the report of an earlier run (empty if none)."""
    try:
        rows = json.loads(report.read_text())["scenes"]
        return {(row["name"], row["sha256"]): row["accuracy"] for row in rows if row.get("accuracy") and row.get("sha256")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _collect(ray, ref, name: str, path: Path, out_dir: Path) -> SceneResult:
    try:
        reply = ray.get(ref)
    except Exception as error:  # noqa: BLE001 - a worker that died (segfault, out of memory)
        return SceneResult(name, str(path), "failed", error=f"{path}: the Ray task died: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    if reply["status"] != "built":
        return SceneResult(name, str(path), "failed", seconds=reply["seconds"], error=f"{path}: {reply['error']}" if str(path) not in reply["error"] else reply["error"])
    try:
        _unpack(reply["archive"], out_dir / name)
    except (OSError, tarfile.TarError, BundleError) as error:
        return SceneResult(name, str(path), "failed", seconds=reply["seconds"], error=f"{out_dir / name}: cannot write the bundle: {error}")
    accuracy = reply.get("accuracy")
    return SceneResult(name, str(path), "built", seconds=reply["seconds"], bundle=str(out_dir / name), gaussians=reply["gaussians"],
                       fscore=None if accuracy is None else accuracy["fscore"], accuracy=accuracy, extra={"node": reply.get("node")})


def write_report(path: Path, results: list[SceneResult], wall_seconds: float, address, cpus_per_task, config: BuildConfig) -> Path:
    """``build-many.json``: every result, totals and the build parameters (atomic write)."""
    from dataclasses import asdict

    built = sum(r.status == "built" for r in results)
    return write_json(path, {
        "scenes": [asdict(r) for r in results],
        "totals": {status: sum(r.status == status for r in results) for status in ("built", "skipped", "failed")},
        "wall_seconds": round(wall_seconds, 3),
        "bundles_per_minute": round(60.0 * built / wall_seconds, 3) if built and wall_seconds > 0 else None,
        "ray_address": address or "local",
        "cpus_per_task": cpus_per_task,
        "build_config": config.to_dict(),
    })


def format_table(results: list[SceneResult]) -> str:
    """The summary table: scene, status, time, F-score (when a truth was given), error."""
    rows = [("scene", "status", "time s", "F-score", "error")]
    for r in results:
        rows.append((r.name, r.status, "-" if r.seconds is None else f"{r.seconds:.1f}",
                     "-" if r.fscore is None else f"{r.fscore:.3f}", r.error or ""))
    widths = [max(len(row[k]) for row in rows) for k in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + ("  " + row[4] if row[4] else "") for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths) + "  -----")
    totals = {status: sum(r.status == status for r in results) for status in ("built", "skipped", "failed")}
    lines.append(f"{totals['built']} built, {totals['skipped']} skipped (up to date), {totals['failed']} failed")
    return "\n".join(line.rstrip() for line in lines)


__all__ = ["SceneResult", "build_many", "build_one", "bundle_names", "format_table", "is_up_to_date", "truth_beside"]
