"""The typed SimBundle manifest: lossless round trips, one message per problem, atomic writes,
object bundles, and the packaged-bundle lookup."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lyra_sim.bundle import (
    PACKAGED_BUNDLES_DIR,
    Manifest,
    load_bundle,
    manifest_problems,
    packaged_bundle_names,
    read_manifest,
    resolve_bundle_path,
    write_manifest,
)
from lyra_sim.errors import BundleError


@pytest.fixture
def room(tmp_path):
    copy = tmp_path / "room"
    shutil.copytree(PACKAGED_BUNDLES_DIR / "room", copy)
    return copy


def _document(folder):
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.parametrize("name", ["room", "tabletop"])
def test_packaged_manifests_round_trip_losslessly(name):
    data = json.loads((PACKAGED_BUNDLES_DIR / name / "manifest.json").read_text())
    manifest = Manifest.from_dict(data)
    assert manifest.kind == "scene" and "kind" not in data  # no key reads as a scene bundle
    assert manifest.to_dict() == {"kind": "scene", **data}
    assert manifest.transform.shape == (4, 4) and manifest.bounds.min.shape == (3,)
    assert [entry.name for entry in manifest.objects] == [o["name"] for o in data["objects"]]


def test_typed_fields_match_the_document(room):
    manifest, data = read_manifest(room), _document(room)
    np.testing.assert_array_equal(manifest.spawn_region.min, data["spawn_region"]["min"])
    assert manifest.floor_height == data["floor_height"] and manifest.background.urdf == "scene.urdf"
    first = manifest.objects[0]
    np.testing.assert_array_equal(first.initial_pose.orientation_xyzw, data["objects"][0]["initial_pose"]["orientation_xyzw"])
    bundle = load_bundle(room)
    assert bundle.manifest == manifest and bundle.manifest is not manifest
    low, _, z = bundle.spawn_region
    np.testing.assert_array_equal(low, data["spawn_region"]["min"])
    assert z == data["spawn_region"]["z"] and bundle.kind == "scene"
    manifest.objects[0].mass += 1.0
    assert bundle.manifest != manifest


def test_unknown_keys_survive_a_write(room):
    data = _document(room)
    data["capture_rig"] = {"file": "rig.json"}
    data["objects"][0]["note"] = [1, 2]
    manifest = Manifest.from_dict(data)
    write_manifest(manifest, room)
    again = _document(room)
    assert again["capture_rig"] == {"file": "rig.json"} and again["objects"][0]["note"] == [1, 2]
    assert read_manifest(room).extras == {"capture_rig": {"file": "rig.json"}}


def test_every_problem_is_reported_once(room):
    data = _document(room)
    data["transform"] = [[1, 0], [0, 1]]
    data["spawn_region"]["min"] = "here"
    data["objects"][0]["mass"] = "heavy"
    (room / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError) as caught:
        read_manifest(room)
    message = str(caught.value)
    assert message.startswith(str(room / "manifest.json"))
    for expected in ("transform must be a 4 x 4 list of numbers", "spawn_region.min must be a list of 2 numbers", "objects[0].mass (kg) must be a number"):
        assert message.count(expected) == 1, message


def test_semantic_and_path_problems_are_listed_together(room):
    manifest = read_manifest(room)
    manifest.objects[0].mass = 0.0
    manifest.background.splat = "../elsewhere.ply"
    manifest.units = "ft"
    problems = manifest_problems(manifest, room)
    assert len(problems) == 3, problems
    assert any("mass (kg) must be > 0" in p for p in problems) and any("outside the bundle" in p for p in problems)
    before = (room / "manifest.json").read_bytes()
    with pytest.raises(BundleError, match="units must be 'm'"):
        write_manifest(manifest, room)
    assert (room / "manifest.json").read_bytes() == before  # a refused write changes nothing
    assert [p.name for p in room.iterdir() if p.name.startswith(".")] == []  # and leaves no temporary


def test_a_manifest_built_in_code_meets_the_same_value_rules_as_a_file(room):
    """One validator: a typed manifest with a bad value is refused on write with the message the
    file reader gives, and nothing is written."""
    before = (room / "manifest.json").read_bytes()
    manifest = read_manifest(room)
    manifest.objects[0].initial_pose.orientation_xyzw = np.array([0.0, 0.0, 0.0, 2.0])
    manifest.objects[0].friction = -0.1
    manifest.bounds.min = manifest.bounds.max + 1.0
    with pytest.raises(BundleError) as raised:
        write_manifest(manifest, room)
    message = str(raised.value)
    assert "orientation_xyzw must be a unit quaternion, its norm is 2" in message
    assert "objects[0].friction must be >= 0" in message and "bounds is inverted" in message
    assert (room / "manifest.json").read_bytes() == before
    data = manifest.to_dict()  # the same document from disk: the same messages
    (room / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError) as from_disk:
        read_manifest(room)
    assert str(from_disk.value).split(": ", 1)[1] == message.split(": ", 1)[1]


def test_object_bundles_hold_exactly_one_object(room):
    data = _document(room)
    assert len(data["objects"]) > 1
    data["kind"] = "object"
    with pytest.raises(BundleError, match="exactly one object"):
        Manifest.from_dict(data)
    data["objects"] = data["objects"][:1]
    assert Manifest.from_dict(data).kind == "object"
    data["kind"] = "robot"
    with pytest.raises(BundleError, match="kind 'robot' is not one of"):
        Manifest.from_dict(data)


def test_dict_access_still_works_with_a_warning(room):
    manifest = read_manifest(room)
    with pytest.warns(DeprecationWarning, match="typed field"):
        assert manifest["floor_height"] == manifest.floor_height
    with pytest.warns(DeprecationWarning):
        assert manifest.get("spawn_region")["z"] == manifest.spawn_region.z
    assert "objects" in manifest and "no_such_key" not in manifest


def test_packaged_lookup(tmp_path):
    assert packaged_bundle_names() == ["room", "tabletop"]
    assert resolve_bundle_path(None, "room") == (PACKAGED_BUNDLES_DIR / "room").resolve()
    assert resolve_bundle_path("tabletop", "room").name == "tabletop"
    with pytest.raises(BundleError, match="packaged bundles: room, tabletop"):
        resolve_bundle_path(tmp_path / "nowhere", "room")
