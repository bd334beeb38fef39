"""``ObservationPipeline``: what an env's camera sees, apart from its lifecycle and physics.

From a PyBullet client and a bundle's Gaussians it builds the composed splat scene (background,
object splats, robot links as Gaussians), keeps it in step with the bodies (pose sync), turns a
``CameraMount`` into a ``Camera``, renders (splats, a TinyRenderer composite of the mesh bodies,
or TinyRenderer only) and assembles the observation dict. ``lyra_sim.envs.base.LyraSimEnv``
owns one; ``lyra_sim.envs.vector`` renders many pipelines' cameras in one call and hands each
its slice of the result.

This module may import numpy, torch, pybullet and lyra_sim (render, scene, sim).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pybullet
import torch

from lyra_sim.envs import constants
from lyra_sim.render.camera import Camera
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.sim.compositor import ComposedScene, RigidPart, composite_by_depth, tinyrenderer_images
from lyra_sim.sim.robot_splats import body_link_splats, link_frame_poses


@dataclass(frozen=True)
class CameraMount:
    """Where a camera sits: fixed in the world, or mounted on a link of the robot.

    Attributes:
        position: camera centre, in world coordinates (fixed) or in the link's URDF frame (mounted).
        target: the point looked at, in the same frame as ``position``.
        up: the image's up direction, in the same frame.
        link: None for a fixed camera; otherwise a link name of the robot, or "base".
        fov_deg: vertical field of view.
        far: far clip plane in metres (None: from the bundle's size).
    """

    position: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    link: str | None = None
    fov_deg: float = 60.0
    far: float | None = None


@dataclass
class MeshBody:
    """A PyBullet body with no Gaussians in the bundle (the robot, a goal marker)."""

    name: str
    body_id: int
    label: int
    link_indices: list[int] = dataclasses.field(default_factory=list)  # links turned into splat parts


@dataclass(frozen=True)
class RenderSettings:
    """How observations are rendered (the env arguments of the same names)."""

    width: int
    height: int
    observation_modes: tuple[str, ...]
    robot_appearance: str  # "splats" | "mesh"
    renderer: str  # "splat" | "tinyrenderer"
    backend: str
    sh_degree: int | str | None  # 0-3, None (all the bundle has) or "auto" (see observation_sh_degree)
    background_color: torch.Tensor  # [3]

    @property
    def observation_sh_degree(self) -> int | None:
        """SH degree of observation renders: with "auto", 0 for images of at most
        ``constants.AUTO_SH0_MAX_SIZE`` px a side (view-dependent colour is what costs most in
        projection, and at those sizes it is below the PSNR bound: see ``constants``), else all."""
        if self.sh_degree == "auto":
            return 0 if max(self.width, self.height) <= constants.AUTO_SH0_MAX_SIZE else None
        return self.sh_degree

    @property
    def view_sh_degree(self) -> int | None:
        """SH degree of ``render()`` (third-person) views: all the bundle has with "auto"."""
        return None if self.sh_degree == "auto" else self.sh_degree


class ObservationPipeline:
    """Composed scene, pose sync, camera mount, rendering, compositing and the observation dict.

    Args:
        client_id: the env's PyBullet client.
        background: the bundle's static Gaussians (world frame).
        objects: (name, body id, body-frame Gaussians, instance label) of every bundle object.
        mesh_bodies: bodies without Gaussians (robot, markers); with ``robot_appearance="splats"``
            their links are surface-sampled into Gaussians that follow them.
        label_of_body: instance label of every PyBullet body (for TinyRenderer segmentation).
        camera_mount: the observation camera; ``robot_id`` and ``link_index_by_name`` resolve a
            mounted one.
        camera_far: far plane of the observation camera (m).
        settings: sizes, modes and renderer choices.
    """

    def __init__(
        self,
        client_id: int,
        background: GaussianScene,
        objects: Sequence[tuple[str, int, GaussianScene, int]],
        mesh_bodies: Sequence[MeshBody],
        label_of_body: dict[int, int],
        camera_mount: CameraMount,
        camera_far: float,
        settings: RenderSettings,
        robot_id: int | None = None,
        link_index_by_name: dict[str, int] | None = None,
    ) -> None:
        self.client_id = client_id
        self.settings = settings
        self.mesh_bodies = list(mesh_bodies)
        self.camera_mount, self.camera_far = camera_mount, float(camera_far)
        self.robot_id = robot_id
        self.link_index_by_name = dict(link_index_by_name or {})
        parts = [RigidPart(f"object:{name}", scene, label) for name, _, scene, label in objects]
        self.part_sources: list[tuple[int, int]] = [(body_id, -1) for _, body_id, _, _ in objects]
        if settings.robot_appearance == "splats":
            for mesh_body in self.mesh_bodies:
                for link in body_link_splats(client_id, mesh_body.body_id, spacing=constants.ROBOT_SPLAT_SPACING):
                    parts.append(RigidPart(f"{mesh_body.name}:{link.link_index}", link.scene, mesh_body.label))
                    self.part_sources.append((mesh_body.body_id, link.link_index))
                    mesh_body.link_indices.append(link.link_index)
        self.composed = ComposedScene(background, parts, static_label=constants.BACKGROUND_LABEL)
        self._mesh_body_ids = np.array([b.body_id for b in self.mesh_bodies], dtype=np.int32)
        body_ids = np.array(list(label_of_body), dtype=np.int32)
        self._segmentation_lookup = (body_ids, np.array(list(label_of_body.values()), dtype=np.int32))
        # body -> the part rows it drives, in part order (one PyBullet query per body)
        self._links_of_body: dict[int, list[int]] = {}
        for body_id, link_index in self.part_sources:
            self._links_of_body.setdefault(body_id, []).append(link_index)

    # ----------------------------------------------------------------- scene and camera
    def sync_poses(self) -> None:
        """Move the Gaussians of every object and splatted link to its body's current pose."""
        if not self.part_sources:
            return
        pose_of = {}
        for body_id, links in self._links_of_body.items():
            positions, orientations = link_frame_poses(self.client_id, body_id, links)
            pose_of.update({(body_id, link): (positions[i], orientations[i]) for i, link in enumerate(links)})
        self.composed.set_poses(np.stack([pose_of[s][0] for s in self.part_sources]),
                                np.stack([pose_of[s][1] for s in self.part_sources]))

    def camera(self) -> Camera:
        """The observation camera at the current state (one camera, ``width`` x ``height``)."""
        mount = self.camera_mount
        position, target, up = (np.asarray(v, dtype=np.float64) for v in (mount.position, mount.target, mount.up))
        if mount.link is not None:
            link_index = self.link_index_by_name.get(mount.link)
            if link_index is None or self.robot_id is None:
                raise ValueError(f"camera link {mount.link!r} is not a link of the robot; links: {sorted(self.link_index_by_name)}")
            link_position, link_orientation = link_frame_poses(self.client_id, self.robot_id, [link_index])
            rotation = np.asarray(pybullet.getMatrixFromQuaternion(link_orientation[0])).reshape(3, 3)
            position = rotation @ position + link_position[0]
            target = rotation @ target + link_position[0]
            up = rotation @ up
        return Camera.look_at(position, target, up, fov_deg=mount.fov_deg, width=self.settings.width,
                              height=self.settings.height, near=constants.CAMERA_NEAR, far=self.camera_far)

    def splat_modes(self) -> tuple[str, ...]:
        """Render modes the observation needs from the splat renderer."""
        settings = self.settings
        modes = ["rgb"]
        if "depth" in settings.observation_modes or settings.robot_appearance == "mesh":
            modes.append("depth")
        if settings.robot_appearance == "mesh":
            modes.append("alpha")
        if "instance" in settings.observation_modes:
            modes.append("instance")
        return tuple(modes)

    # ----------------------------------------------------------------- rendering
    def render(self, camera: Camera, modes: Sequence[str], sh_degree: int | None = None) -> dict[str, torch.Tensor]:
        """A splat render of the composed scene (prepared once for the CPU backend) at
        ``sh_degree`` (None: all the bundle has)."""
        from lyra_sim.render.api import render

        labels = self.composed.labels if "instance" in modes else None
        return render(self.composed.prepared, camera, modes=tuple(modes), backend=self.settings.backend,
                      background=self.settings.background_color, sh_degree=sh_degree, labels=labels)

    def render_observation(self) -> dict[str, torch.Tensor] | None:
        """The splat render an observation is made from (None with ``renderer="tinyrenderer"``)."""
        if self.settings.renderer == "tinyrenderer":
            return None
        return self.render(self.camera(), self.splat_modes(), self.settings.observation_sh_degree)

    def third_person(self, camera: Camera) -> np.ndarray:  # uint8 [H, W, 3]
        """The ``render()`` view of an env from ``camera``."""
        if self.settings.renderer == "tinyrenderer":
            return tinyrenderer_images(self.client_id, camera, segmentation=False)["rgb"]
        mesh = self.settings.robot_appearance == "mesh"
        rendered = self.render(camera, ("rgb", "alpha", "depth") if mesh else ("rgb",), self.settings.view_sh_degree)
        return to_uint8(self.composite_mesh_bodies(rendered, camera, 0)["rgb"] if mesh else rendered["rgb"][0])

    def composite_mesh_bodies(self, rendered: dict[str, torch.Tensor], camera: Camera, index: int) -> dict[str, torch.Tensor]:
        """Per-pixel depth composite of the TinyRenderer image of the mesh bodies over splat render ``index``."""
        images = tinyrenderer_images(self.client_id, camera, segmentation=True)
        mask = torch.from_numpy(np.isin(images["segmentation"], self._mesh_body_ids))[..., None]
        rgb, depth, mesh_wins = composite_by_depth(
            rendered["rgb"][index], rendered["depth"][index], rendered["alpha"][index],
            torch.from_numpy(images["rgb"]).float() / 255.0, torch.from_numpy(images["depth"])[..., None], mask,
        )
        result = {"rgb": rgb, "depth": depth}
        if "instance" in rendered:
            labels = torch.from_numpy(self.segmentation_labels(images["segmentation"]))[..., None]
            result["instance"] = torch.where(mesh_wins, labels, rendered["instance"][index])
        return result

    def segmentation_labels(self, segmentation: np.ndarray) -> np.ndarray:  # [H, W] -> [H, W] int32
        """Instance labels of a TinyRenderer segmentation image (body ids; -1: no body)."""
        body_ids, labels = self._segmentation_lookup
        lookup = np.full(max(int(body_ids.max()), int(segmentation.max()), 0) + 2, -1, dtype=np.int32)
        lookup[body_ids] = labels
        return lookup[np.where(segmentation < 0, -1, segmentation)]

    # ----------------------------------------------------------------- the observation
    def images(self, rendered: dict[str, torch.Tensor] | None, index: int = 0) -> dict[str, np.ndarray]:
        """The image entries of the observation from render ``index`` of ``rendered`` (None:
        TinyRenderer only): ``rgb`` uint8, ``depth`` float32 metres clipped to the far plane,
        ``instance`` int32, as asked by ``observation_modes``."""
        settings = self.settings
        wanted = settings.observation_modes
        if rendered is None:
            images = tinyrenderer_images(self.client_id, self.camera(), segmentation="instance" in wanted)
            rgb, depth = images["rgb"], images["depth"][..., None]
            instance = self.segmentation_labels(images["segmentation"])[..., None] if "segmentation" in images else None
        else:
            if settings.robot_appearance == "mesh" and len(self.mesh_bodies):
                one = self.composite_mesh_bodies(rendered, self.camera(), index)
            else:
                one = {key: value[index] for key, value in rendered.items()}
            rgb = to_uint8(one["rgb"]) if "rgb" in wanted else None
            depth = one["depth"].numpy() if "depth" in one else None
            instance = one["instance"].numpy().astype(np.int32) if "instance" in one else None
        observation: dict[str, np.ndarray] = {}
        if "rgb" in wanted:
            observation["rgb"] = rgb
        if "depth" in wanted:
            observation["depth"] = np.clip(np.nan_to_num(depth, nan=0.0), 0.0, self.camera_far).astype(np.float32)
        if "instance" in wanted:
            observation["instance"] = instance
        return observation


def to_uint8(rgb: torch.Tensor) -> np.ndarray:  # [H, W, 3] float in [0, 1] -> uint8
    return (rgb.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).numpy()
