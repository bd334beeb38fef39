"""The ``lyra-sim view`` web viewer: a viser server showing a scene file, a bundle or an episode.

:class:`Viewer` adds layers to a ``viser.ViserServer`` (every layer a named scene node with a
GUI toggle) and a draggable camera whose view our own splat renderer draws into GUI panels, so
what the browser's WebGL splats show can be compared with what an env's camera sees.
:func:`serve` is what the command runs: build the viewer, print the URL, wait for Ctrl+C.

Scene node names are stable (tests and users' scripts look them up):

========================  ==========================================================
``/scene/...``            a scene file: ``splats``, ``dropped``, ``bounds``,
                          ``robust_bounds``, ``floor``, ``up`` (``cameras``: centres only)
``/bundle/...``           a bundle: ``splats``, ``collision``, ``visual``, ``floor``,
                          ``spawn_region``, ``bounds``
``/objects/<name>``       an object's body frame, with ``splats``, ``hulls/<i>``, ``label``
``/cameras/<i>``          capture cameras, when the bundle or scene knows them
``/episode/<body>/<i>``   the robot's and markers' links over an episode
``/render_camera``        the draggable camera (transform gizmo) and its ``frustum``
========================  ==========================================================

This module imports viser lazily (the ``[viewer]`` extra) and may import everything in lyra_sim.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lyra_sim.errors import MissingDependencyError
from lyra_sim.rotations import xyzw_to_wxyz
from lyra_sim.viewer import layers

_COLLISION_COLOUR = (255, 140, 40)
_SPAWN_COLOUR = (40, 200, 90)
_BOUNDS_COLOUR = (120, 120, 120)
_DROPPED_COLOUR = (230, 30, 30)
_HULL_COLOURS = [(66, 135, 245), (245, 66, 170), (160, 90, 240), (40, 190, 200), (240, 200, 40), (120, 200, 60)]


def import_viser():
    """The viser module, or a clear error naming the extra to install."""
    try:
        import viser
    except ModuleNotFoundError as error:
        if error.name != "viser":
            raise
        raise MissingDependencyError("lyra-sim view needs viser: pip install 'lyra-sim[viewer]' (or pip install viser)") from None
    return viser


@dataclass
class RenderSettings:
    """The draggable camera's image: size in pixels, vertical field of view, backend."""

    width: int = 256
    height: int = 192
    fov_deg: float = 60.0
    backend: str = "cpu"


class Viewer:
    """Layers and controls on a viser server. Add content with :meth:`show_scene_file`,
    :meth:`show_bundle` and :meth:`show_episode`, then :meth:`add_render_camera`.

    Args:
        server: a running ``viser.ViserServer``.
        max_splats: most Gaussians sent to the browser per splat layer (a fixed random subset
            beyond it); our own renders always use every Gaussian.
        render: settings of the draggable camera's image.
    """

    def __init__(self, server, *, max_splats: int | None = 2_000_000, render: RenderSettings = RenderSettings()) -> None:
        self.server = server
        self.max_splats = max_splats
        self.render_settings = render
        self.nodes: dict[str, Any] = {}
        self.toggles: dict[str, Any] = {}
        self.info: list[Any] = []  # the markdown blocks of the Info folder
        self._render_scene = None  # callable () -> (GaussianScene, labels) for our renderer
        self._scene_extent = 1.0
        self._scene_centre = np.zeros(3)
        self._object_frames: dict[str, Any] = {}
        # What our renderer draws for a bundle: the background plus rigid parts (objects, and an
        # episode's robot links as surface Gaussians), each with its current pose (xyzw).
        self._background = None
        self._parts: list = []
        self._part_poses: list[tuple[np.ndarray, np.ndarray]] = []
        self._composed = None
        self._render_request = threading.Event()
        self._render_lock = threading.Lock()
        self._stopping = threading.Event()
        self.renders = 0
        self._info_folder = server.gui.add_folder("Info", order=0)
        self._layers_folder = server.gui.add_folder("Layers", order=1)

    # ------------------------------------------------------------------ helpers
    def _add(self, name: str, handle) -> Any:
        self.nodes[name] = handle
        return handle

    def _toggle(self, label: str, names: list[str], initial: bool = True, hint: str | None = None):
        """A checkbox showing or hiding the scene nodes ``names``."""
        for name in names:
            self.nodes[name].visible = initial
        with self._layers_folder:
            checkbox = self.server.gui.add_checkbox(label, initial, hint=hint)

        @checkbox.on_update
        def _(_event) -> None:
            for name in names:
                self.nodes[name].visible = checkbox.value

        self.toggles[label] = checkbox
        return checkbox

    def _add_splats(self, name: str, scene, **pose) -> layers.SplatArrays:
        arrays = layers.splat_arrays(scene, self.max_splats)
        self._add(name, self.server.scene.add_gaussian_splats(
            name, centers=arrays.centers, covariances=arrays.covariances, rgbs=arrays.rgbs, opacities=arrays.opacities, **pose))
        return arrays

    def _frame_view(self, low: np.ndarray, high: np.ndarray, up: np.ndarray) -> None:
        """Start the browser's camera looking at the box [low, high] from above a corner."""
        centre, extent = 0.5 * (low + high), float(np.linalg.norm(high - low))
        self._scene_centre, self._scene_extent = centre, max(extent, 1e-3)
        up = up / np.linalg.norm(up)
        side = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
        side /= np.linalg.norm(side)
        forward = np.cross(side, up)
        eye = centre + 0.5 * extent * (0.7 * side - 0.8 * forward + 1.0 * up)
        self.server.scene.set_up_direction(tuple(up))
        camera = self.server.initial_camera
        camera.position, camera.look_at, camera.up = tuple(eye), tuple(centre), tuple(up)
        # Our camera starts inside the box, on the far side from the browser's, looking across
        # it slightly downwards: what a robot standing there would see.
        size = high - low

        def along(direction: np.ndarray) -> float:  # the box's extent along a direction
            return float(np.abs(direction) @ size)

        self._render_eye = centre - 0.35 * along(side) * side + 0.35 * along(forward) * forward + 0.05 * along(up) * up
        self._render_target = centre - 0.15 * along(up) * up
        self._render_up = up

    def _add_cameras(self, frusta: list[layers.CameraFrustum], scale: float) -> list[str]:
        """Capture cameras as small frusta under ``/cameras``; returns their node names."""
        names = []
        for index, frustum in enumerate(frusta):
            name = f"/cameras/{index}"
            self._add(name, self.server.scene.add_camera_frustum(
                name, fov=frustum.fov, aspect=frustum.aspect, scale=scale, color=(20, 20, 20), thickness=1.5,
                thickness_units="screen", wxyz=frustum.wxyz, position=frustum.position))
            names.append(name)
        return names

    def _markdown(self, text: str) -> None:
        with self._info_folder:
            self.info.append(self.server.gui.add_markdown(text))

    # ------------------------------------------------------------------ scene file
    def show_scene_file(self, path) -> layers.SceneAnalysis:
        """A splat file in its own frame: splats, bounds, the detected up direction and floor,
        and the Gaussians the bundle builder would drop (floaters, far field)."""
        analysis = layers.analyse_scene_file(path)
        scene = analysis.scene
        low, high = analysis.bounds
        p01, p99 = analysis.robust_bounds
        arrays = self._add_splats("/scene/splats", scene)
        self._add("/scene/bounds", self.server.scene.add_line_segments(
            "/scene/bounds", layers.box_segments(low, high), _BOUNDS_COLOUR, thickness=2.0, thickness_units="screen"))
        self._add("/scene/robust_bounds", self.server.scene.add_line_segments(
            "/scene/robust_bounds", layers.box_segments(p01, p99), (60, 60, 200), thickness=2.0, thickness_units="screen"))
        size = float(np.max(p99 - p01))
        vertices, faces = layers.plane_quad(analysis.floor_centre, analysis.up, 0.6 * size)
        self._add("/scene/floor", self.server.scene.add_mesh_simple(
            "/scene/floor", vertices, faces, color=_SPAWN_COLOUR, opacity=0.35, side="double"))
        arrow = np.stack([analysis.floor_centre, analysis.floor_centre + 0.4 * size * analysis.up])[None]
        self._add("/scene/up", self.server.scene.add_arrows(
            "/scene/up", arrow.astype(np.float32), (30, 90, 230), shaft_radius=0.01 * size, head_radius=0.03 * size, head_length=0.06 * size))
        dropped_points = scene.means[torch.from_numpy(analysis.dropped)].detach().numpy().astype(np.float32)
        self._add("/scene/dropped", self.server.scene.add_point_cloud(
            "/scene/dropped", dropped_points.reshape(-1, 3), _DROPPED_COLOUR, point_size=0.006 * size, point_shape="circle"))
        cameras = self._add_cameras(_scene_cameras(scene), 0.04 * size)
        camera_positions = scene.metadata.extras.get("camera_positions")
        self._toggle("Splats", ["/scene/splats"])
        self._toggle("Bounds (all)", ["/scene/bounds"], hint="box around every valid Gaussian")
        self._toggle("Bounds (1-99 %)", ["/scene/robust_bounds"])
        self._toggle("Detected floor and up", ["/scene/floor", "/scene/up"])
        self._toggle("Dropped by build (red)", ["/scene/dropped"], hint="Gaussians normalisation removes: transparent, far field, outliers, small clusters, below the floor")
        if not cameras and camera_positions is not None and len(camera_positions):  # centres only, no orientation
            points = np.asarray(camera_positions, np.float32).reshape(-1, 3)
            self._add("/scene/cameras", self.server.scene.add_point_cloud("/scene/cameras", points, (20, 20, 20), point_size=0.02 * size))
            cameras = ["/scene/cameras"]
        if cameras:
            self._toggle("Capture cameras", cameras)
        record = analysis.steps["up_and_floor"]
        removed = {k: v["removed"] for k, v in analysis.steps.items() if isinstance(v, dict) and v.get("removed")}
        angle = record.get("angle_from_prior_deg")
        self._markdown("\n".join([
            f"**{Path(path).name}** ({scene.metadata.format}, frame `{scene.metadata.frame}`)",
            f"- {len(scene):,} Gaussians" + (f" ({len(arrays):,} sent to the browser)" if len(arrays) < len(scene) else ""),
            f"- size {' x '.join(f'{v:.3g}' for v in high - low)} (1-99 %: {' x '.join(f'{v:.3g}' for v in p99 - p01)}) source units",
            f"- up in the file: ({', '.join(f'{v:+.3f}' for v in analysis.up)}), prior {record['prior_source']}"
            + (f", {angle:.1f}° from it" if angle is not None else ""),
            f"- floor: up · x = {analysis.floor_offset:.4g} ({analysis.floor_support:,} Gaussians on it)",
            f"- the build would drop {int(analysis.dropped.sum()):,}: " + (", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in removed.items()) or "none"),
        ]))
        self._frame_view(p01, p99, analysis.up)
        self._render_scene = lambda: scene
        return analysis

    # ------------------------------------------------------------------ bundle
    def show_bundle(self, bundle) -> None:
        """A SimBundle: splats, collision and visual meshes, objects (hulls, splats, names),
        spawn region, floor, bounds and the capture cameras when it has them."""
        from lyra_sim.geometry.mesh import read_obj
        from lyra_sim.sim.compositor import RigidPart

        background = bundle.background_scene()
        low, high = bundle.bounds
        floor = bundle.floor_height
        self._add_splats("/bundle/splats", background)
        collision = _merge_parts(read_obj(bundle.collision_mesh))
        self._add("/bundle/collision", self.server.scene.add_mesh_simple(
            "/bundle/collision", collision.vertices.astype(np.float32), collision.faces.astype(np.uint32),
            color=_COLLISION_COLOUR, opacity=0.5, side="double", flat_shading=True))
        visual = _merge_parts(read_obj(bundle.root / bundle.manifest.background.visual_mesh))
        self._add("/bundle/visual", self.server.scene.add_mesh_trimesh("/bundle/visual", _coloured_trimesh(visual)))
        extent = high - low
        self._add("/bundle/floor", self.server.scene.add_grid(
            "/bundle/floor", width=float(extent[0]) + 1.0, height=float(extent[1]) + 1.0, plane="xy",
            cell_size=0.25, section_size=1.0, position=(float(0.5 * (low[0] + high[0])), float(0.5 * (low[1] + high[1])), floor)))
        spawn_low, spawn_high, spawn_z = bundle.spawn_region
        self._add("/bundle/spawn_region", self.server.scene.add_line_segments(
            "/bundle/spawn_region", layers.rectangle_segments(spawn_low, spawn_high, spawn_z + 0.003), _SPAWN_COLOUR,
            thickness=4.0, thickness_units="screen"))
        self._add("/bundle/bounds", self.server.scene.add_line_segments(
            "/bundle/bounds", layers.box_segments(low, high), _BOUNDS_COLOUR, thickness=2.0, thickness_units="screen"))

        hull_nodes, splat_nodes, label_nodes = [], [], []
        for index, obj in enumerate(bundle.objects):
            frame_name = f"/objects/{obj.name}"
            frame = self._add(frame_name, self.server.scene.add_frame(
                frame_name, show_axes=False, wxyz=xyzw_to_wxyz(obj.orientation_xyzw), position=obj.position))
            self._object_frames[obj.name] = frame
            local = obj.scene()
            self._add_splats(f"{frame_name}/splats", local)
            splat_nodes.append(f"{frame_name}/splats")
            colour = _HULL_COLOURS[index % len(_HULL_COLOURS)]
            for hull_index, (_, hull) in enumerate(read_obj(obj.collision_mesh)):
                name = f"{frame_name}/hulls/{hull_index}"
                self._add(name, self.server.scene.add_mesh_simple(
                    name, hull.vertices.astype(np.float32), hull.faces.astype(np.uint32), color=colour, opacity=0.55, flat_shading=True))
                hull_nodes.append(name)
            top = float(obj.size[2]) / 2 + 0.05
            self._add(f"{frame_name}/label", self.server.scene.add_label(
                f"{frame_name}/label", f"{obj.name} ({obj.mass:.2f} kg, {obj.hulls} hulls)", position=(0.0, 0.0, top)))
            label_nodes.append(f"{frame_name}/label")
            self._add_render_part(RigidPart(f"object:{obj.name}", local, index + 1), obj.position, obj.orientation_xyzw)
        self._background = background
        cameras = self._add_cameras(_bundle_cameras(bundle), 0.04 * float(np.linalg.norm(extent)))

        self._toggle("Splats", ["/bundle/splats"] + splat_nodes)
        self._toggle("Collision mesh", ["/bundle/collision"], hint="the static concave mesh PyBullet collides with")
        with self._layers_folder:
            opacity = self.server.gui.add_slider("Collision opacity", 0.0, 1.0, 0.05, 0.5)
            wireframe = self.server.gui.add_checkbox("Collision wireframe", False)

        @opacity.on_update
        def _(_event) -> None:
            self.nodes["/bundle/collision"].opacity = float(opacity.value) if opacity.value < 1.0 else None

        @wireframe.on_update
        def _(_event) -> None:
            self.nodes["/bundle/collision"].wireframe = bool(wireframe.value)

        self.toggles["Collision opacity"], self.toggles["Collision wireframe"] = opacity, wireframe
        self._toggle("Visual mesh", ["/bundle/visual"], initial=False, hint="the vertex-coloured mesh of the scenery")
        if hull_nodes:
            self._toggle("Object hulls", hull_nodes, hint="convex parts of each movable object")
            self._toggle("Object names", label_nodes)
        self._toggle("Spawn region", ["/bundle/spawn_region"])
        self._toggle("Floor", ["/bundle/floor"])
        self._toggle("Bounds", ["/bundle/bounds"], initial=False)
        if cameras:
            self._toggle("Capture cameras", cameras)

        from lyra_sim.bundle import summarize_bundle

        # The numbers `lyra-sim info BUNDLE` prints, as a list for the narrow panel.
        summary = summarize_bundle(bundle.root)
        source = summary.get("source") or {}
        rows = {
            "source": f"{Path(source['path']).name if source.get('path') else 'n/a'} ({source.get('format') or 'n/a'}, frame {source.get('frame')})",
            "size": " x ".join(f"{v:.2f}" for v in summary["size"]) + f" m, floor at z = {summary['floor_height']:.3f}",
            "Gaussians": f"{len(background):,} background",
            "collision mesh": f"{len(collision.faces):,} faces" + (", ground slab under the floor" if summary["ground_slab"] else ""),
            "spawn region": f"x {spawn_low[0]:.2f}..{spawn_high[0]:.2f}, y {spawn_low[1]:.2f}..{spawn_high[1]:.2f} m",
            "objects": ", ".join(f"{o['name']} {o['mass']:.2f} kg / {o['hulls']} hulls" for o in summary["objects"]) or "none",
        }
        manifest_extras = bundle.manifest.extras  # keys issue 13 adds beside the typed fields
        if manifest_extras.get("up_confidence") is not None:
            rows["up confidence"] = f"{manifest_extras['up_confidence']}"
        for index, warning in enumerate(manifest_extras.get("warnings") or []):
            rows[f"**warning {index + 1}**"] = str(warning)
        title = f"**{bundle.root.name}** (bundle, kind {bundle.kind})"
        self._markdown("\n".join([title] + [f"- {label}: {value}" for label, value in rows.items()]))
        if bundle.kind == "object" and bundle.objects:
            # An object bundle's bounds are its ground slab: frame the object instead, with room around it.
            low = np.min([o.position - 0.5 * o.size for o in bundle.objects], axis=0)
            high = np.max([o.position + 0.5 * o.size for o in bundle.objects], axis=0)
            margin = 0.75 * float(np.max(high - low))
            low, high = low - margin, high + margin
        self._frame_view(low, high, np.array([0.0, 0.0, 1.0]))
        self._render_scene = self._composed_bundle_scene

    def _add_render_part(self, part, position, orientation_xyzw) -> int:
        """A rigid part for our renderer; returns its index for :meth:`_set_part_pose`."""
        self._parts.append(part)
        self._part_poses.append((np.asarray(position, np.float64), np.asarray(orientation_xyzw, np.float64)))
        self._composed = None
        return len(self._parts) - 1

    def _set_part_pose(self, index: int, position, orientation_xyzw) -> None:
        self._part_poses[index] = (np.asarray(position, np.float64), np.asarray(orientation_xyzw, np.float64))

    def _composed_bundle_scene(self):
        from lyra_sim.sim.compositor import ComposedScene

        background = self._background if self._background is not None and len(self._background) else None
        if background is None and not self._parts:
            return None
        if self._composed is None:
            self._composed = ComposedScene(background, self._parts)
        if self._parts:
            self._composed.set_poses(np.stack([p for p, _ in self._part_poses]), np.stack([q for _, q in self._part_poses]))
        return self._composed.scene

    # ------------------------------------------------------------------ episode
    def show_episode(self, episode) -> None:
        """Robot and object poses over an episode, with a step slider and a play button."""
        from lyra_sim.sim.compositor import RigidPart
        from lyra_sim.sim.robot_splats import mesh_splats

        part_nodes: list[str | None] = []
        render_index: list[int | None] = []  # each episode part's index among our renderer's parts
        object_index = {part.name.removeprefix("object:"): i for i, part in enumerate(self._parts)}
        trimesh_meshes = []
        for index, part in enumerate(episode.parts):
            if part.kind == "object":
                part_nodes.append(f"/objects/{part.body}" if part.body in self._object_frames else None)
                render_index.append(object_index.get(part.body))
                continue
            name = f"/episode/{part.body}/{index}"
            mesh = _coloured_trimesh_faces(part.vertices, part.faces, part.face_colors)
            self._add(name, self.server.scene.add_mesh_trimesh(name, mesh))
            part_nodes.append(name)
            trimesh_meshes.append(name)
            # The env shows robots as Gaussians on their links' surfaces; so does our render here.
            label = len(self._parts) + 1
            render_index.append(self._add_render_part(RigidPart(f"{part.body}:{part.link}", mesh_splats(mesh), label),
                                                      episode.positions[0, index], episode.orientations_xyzw[0, index]))
        robot = episode.part_indices("robot")
        if robot:
            path = episode.positions[:, robot[0]].astype(np.float32)
            segments = np.stack([path[:-1], path[1:]], axis=1) if len(path) > 1 else np.zeros((0, 2, 3), np.float32)
            same_episode = episode.episode_index[:-1] == episode.episode_index[1:]
            self._add("/episode/trajectory", self.server.scene.add_line_segments(
                "/episode/trajectory", segments[same_episode], (230, 60, 60), thickness=3.0, thickness_units="screen"))
            self._toggle("Robot path", ["/episode/trajectory"])
        if trimesh_meshes:
            self._toggle("Robot and markers", trimesh_meshes)

        folder = self.server.gui.add_folder("Episode", order=2)
        with folder:
            slider = self.server.gui.add_slider("Step", 0, max(len(episode) - 1, 0), 1, 0)
            play = self.server.gui.add_checkbox("Play", False)
            speed = self.server.gui.add_slider("Speed", 0.25, 4.0, 0.25, 1.0)
            status = self.server.gui.add_markdown("")
        self.toggles["Step"], self.toggles["Play"] = slider, play

        def apply(frame: int) -> None:
            frame = int(np.clip(frame, 0, len(episode) - 1))
            with self.server.atomic():
                for index, name in enumerate(part_nodes):
                    if name is None:
                        continue
                    node = self.nodes[name]
                    node.position = episode.positions[frame, index]
                    node.wxyz = xyzw_to_wxyz(episode.orientations_xyzw[frame, index])
            for index, part_index in enumerate(render_index):
                if part_index is not None:
                    self._set_part_pose(part_index, episode.positions[frame, index], episode.orientations_xyzw[frame, index])
            reward = episode.rewards[frame]
            status.content = (f"episode {int(episode.episode_index[frame])}, t = {episode.times[frame]:.2f} s, "
                              f"reward {'(reset)' if np.isnan(reward) else f'{reward:+.4f}'}")

        @slider.on_update
        def _(_event) -> None:
            apply(slider.value)
            self.request_render()

        def player() -> None:
            while not self._stopping.is_set():
                if play.value:
                    slider.value = (slider.value + 1) % len(episode)
                    apply(slider.value)
                self._stopping.wait(1.0 / (episode.fps * float(speed.value)))

        threading.Thread(target=player, name="lyra-sim-view-player", daemon=True).start()
        apply(0)
        missing = sorted({part.body for part in episode.parts if part.kind == "object" and part.body not in self._object_frames})
        self._markdown(f"- episode **{episode.path.name}**: {episode.env_id}, {len(episode)} frames at {episode.fps:g} fps, "
                       f"{int(episode.episode_index.max()) + 1} episode(s)"
                       + (f"; **not in this bundle**: {', '.join(missing)} (recorded on {episode.bundle})" if missing else ""))

    # ------------------------------------------------------------------ our renderer
    def add_render_camera(self) -> None:
        """A camera frustum with a transform gizmo; dragging it renders our splat view (rgb and
        depth) into the "Camera view" panels. "Move camera to my view" puts it where the browser
        camera is."""
        settings = self.render_settings
        from lyra_sim.render.camera import look_at_viewmat

        eye, target, up = (getattr(self, name, default) for name, default in (
            ("_render_eye", np.array([0.0, -2.0, 1.0])), ("_render_target", np.zeros(3)), ("_render_up", np.array([0.0, 0.0, 1.0]))))
        viewmat = look_at_viewmat(torch.tensor(eye[None]), torch.tensor(target[None]), torch.tensor(up[None]))[0].numpy()
        wxyz, position = layers.viewmat_to_pose(viewmat)
        controls = self._add("/render_camera", self.server.scene.add_transform_controls(
            "/render_camera", scale=0.15 * self._scene_extent, wxyz=wxyz, position=position))
        self._add("/render_camera/frustum", self.server.scene.add_camera_frustum(
            "/render_camera/frustum", fov=np.radians(settings.fov_deg), aspect=settings.width / settings.height,
            scale=0.08 * self._scene_extent, color=(230, 40, 40)))
        folder = self.server.gui.add_folder("Camera view (our renderer)", order=3)
        blank = np.zeros((settings.height, settings.width, 3), np.uint8)
        with folder:
            self._rgb_panel = self.server.gui.add_image(blank, label="rgb", format="jpeg")
            self._depth_panel = self.server.gui.add_image(blank, label="depth", format="jpeg")
            self._render_status = self.server.gui.add_markdown("drag the red camera to render")
            to_view = self.server.gui.add_button("Move camera to my view")
        self._toggle("Render camera", ["/render_camera", "/render_camera/frustum"])

        @controls.on_update
        def _(event) -> None:
            if event.phase == "end" or event.phase == "update":
                self.request_render()

        @to_view.on_click
        def _(event) -> None:
            if event.client is None:
                return
            controls.wxyz, controls.position = event.client.camera.wxyz, event.client.camera.position
            self.request_render()

        threading.Thread(target=self._render_loop, name="lyra-sim-view-render", daemon=True).start()
        self.request_render()

    def request_render(self) -> None:
        """Ask the render thread for a new image; requests during a render fold into one."""
        self._render_request.set()

    def _render_loop(self) -> None:
        while not self._stopping.is_set():
            if not self._render_request.wait(timeout=0.5):
                continue
            self._render_request.clear()
            try:
                self.render_now()
            except Exception as error:  # noqa: BLE001 - a failed render must not kill the viewer
                self._render_status.content = f"render failed: {type(error).__name__}: {error}"

    def render_now(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Render the draggable camera's view with our renderer; returns (rgb, depth image) uint8."""
        from lyra_sim.render import render
        from lyra_sim.render.camera import Camera, intrinsics_from_fov

        with self._render_lock:
            scene = self._render_scene() if self._render_scene is not None else None
            if scene is None or len(scene) == 0:
                return None
            settings = self.render_settings
            controls = self.nodes["/render_camera"]
            viewmat = layers.pose_to_viewmat(controls.wxyz, controls.position)
            camera = Camera(intrinsics_from_fov(settings.fov_deg, settings.width, settings.height), viewmat,
                            settings.width, settings.height, near=0.01, far=max(10.0, 4.0 * self._scene_extent))
            start = time.perf_counter()
            with torch.no_grad():
                images = render(scene, camera, modes=("rgb", "depth"), backend=settings.backend)
            seconds = time.perf_counter() - start
            if self._stopping.is_set():  # the server may be gone: nothing to send the image to
                return None
            rgb = (images["rgb"][0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            depth = layers.depth_to_image(images["depth"][0, ..., 0].numpy())
            self._rgb_panel.image = rgb
            self._depth_panel.image = depth
            self.nodes["/render_camera/frustum"].image = rgb
            hit = images["depth"][0, ..., 0].numpy()
            hit = hit[hit > 0]
            self.renders += 1
            position = controls.position
            self._render_status.content = (
                f"{settings.width}x{settings.height}, {len(scene):,} Gaussians, {1000 * seconds:.0f} ms ({settings.backend}); "
                f"camera at ({', '.join(f'{v:.2f}' for v in position)})"
                + (f"; depth {hit.min():.2f}-{hit.max():.2f}" if hit.size else "; nothing in view"))
            return rgb, depth

    def stop(self) -> None:
        self._stopping.set()


def _merge_parts(parts):
    """One Mesh of all the groups of an OBJ (the scenery meshes are one group, but need not be)."""
    from lyra_sim.geometry.mesh import Mesh

    if len(parts) == 1:
        return parts[0][1]
    offsets = np.cumsum([0] + [len(mesh.vertices) for _, mesh in parts[:-1]])
    colours = [mesh.colors for _, mesh in parts]
    return Mesh(
        np.concatenate([mesh.vertices for _, mesh in parts]),
        np.concatenate([mesh.faces + offset for (_, mesh), offset in zip(parts, offsets)]),
        np.concatenate(colours) if all(c is not None for c in colours) else None,
    )


def _coloured_trimesh(mesh):
    import trimesh

    colours = None if mesh.colors is None else np.round(np.clip(mesh.colors, 0, 1) * 255).astype(np.uint8)
    return trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=colours, process=False)


def _coloured_trimesh_faces(vertices, faces, face_colors):
    import trimesh

    return trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces), face_colors=np.asarray(face_colors), process=False)


def _bundle_cameras(bundle) -> list[layers.CameraFrustum]:
    """The capture cameras a bundle stores: ``manifest["cameras"]`` names a camera file in the
    bundle (lyra-sim's sidecar or INRIA ``cameras.json``, in the bundle world)."""
    relative = bundle.manifest.cameras  # validated (relative, inside, present) by lyra_sim.bundle
    if not relative:
        return []
    return layers.read_camera_entries(bundle.root / relative)


def _scene_cameras(scene) -> list[layers.CameraFrustum]:
    """Capture cameras that came with a scene file (``SceneMetadata.cameras``), when its reader found any."""
    cameras = getattr(scene.metadata, "cameras", None)
    if cameras is None or not len(cameras):
        return []
    return layers.camera_frusta(cameras.rotations, cameras.positions, cameras.intrinsics, cameras.sizes, getattr(cameras, "names", ()))


def serve(
    path: str | Path | None,
    *,
    episode: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_splats: int | None = 2_000_000,
    render: RenderSettings = RenderSettings(),
    block: bool = True,
):
    """Start the viewer on ``path`` (a scene file or a bundle folder) and/or an episode file.

    Prints the URL; with ``block`` waits until Ctrl+C (or SIGTERM) and stops the server, else
    returns ``(server, viewer)`` for the caller to stop.
    """
    from lyra_sim.errors import BundleError
    from lyra_sim.bundle import load_bundle

    loaded_episode = None
    if episode is not None:
        from lyra_sim.sim.episode import load_episode

        loaded_episode = load_episode(episode)
        if path is None:
            path = loaded_episode.bundle
            if not (Path(path) / "manifest.json").is_file():
                raise BundleError(f"{episode}: its bundle {path} is not there any more; pass the bundle folder as PATH")
    if path is None:
        raise BundleError("lyra-sim view needs a scene file, a bundle folder or --episode FILE")
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such file or folder")
    is_bundle = path.is_dir() and (path / "manifest.json").is_file()
    if path.is_dir() and not is_bundle:
        raise BundleError(f"{path}: a folder without manifest.json is not a bundle; pass a splat file or a bundle folder")
    if loaded_episode is not None and not is_bundle:
        raise BundleError(f"{path}: an episode plays on its bundle; pass the bundle folder (or no PATH), not a scene file")
    bundle = load_bundle(path) if is_bundle else None  # validate before starting a server

    viser = import_viser()
    server = viser.ViserServer(host=host, port=port, label="lyra-sim view", verbose=False)
    viewer = Viewer(server, max_splats=max_splats, render=render)
    try:
        if bundle is not None:
            viewer.show_bundle(bundle)
        else:
            viewer.show_scene_file(path)
        if loaded_episode is not None:
            viewer.show_episode(loaded_episode)
        viewer.add_render_camera()
    except BaseException:
        viewer.stop()
        server.stop()
        raise
    shown_host = "localhost" if host in ("127.0.0.1", "localhost") else host
    url = f"http://{shown_host}:{server.get_port()}"
    print(f"lyra-sim view: {path}{f' with episode {episode}' if episode else ''} at {url}", flush=True)
    if host in ("0.0.0.0", "::"):
        print("  (listening on every interface: open http://<this machine's address>:%d)" % server.get_port(), flush=True)
    else:
        print(f"  on a remote machine: ssh -L {server.get_port()}:localhost:{server.get_port()} <host>, then open {url}", flush=True)
    if not block:
        return server, viewer
    import signal

    def _terminate(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        viewer.stop()
        server.stop()
    return None
