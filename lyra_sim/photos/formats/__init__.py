"""One module per photo-dataset format (mirrors ``lyra_sim.scene.formats``): each declares
``FORMAT = PhotoFormat(name, sniff, read, write, looked_for)``; ``lyra_sim.photos.io`` keeps the table.
"""
