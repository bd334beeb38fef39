"""One module per splat file format (FORMATS.md): readers return ``GaussianScene``, writers take one.

``lyra_sim.scene.io`` detects the format and dispatches; import that, not these modules.
"""
