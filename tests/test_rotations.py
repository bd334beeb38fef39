"""lyra_sim.rotations: both quaternion orders agree with scipy and PyBullet, yaw round-trips."""

from __future__ import annotations

import math

import numpy as np
import pybullet
import pytest
from scipy.spatial.transform import Rotation

from lyra_sim import rotations


@pytest.fixture
def random_xyzw():
    return Rotation.random(16, random_state=0).as_quat()  # scipy's order is (x, y, z, w)


def test_xyzw_and_wxyz_matrices_match_scipy(random_xyzw):
    expected = Rotation.from_quat(random_xyzw).as_matrix()
    np.testing.assert_allclose(rotations.quat_xyzw_to_matrix(random_xyzw), expected, atol=1e-12)
    np.testing.assert_allclose(rotations.quat_wxyz_to_matrix(rotations.xyzw_to_wxyz(random_xyzw)), expected, atol=1e-12)
    # Unnormalised input is normalised first.
    np.testing.assert_allclose(rotations.quat_xyzw_to_matrix(3.0 * random_xyzw[0]), expected[0], atol=1e-12)


def test_matrix_to_quaternion_round_trips_up_to_sign(random_xyzw):
    matrices = Rotation.from_quat(random_xyzw).as_matrix()
    xyzw = rotations.matrix_to_quat_xyzw(matrices)
    assert (xyzw[:, 3] >= 0).all()
    sign = np.sign(random_xyzw[:, 3:])
    np.testing.assert_allclose(xyzw, random_xyzw * sign, atol=1e-9)
    np.testing.assert_allclose(rotations.wxyz_to_xyzw(rotations.matrix_to_quat_wxyz(matrices)), xyzw, atol=1e-12)


def test_xyzw_matches_pybullet(random_xyzw):
    for quaternion in random_xyzw[:4]:
        expected = np.asarray(pybullet.getMatrixFromQuaternion(quaternion.tolist())).reshape(3, 3)
        np.testing.assert_allclose(rotations.quat_xyzw_to_matrix(quaternion), expected, atol=1e-6)


@pytest.mark.parametrize("yaw", [-3.0, -1.0, 0.0, 0.4, 2.5])
def test_yaw_quaternion_and_yaw_of_are_inverse(yaw):
    quaternion = rotations.yaw_quaternion_xyzw(yaw)
    assert rotations.yaw_of(quaternion) == pytest.approx(yaw, abs=1e-12)
    assert rotations.yaw_of(pybullet.getQuaternionFromEuler([0.0, 0.0, yaw])) == pytest.approx(yaw, abs=1e-6)
    heading = rotations.quat_xyzw_to_matrix(quaternion) @ np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(heading, [math.cos(yaw), math.sin(yaw), 0.0], atol=1e-12)


def test_old_homes_give_the_same_functions():
    from lyra_sim.envs.base import yaw_of
    from lyra_sim.kits.scene_kit import quat_xyzw_to_matrix
    from lyra_sim.photos import matrix_to_qvec, qvec_to_matrix
    from lyra_sim.scene.gaussian_scene import matrix_to_quat, quat_multiply, quat_to_matrix

    assert yaw_of is rotations.yaw_of and quat_xyzw_to_matrix is rotations.quat_xyzw_to_matrix
    assert qvec_to_matrix is rotations.quat_wxyz_to_matrix and matrix_to_qvec is rotations.matrix_to_quat_wxyz
    assert (quat_to_matrix, matrix_to_quat, quat_multiply) == (rotations.quat_to_matrix, rotations.matrix_to_quat, rotations.quat_multiply)
