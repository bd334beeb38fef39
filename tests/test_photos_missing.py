"""Missing images: one error listing them all, or the views left out with --skip-missing."""

import pytest

from lyra_sim.kits import make_scene
from lyra_sim.photos import load_dataset
from lyra_sim.photos.dataset import DatasetError
from lyra_sim.photos.formats.colmap import save_colmap
from lyra_sim.photos.formats.nerfstudio import save_nerfstudio


@pytest.fixture(scope="module")
def photos():
    kit = make_scene("tabletop", seed=0, n_objects=1)
    return kit.render_photos(kit.cameras("orbit", 5, width=16, height=16), progress=False)


@pytest.mark.parametrize("writer", [save_colmap, save_nerfstudio])
def test_missing_images_are_listed_or_skipped(photos, writer, tmp_path):
    folder = writer(photos, tmp_path / "data")
    images = sorted((folder / "images").iterdir())
    for image in images[1:3]:
        image.unlink()
    with pytest.raises(DatasetError, match=r"2 of 5 images not found: .*0001.*0002.*--skip-missing"):
        load_dataset(folder, progress=False)
    dataset = load_dataset(folder, progress=False, skip_missing=True)
    assert len(dataset) == 3 and any("skipped 2 views" in note for note in dataset.metadata["notes"])
    for image in images:
        image.unlink(missing_ok=True)
    with pytest.raises(DatasetError, match="none of the 5 images"):
        load_dataset(folder, progress=False, skip_missing=True)


def test_progress_bars_redraw_rarely_without_a_terminal(capsys):
    from lyra_sim.io_utils import progress_bar

    bar = progress_bar(range(3), enabled=True)  # pytest's stderr is not a terminal
    assert bar.mininterval == 30.0
    assert progress_bar(range(3), enabled=False).disable
