"""Ground-truth scoring helpers: labels from true surfaces agree with the sampler's own labels."""

import numpy as np

from lyra_sim.kits import make_scene
from lyra_sim.kits.evaluation import object_masks_near_truth, photographed_box


def test_object_masks_near_truth_recover_the_sampled_labels():
    kit = make_scene("tabletop", seed=0)
    scene, labels = kit.to_gaussians(6000, seed=0)
    truth = kit.object_masks(labels)
    found = object_masks_near_truth(kit, scene.means.numpy(), max_distance=0.005)
    assert set(found) == set(truth)
    for name, mask in truth.items():
        assert mask.sum() > 0
        # Every object Gaussian is found; only table Gaussians touching an object's base may join it.
        assert found[name][mask].all()
        assert (found[name] & ~mask).sum() <= 0.1 * mask.sum()


def test_photographed_box_holds_the_table_but_not_the_far_floor():
    kit = make_scene("tabletop", seed=0)
    low, high = photographed_box(kit)
    table = kit.object("table").world_mesh().bounds
    assert np.all(low <= table[0]) and np.all(high >= table[1])
    floor = kit.object("floor").world_mesh().bounds
    assert low[0] > floor[0][0] and high[0] < floor[1][0]
