"""``lyra-sim view``: look at scene files, bundles and episodes in the browser (viser).

``layers`` turns scenes, meshes and poses into the arrays the viewer draws (no viser needed);
``app`` holds the viser viewer and :func:`lyra_sim.viewer.app.serve`. viser is the optional
``[viewer]`` extra and is imported only when a viewer starts.
"""
