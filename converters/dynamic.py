"""Dynamic scenes: split a splat sequence into static scenery and moving clusters.

:func:`separate_sequence` takes a time-indexed sequence (``lyra_sim.scene.io.load_sequence``:
one ``GaussianScene`` per time step, Gaussian ``i`` of every frame being the same Gaussian, as
a dynamic 3DGS stores them) and returns a :class:`SequenceSplit`:

- **static**: Gaussians whose means stay within ``motion_threshold`` of their temporal median
  at every step. The threshold is data-driven: ``static_noise_factor`` times a robust estimate
  of the per-Gaussian jitter (the 25th percentile of the largest deviation, so most Gaussians
  must be static for it to mean noise) and at least ``min_motion_fraction`` of the scene's
  robust radius.
- **moving clusters**: the other Gaussians, linked when their whole trajectories stay close
  (a radius graph over the stacked means of all frames; things that move together stay
  together), small clusters handed back to the static part. Each cluster gets a per-time rigid
  pose fit by Kabsch (frame 0 -> frame t) and its RMS residual; a cluster whose residual exceeds
  ``rigid_tolerance`` is marked non-rigid (its per-time Gaussians are the truth, the rigid
  track only an approximation).

``SequenceSplit.evidence`` reports why: thresholds, noise level, per-cluster sizes,
displacements and residuals. :func:`dynamic_bundle_part` turns a split into the ``dynamic/``
part of a SimBundle (the layout is documented in ``lyra_sim.bundle.dynamic``).

May import numpy, scipy, torch and lyra_sim (scene, bundle, io_utils).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lyra_sim.errors import BundleError
from lyra_sim.rotations import matrix_to_quat_xyzw
from lyra_sim.scene.gaussian_scene import GaussianScene


@dataclass(frozen=True)
class SeparationConfig:
    """Parameters of :func:`separate_sequence`."""

    static_noise_factor: float = 6.0
    """A Gaussian is static while its largest deviation from its temporal median stays below this
    many times the typical (25th percentile) deviation of the sequence."""
    min_motion_fraction: float = 0.02
    """...and below this fraction of the scene's robust radius (median distance to the median)."""
    link_factor: float = 3.0
    """Two moving Gaussians belong to one cluster when their trajectories stay within this many
    median nearest-neighbour spacings (of the moving Gaussians at frame 0) at every step."""
    min_cluster_gaussians: int = 32
    """Moving clusters with fewer Gaussians are noise: they go back to the static part."""
    rigid_tolerance: float = 0.05
    """A cluster is rigid when the Kabsch residual (RMS, per frame) stays below this fraction of
    its size (its RMS radius), or below 3x the noise level if that is larger."""


@dataclass
class MovingCluster:
    """One moving group of Gaussians of a sequence.

    Attributes:
        name: "mover_<k>", by decreasing size.
        mask: [N] bool over the sequence's Gaussians.
        rotations: [T, 3, 3] rigid rotation from frame 0 to frame t (source frame).
        translations: [T, 3]: x_t = R_t x_0 + t_t.
        residuals: [T] RMS distance (source units) between the fit and the frame's means.
        rigid: whether the residual stays within the tolerance.
    """

    name: str
    mask: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray
    residuals: np.ndarray
    rigid: bool


@dataclass
class SequenceSplit:
    """Result of :func:`separate_sequence`.

    Attributes:
        frames: the input sequence (T scenes of N Gaussians).
        static_mask: [N] bool.
        clusters: the moving clusters (disjoint masks, none overlapping ``static_mask``).
        deviation: [N] largest distance of each Gaussian from its temporal median (source units).
        evidence: a JSON-ready report of the split.
    """

    frames: list[GaussianScene]
    static_mask: np.ndarray
    clusters: list[MovingCluster]
    deviation: np.ndarray
    evidence: dict = field(default_factory=dict)

    def static_scene(self) -> GaussianScene:
        """Frame 0 with every static Gaussian at its temporal median (averages reconstruction jitter)."""
        scene = self.frames[0].clone()
        means = torch.stack([frame.means.detach() for frame in self.frames]).median(dim=0).values
        static = torch.from_numpy(self.static_mask)
        scene.means.data[static] = means[static].to(scene.means.dtype)
        return scene

    def cluster_labels(self) -> np.ndarray:  # [N] int32: -1 static, k cluster k
        labels = np.full(len(self.static_mask), -1, dtype=np.int32)
        for index, cluster in enumerate(self.clusters):
            labels[cluster.mask] = index
        return labels


def kabsch(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [M, 3], [M, 3] -> [3, 3], [3]
    """The proper rotation R and translation t minimising sum |R source + t - target|^2."""
    source_centre, target_centre = source.mean(0), target.mean(0)
    covariance = (source - source_centre).T @ (target - target_centre)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rotation = vt.T @ np.diag([1.0, 1.0, sign]) @ u.T
    return rotation, target_centre - rotation @ source_centre


def sequence_name(frames: Sequence[GaussianScene]) -> str:
    """The folder the frames were read from (for messages), or "<sequence in memory>"."""
    sources = {str(Path(frame.metadata.source).parent) for frame in frames if frame.metadata.source}
    return sources.pop() if len(sources) == 1 else "<sequence in memory>"


def _frame_name(frame: GaussianScene, index: int) -> str:
    return Path(frame.metadata.source).name if frame.metadata.source else f"frame {index}"


def _stacked_means(frames: Sequence[GaussianScene]) -> np.ndarray:  # -> [T, N, 3]
    if len(frames) < 2:
        raise BundleError(f"{sequence_name(frames)}: a dynamic sequence needs at least 2 frames, got {len(frames)}")
    first = len(frames[0])
    odd = [(index, frame) for index, frame in enumerate(frames) if len(frame) != first]
    if odd:
        index, frame = odd[0]
        raise BundleError(
            f"{sequence_name(frames)}: the frames hold different numbers of Gaussians ({_frame_name(frame, index)}: {len(frame)}, "
            f"{_frame_name(frames[0], 0)}: {first}; {len(odd)} of {len(frames)} frames differ): separation needs Gaussian i of every "
            "frame to be the same Gaussian (a dynamic 3DGS with per-time parameters); per-frame reconstructions are not supported"
        )
    return np.stack([frame.means.detach().cpu().numpy().astype(np.float64) for frame in frames])


def _components(features: np.ndarray, radius: float) -> np.ndarray:  # [M, D] -> [M] component ids
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = cKDTree(features).query_pairs(radius, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(features), len(features)))
    return connected_components(graph, directed=False)[1]


def separate_sequence(frames: Sequence[GaussianScene], config: SeparationConfig = SeparationConfig()) -> SequenceSplit:
    """Split a sequence into static Gaussians and moving clusters with per-time rigid poses (module docstring)."""
    from scipy.spatial import cKDTree

    means = _stacked_means(frames)  # [T, N, 3]
    steps, count = means.shape[:2]
    median = np.median(means, axis=0)
    deviation = np.linalg.norm(means - median[None], axis=2).max(axis=0)  # [N]
    radius = float(np.median(np.linalg.norm(median - np.median(median, axis=0), axis=1)))
    noise = float(np.percentile(deviation, 25))
    threshold = max(config.static_noise_factor * noise, config.min_motion_fraction * radius)
    moving = deviation > threshold
    clusters: list[MovingCluster] = []
    dropped = 0
    moving_indices = np.flatnonzero(moving)
    spacing = 0.0
    if len(moving_indices) >= 2:
        first = means[0, moving_indices]
        spacing = float(np.median(cKDTree(first).query(first, k=2)[0][:, 1]))
        link = config.link_factor * max(spacing, noise, 1e-9)
        # Trajectories as points in 3T dimensions: a rigid mover's neighbours stay neighbours.
        trajectories = means[:, moving_indices].transpose(1, 0, 2).reshape(len(moving_indices), 3 * steps)
        component = _components(trajectories, link * np.sqrt(steps))
        ids, sizes = np.unique(component, return_counts=True)
        for rank, cluster_id in enumerate(ids[np.argsort(-sizes, kind="stable")]):
            members = moving_indices[component == cluster_id]
            if len(members) < config.min_cluster_gaussians:
                dropped += len(members)
                moving[members] = False
                continue
            mask = np.zeros(count, dtype=bool)
            mask[members] = True
            rotations, translations, residuals = np.zeros((steps, 3, 3)), np.zeros((steps, 3)), np.zeros(steps)
            for t in range(steps):
                rotations[t], translations[t] = kabsch(means[0, members], means[t, members])
                fitted = means[0, members] @ rotations[t].T + translations[t]
                residuals[t] = np.sqrt(np.mean(np.sum((fitted - means[t, members]) ** 2, axis=1)))
            size = float(np.sqrt(np.mean(np.sum((means[0, members] - means[0, members].mean(0)) ** 2, axis=1))))
            rigid = bool(residuals.max() <= max(config.rigid_tolerance * size, 3.0 * noise))
            clusters.append(MovingCluster(f"mover_{len(clusters)}", mask, rotations, translations, residuals, rigid))
    static_mask = ~moving
    evidence = {
        "frames": steps,
        "files": [_frame_name(frame, index) for index, frame in enumerate(frames)],
        "gaussians": count,
        "static": int(static_mask.sum()),
        "moving": int(count - static_mask.sum()),
        "returned_to_static_small_clusters": dropped,
        "noise_level": noise,
        "scene_radius": radius,
        "motion_threshold": threshold,
        "moving_spacing": spacing,
        "static_deviation_p99": float(np.percentile(deviation[static_mask], 99)) if static_mask.any() else None,
        "clusters": [
            {
                "name": c.name,
                "gaussians": int(c.mask.sum()),
                "rigid": c.rigid,
                "max_residual": float(c.residuals.max()),
                "path_length": float(np.sum(np.linalg.norm(np.diff(c.translations + 0.0, axis=0), axis=1))),
                "min_deviation": float(deviation[c.mask].min()),
            }
            for c in clusters
        ],
        "config": {k: getattr(config, k) for k in SeparationConfig.__dataclass_fields__},
    }
    return SequenceSplit(list(frames), static_mask, clusters, deviation, evidence)


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    union = np.logical_or(predicted, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(predicted, truth).sum() / union)


# ------------------------------------------------------------------------------- the bundle part
def world_track(cluster: MovingCluster, transform: np.ndarray, initial_position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The body frame's world poses of ``cluster`` ([T, 3] positions, [T, 4] xyzw orientations).

    ``transform`` is the bundle's source -> world similarity (x_w = s Q x + b) and
    ``initial_position`` the body frame's world position at frame 0 (its orientation there is the
    identity, as ``build_bundle`` writes objects). A body point p at time t is at
    ``R'_t p + R'_t (c0 - b) + s Q t_t + b`` with ``R'_t = Q R_t Q^T``.
    """
    linear, offset = transform[:3, :3], transform[:3, 3]
    scale = float(np.cbrt(np.linalg.det(linear)))
    rotation = linear / scale
    world_rotations = rotation[None] @ cluster.rotations @ rotation.T[None]
    positions = (np.einsum("tij,j->ti", world_rotations, initial_position - offset)
                 + scale * cluster.translations @ rotation.T + offset)
    orientations = matrix_to_quat_xyzw(world_rotations)
    return positions, orientations


def dynamic_bundle_part(split: SequenceSplit, transform: np.ndarray, object_positions: dict[str, np.ndarray], fps: float):
    """The manifest's ``dynamic`` part (``DynamicPart``) and a function writing the ``dynamic/`` files into a bundle folder.

    ``object_positions`` maps each cluster name to its built object's world position at frame 0.
    Rigid clusters get ``dynamic/<name>/track.csv``; non-rigid ones also their per-time Gaussians
    in the world frame (``dynamic/<name>/frames/frame_<t>.ply``).
    """
    from lyra_sim.bundle.dynamic import DYNAMIC_FORMAT_VERSION, TRACK_COLUMNS
    from lyra_sim.bundle.manifest import DynamicCluster, DynamicPart

    if not fps > 0:
        raise BundleError(f"the sequence's frame rate must be > 0 frames per second, got {fps}")
    steps = len(split.frames)
    times = np.arange(steps, dtype=np.float64) / fps
    clusters, tracks = [], {}
    scale = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    for cluster in split.clusters:
        positions, orientations = world_track(cluster, transform, object_positions[cluster.name])
        tracks[cluster.name] = np.concatenate([times[:, None], positions, orientations], axis=1)
        clusters.append(DynamicCluster(
            name=cluster.name, object=cluster.name, kind="rigid" if cluster.rigid else "frames",
            track=f"dynamic/{cluster.name}/track.csv", frames=None if cluster.rigid else f"dynamic/{cluster.name}/frames",
            max_residual_m=float(cluster.residuals.max() * scale),
        ))
    part = DynamicPart(version=DYNAMIC_FORMAT_VERSION, fps=float(fps), frames=steps, duration_s=float(times[-1]), clusters=clusters)

    def write(folder: Path) -> None:
        from lyra_sim.scene.io import save_scene
        from lyra_sim.scene.transforms import transform_scene

        linear = transform[:3, :3]
        scale = float(np.cbrt(np.linalg.det(linear)))
        for cluster, item in zip(split.clusters, part.clusters):
            target = folder / item.track
            target.parent.mkdir(parents=True, exist_ok=True)
            np.savetxt(target, tracks[cluster.name], delimiter=",", header=",".join(TRACK_COLUMNS), comments="", fmt="%.9g")
            if item.frames is not None:
                for t, frame in enumerate(split.frames):
                    world = transform_scene(frame[torch.from_numpy(cluster.mask)], linear / scale, transform[:3, 3], scale)
                    save_scene(world, folder / item.frames / f"frame_{t:04d}.ply", cameras=False)

    return part, write


def build_dynamic_bundle(
    frames: Sequence[GaussianScene],
    out_dir,
    config=None,
    *,
    fps: float = 24.0,
    separation: SeparationConfig = SeparationConfig(),
    progress: bool = True,
) -> tuple[Path, SequenceSplit]:
    """A dynamic SimBundle from a sequence: separate it, build the static bundle from the static
    Gaussians (temporal median) with one object per moving cluster (at frame 0), add ``dynamic/``.

    Returns ``(bundle path, split)``; the split's evidence is also stored in the manifest's
    ``build.separation``. ``config`` is a ``BuildConfig`` (default: ``BuildConfig()``).
    """
    from lyra_sim.converters.bundle import build_bundle
    from lyra_sim.converters.config import BuildConfig

    split = separate_sequence(frames, separation)
    if not split.clusters:
        raise BundleError(
            f"{sequence_name(frames)}: the sequence of {len(split.frames)} frames has no moving cluster (largest deviation "
            f"{float(split.deviation.max()):.4g} source units, threshold {split.evidence['motion_threshold']:.4g}): build one frame as a static bundle instead"
        )
    scene = split.static_scene()

    def dynamic(transform: np.ndarray, positions: dict[str, np.ndarray]):
        entry, write = dynamic_bundle_part(split, transform, positions, fps)
        return entry, write, split.evidence

    config = config or BuildConfig()
    if config.kind == "auto":  # moving things need scenery to move in: never an object scan
        config = dataclasses.replace(config, kind="scene")
    elif config.kind == "object":
        raise BundleError("a dynamic bundle is a scene bundle (its moving clusters are objects in it); kind='object' cannot hold them")
    masks = {cluster.name: cluster.mask for cluster in split.clusters}
    path = build_bundle(scene, out_dir, config, object_masks=masks, progress=progress, dynamic=dynamic)
    return Path(path), split
