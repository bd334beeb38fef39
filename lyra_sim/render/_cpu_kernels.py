"""Numba kernels of the CPU splat renderer: projection, depth sort, tile binning, rasterisation,
and the hand-written backward of projection and rasterisation.

Everything here works on numpy float32 arrays; ``lyra_sim.render._cpu`` wraps it for torch.
It imports numpy and numba only. The stages follow gsplat (project -> sort -> bin -> rasterise),
each parallel over Gaussians, sorted positions or tiles, and batched over cameras.

Layout shared by the stages: a projected Gaussian is one row of 16 float32 (64 bytes, one cache
line) in ``packed`` [M, 16], ordered by (camera, depth); see the ``REC_*`` column indices.
Tiles are TILE x TILE pixels; a tile's list of packed rows is ``tile_entries[tile_start[j]:
tile_start[j + 1]]`` for job j = camera * tiles_per_camera + tile, front to back.

Speed notes (measured facts in DESIGN.md "Rendering backends"): blending is Gaussian-major
inside a tile (one Gaussian against all 16 pixels of a tile row at a time, so rows vectorise),
exp is a short polynomial (libm exp does not vectorise in numba), the alpha >= 1/255 test is a
threshold on the quadratic form, and a tile stops once every pixel in it has stopped.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

TILE = 16
PIXELS = TILE * TILE

# Columns of a packed (projected) Gaussian.
REC_MX, REC_MY = 0, 1  # 2D mean, pixels
REC_CA, REC_CB, REC_CC = 2, 3, 4  # conic (inverse 2D covariance) [[a, b], [b, c]]
REC_OPACITY = 5
REC_SIGMA_MAX = 6  # ln(255 o): alpha >= 1/255 exactly where the quadratic form sigma <= this
REC_R, REC_G, REC_B = 7, 8, 9
REC_Z = 10  # camera-space depth
REC_U0, REC_U1, REC_V0, REC_V1 = 11, 12, 13, 14  # inclusive pixel box reaching alpha >= 1/255
REC_WIDTH = 16

# Columns of the per-Gaussian 2D gradient the rasteriser backward accumulates.
GRAD_MX, GRAD_MY, GRAD_CA, GRAD_CB, GRAD_CC, GRAD_OPACITY, GRAD_R, GRAD_G, GRAD_B, GRAD_Z = range(10)
GRAD_WIDTH = 10
# Per-lane sums of the rasteriser backward: GRAD_OPACITY, GRAD_R..GRAD_Z as above, then
# Σ g_σ, Σ g_σ dy, Σ g_σ dy² in the slots of the mean and conic columns (derived from them;
# GRAD_CB and GRAD_CC's slots stay unused)
LANE_SIGMA, LANE_SIGMA_DY, LANE_SIGMA_DY2 = GRAD_MX, GRAD_MY, GRAD_CA
LANE_WIDTH = GRAD_WIDTH

# float32 constants: a Python float literal would silently promote the kernels to float64,
# which halves the SIMD width.
F0 = np.float32(0.0)
F1 = np.float32(1.0)
F2 = np.float32(2.0)
HALF = np.float32(0.5)
MAX_ALPHA = np.float32(0.999)
TRANSMITTANCE_STOP = np.float32(1e-4)
MEDIAN_TRANSMITTANCE = np.float32(0.5)
BLUR = np.float32(0.3)
ALPHA_THRESHOLD = 1.0 / 255.0
EXP_ARG_MAX = np.float32(5.6)  # sigma beyond ln(255) ~ 5.54 never passes the 1/255 test
# exp(-s) for s in [0, 5.6]: exp(-s) = p(-s/16)^16 with a cubic minimax-fitted p on
# [-0.35, 0]; relative error < 8e-5, 7 flops and no libm call, so pixel rows vectorise.
EXP_SCALE = np.float32(1.0 / 16.0)
EXP_P0 = np.float32(0.9999951124191284)
EXP_P1 = np.float32(0.999579668045044)
EXP_P2 = np.float32(0.4941375255584717)
EXP_P3 = np.float32(0.1396954208612442)

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no nnan/ninf: masks compare values
NO_STOP = np.int32(2**31 - 1)


@njit(inline="always", fastmath=FASTMATH, cache=True)
def fast_exp_neg(s):
    """exp(-s) for s in [0, EXP_ARG_MAX] (clamped above), relative error < 8e-5."""
    y = -min(s, EXP_ARG_MAX) * EXP_SCALE
    p = EXP_P0 + y * (EXP_P1 + y * (EXP_P2 + y * EXP_P3))
    p = p * p
    p = p * p
    p = p * p
    return p * p


# ------------------------------------------------------------------------------------ maths
@njit(cache=True, fastmath=FASTMATH)
def quat_rotation(qw, qx, qy, qz):
    """Rotation matrix (row-major 9-tuple) of a quaternion, normalised here; zero -> identity."""
    norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    inv = 1.0 / max(norm, 1e-12)
    w, x, y, z = qw * inv, qx * inv, qy * inv, qz * inv
    return (
        1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y),
        2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x),
        2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y),
    )


@njit(cache=True, fastmath=FASTMATH)
def covariance_world(r, sx, sy, sz):
    """Σ3d = R diag(s²) Rᵀ as (xx, xy, xz, yy, yz, zz) from a row-major rotation 9-tuple."""
    m00, m01, m02 = r[0] * sx, r[1] * sy, r[2] * sz
    m10, m11, m12 = r[3] * sx, r[4] * sy, r[5] * sz
    m20, m21, m22 = r[6] * sx, r[7] * sy, r[8] * sz
    return (
        m00 * m00 + m01 * m01 + m02 * m02,
        m00 * m10 + m01 * m11 + m02 * m12,
        m00 * m20 + m01 * m21 + m02 * m22,
        m10 * m10 + m11 * m11 + m12 * m12,
        m10 * m20 + m11 * m21 + m12 * m22,
        m20 * m20 + m21 * m21 + m22 * m22,
    )


@njit(cache=True, fastmath=FASTMATH)
def rotate_covariance(w, cov):
    """W Σ Wᵀ for a row-major 3x3 ``w`` and a symmetric 6-tuple Σ; returns a symmetric 6-tuple."""
    s00, s01, s02, s11, s12, s22 = cov
    # rows of W Σ
    a00 = w[0] * s00 + w[1] * s01 + w[2] * s02
    a01 = w[0] * s01 + w[1] * s11 + w[2] * s12
    a02 = w[0] * s02 + w[1] * s12 + w[2] * s22
    a10 = w[3] * s00 + w[4] * s01 + w[5] * s02
    a11 = w[3] * s01 + w[4] * s11 + w[5] * s12
    a12 = w[3] * s02 + w[4] * s12 + w[5] * s22
    a20 = w[6] * s00 + w[7] * s01 + w[8] * s02
    a21 = w[6] * s01 + w[7] * s11 + w[8] * s12
    a22 = w[6] * s02 + w[7] * s12 + w[8] * s22
    return (
        a00 * w[0] + a01 * w[1] + a02 * w[2],
        a00 * w[3] + a01 * w[4] + a02 * w[5],
        a00 * w[6] + a01 * w[7] + a02 * w[8],
        a10 * w[3] + a11 * w[4] + a12 * w[5],
        a10 * w[6] + a11 * w[7] + a12 * w[8],
        a20 * w[6] + a21 * w[7] + a22 * w[8],
    )


@njit(cache=True, fastmath=FASTMATH)
def camera_jacobian(table, c, x, y, z):
    """gsplat's perspective Jacobian entries (j00, j02, j11, j12), the clamped x/z and y/z, and
    whether they were clamped (J = [[fx/z, 0, -fx tx/z], [0, fy/z, -fy ty/z]])."""
    fx, fy = table[c, 12], table[c, 13]
    rz = 1.0 / z
    tx, ty = x * rz, y * rz
    clamped_x = tx < -table[c, 20] or tx > table[c, 19]
    clamped_y = ty < -table[c, 22] or ty > table[c, 21]
    tx = min(max(tx, -table[c, 20]), table[c, 19])
    ty = min(max(ty, -table[c, 22]), table[c, 21])
    return fx * rz, -fx * tx * rz, fy * rz, -fy * ty * rz, tx, ty, clamped_x, clamped_y


@njit(cache=True, fastmath=FASTMATH)
def project_covariance(j00, j02, j11, j12, cc):
    """Σ2d = J Σcam Jᵀ + 0.3 I with J = [[j00, 0, j02], [0, j11, j12]]; returns (xx, xy, yy)."""
    c00, c01, c02, c11, c12, c22 = cc
    xx = j00 * j00 * c00 + 2.0 * j00 * j02 * c02 + j02 * j02 * c22
    xy = j00 * j11 * c01 + j00 * j12 * c02 + j02 * j11 * c12 + j02 * j12 * c22
    yy = j11 * j11 * c11 + 2.0 * j11 * j12 * c12 + j12 * j12 * c22
    return xx + 0.3, xy, yy + 0.3


@njit(cache=True, fastmath=FASTMATH)
def sh_basis(x, y, z, degree, out):
    """Fill ``out`` [16] with the real SH basis at unit direction (x, y, z), INRIA order (only
    the first (degree+1)^2 entries are written). An array, not a tuple: the colour loops index
    it with a loop variable, which on a tuple compiles to a slow switch (2x the SH cost)."""
    out[0] = SH_C0
    if degree >= 1:
        out[1] = -SH_C1 * y
        out[2] = SH_C1 * z
        out[3] = -SH_C1 * x
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out[4] = SH_C2[0] * x * y
        out[5] = SH_C2[1] * y * z
        out[6] = SH_C2[2] * (2.0 * zz - xx - yy)
        out[7] = SH_C2[3] * x * z
        out[8] = SH_C2[4] * (xx - yy)
        if degree >= 3:
            out[9] = SH_C3[0] * y * (3.0 * xx - yy)
            out[10] = SH_C3[1] * x * y * z
            out[11] = SH_C3[2] * y * (4.0 * zz - xx - yy)
            out[12] = SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
            out[13] = SH_C3[4] * x * (4.0 * zz - xx - yy)
            out[14] = SH_C3[5] * z * (xx - yy)
            out[15] = SH_C3[6] * x * (xx - 3.0 * yy)


@njit(cache=True, fastmath=FASTMATH)
def sh_direction_gradient(x, y, z, degree, weights):
    """Σ_k weights[k] d basis_k / d(x, y, z) (the direction treated as free, not unit), written out
    term by term: no [3, 16] Jacobian to zero and fill per Gaussian."""
    gx = gy = gz = 0.0
    if degree >= 1:
        gy -= SH_C1 * weights[1]
        gz += SH_C1 * weights[2]
        gx -= SH_C1 * weights[3]
    if degree >= 2:
        w4, w5, w6, w7, w8 = weights[4], weights[5], weights[6], weights[7], weights[8]
        gx += SH_C2[0] * y * w4 - 2.0 * SH_C2[2] * x * w6 + SH_C2[3] * z * w7 + 2.0 * SH_C2[4] * x * w8
        gy += SH_C2[0] * x * w4 + SH_C2[1] * z * w5 - 2.0 * SH_C2[2] * y * w6 - 2.0 * SH_C2[4] * y * w8
        gz += SH_C2[1] * y * w5 + 4.0 * SH_C2[2] * z * w6 + SH_C2[3] * x * w7
    if degree >= 3:
        xx, yy, zz = x * x, y * y, z * z
        w9, w10, w11, w12, w13, w14, w15 = (weights[9], weights[10], weights[11], weights[12], weights[13],
                                            weights[14], weights[15])
        gx += (6.0 * SH_C3[0] * x * y * w9 + SH_C3[1] * y * z * w10 - 2.0 * SH_C3[2] * x * y * w11
               - 6.0 * SH_C3[3] * x * z * w12 + SH_C3[4] * (4.0 * zz - 3.0 * xx - yy) * w13
               + 2.0 * SH_C3[5] * x * z * w14 + SH_C3[6] * (3.0 * xx - 3.0 * yy) * w15)
        gy += (SH_C3[0] * (3.0 * xx - 3.0 * yy) * w9 + SH_C3[1] * x * z * w10
               + SH_C3[2] * (4.0 * zz - xx - 3.0 * yy) * w11 - 6.0 * SH_C3[3] * y * z * w12
               - 2.0 * SH_C3[4] * x * y * w13 - 2.0 * SH_C3[5] * y * z * w14 - 6.0 * SH_C3[6] * x * y * w15)
        gz += (SH_C3[1] * x * y * w10 + 8.0 * SH_C3[2] * y * z * w11
               + SH_C3[3] * (6.0 * zz - 3.0 * xx - 3.0 * yy) * w12 + 8.0 * SH_C3[4] * x * z * w13
               + SH_C3[5] * (xx - yy) * w14)
    return gx, gy, gz


@njit(cache=True, fastmath=FASTMATH)
def sh_color(sh, n, basis, n_bases):
    """Unclamped colour (r, g, b) = 0.5 + Σ_k basis[k] sh[n, k, :] over the first n_bases."""
    red = green = blue = 0.5
    for b in range(n_bases):
        weight = basis[b]
        red += weight * sh[n, b, 0]
        green += weight * sh[n, b, 1]
        blue += weight * sh[n, b, 2]
    return red, green, blue


@njit(cache=True, fastmath=FASTMATH)
def view_direction(means, n, campos):
    """Unit vector from the camera centre to Gaussian n, and the distance."""
    vx = means[n, 0] - campos[0]
    vy = means[n, 1] - campos[1]
    vz = means[n, 2] - campos[2]
    length = math.sqrt(vx * vx + vy * vy + vz * vz)
    inv = 1.0 / max(length, 1e-12)
    return vx * inv, vy * inv, vz * inv, length


CAMERA_WIDTH = 24  # columns of a camera table row (see camera_table)


@njit(cache=True)
def camera_table(viewmats, Ks, width, height):
    """Per camera [C, 24]: rotation (9, row-major), translation (3), fx, fy, cx, cy, centre (3),
    and gsplat's x/z, y/z clamp limits (x+, x-, y+, y-), computed once per call."""
    table = np.zeros((viewmats.shape[0], CAMERA_WIDTH), np.float64)
    for c in range(viewmats.shape[0]):
        for i in range(3):
            for j in range(3):
                table[c, 3 * i + j] = viewmats[c, i, j]
            table[c, 9 + i] = viewmats[c, i, 3]
        fx, fy, cx, cy = Ks[c, 0, 0], Ks[c, 1, 1], Ks[c, 0, 2], Ks[c, 1, 2]
        table[c, 12], table[c, 13], table[c, 14], table[c, 15] = fx, fy, cx, cy
        for i in range(3):  # centre = -Rᵀ t
            table[c, 16 + i] = -(viewmats[c, 0, i] * viewmats[c, 0, 3] + viewmats[c, 1, i] * viewmats[c, 1, 3]
                                 + viewmats[c, 2, i] * viewmats[c, 2, 3])
        table[c, 19] = (width - cx) / fx + 0.3 * (0.5 * width / fx)
        table[c, 20] = cx / fx + 0.3 * (0.5 * width / fx)
        table[c, 21] = (height - cy) / fy + 0.3 * (0.5 * height / fy)
        table[c, 22] = cy / fy + 0.3 * (0.5 * height / fy)
    return table


@njit(cache=True, fastmath=FASTMATH)
def camera_setup(table, c):
    """Rotation (row-major 9-tuple), translation, intrinsics and centre of camera c."""
    w = (table[c, 0], table[c, 1], table[c, 2], table[c, 3], table[c, 4], table[c, 5],
         table[c, 6], table[c, 7], table[c, 8])
    return w, (table[c, 9], table[c, 10], table[c, 11]), table[c, 12], table[c, 13], table[c, 14], table[c, 15], \
        (table[c, 16], table[c, 17], table[c, 18])


@njit(cache=True, fastmath=FASTMATH)
def to_camera(table, c, mx, my, mz):
    """Camera-space (x, y, z) of a world point."""
    return (table[c, 0] * mx + table[c, 1] * my + table[c, 2] * mz + table[c, 9],
            table[c, 3] * mx + table[c, 4] * my + table[c, 5] * mz + table[c, 10],
            table[c, 6] * mx + table[c, 7] * my + table[c, 8] * mz + table[c, 11])


# ------------------------------------------------------------------- static-scene preparation
@njit(parallel=True, cache=True, fastmath=FASTMATH)
def prepare_gaussians(means, quats, log_scales, opacity_logits, sh, positions, covariances, opacity, sigma_max,
                      extent, max_scale, colours):
    """What does not change between frames, computed once per scene (SoA float32, [rows, N]).

    ``positions`` [3, N]; ``covariances`` [6, N] world Σ3d (xx, xy, xz, yy, yz, zz);
    ``opacity`` [N] = sigmoid(logit); ``sigma_max`` [N] = ln(255 o), the quadratic-form bound of
    alpha >= 1/255 (-1 when o < 1/255: never visible); ``extent`` [N] = min(3.33, sqrt(2
    sigma_max)), the exact opacity-aware reach in standard deviations; ``max_scale`` [N] the
    largest standard deviation; ``colours`` [3, N] the degree-0 colour 0.5 + C0 sh[:, 0]
    (unclamped: view-dependent bands add to it).
    """
    for n in prange(means.shape[0]):
        positions[0, n] = means[n, 0]
        positions[1, n] = means[n, 1]
        positions[2, n] = means[n, 2]
        r = quat_rotation(quats[n, 0], quats[n, 1], quats[n, 2], quats[n, 3])
        sx, sy, sz = math.exp(log_scales[n, 0]), math.exp(log_scales[n, 1]), math.exp(log_scales[n, 2])
        cov = covariance_world(r, sx, sy, sz)
        for i in range(6):
            covariances[i, n] = cov[i]
        o = 1.0 / (1.0 + math.exp(-opacity_logits[n]))
        opacity[n] = o
        if o < ALPHA_THRESHOLD:
            sigma_max[n] = -1.0
            extent[n] = 0.0
        else:
            s_max = math.log(o * 255.0)
            sigma_max[n] = s_max
            extent[n] = min(3.33, math.sqrt(2.0 * s_max))
        max_scale[n] = max(sx, max(sy, sz))
        for ch in range(3):
            colours[ch, n] = 0.5 + SH_C0 * sh[n, 0, ch]


@njit(cache=True)
def camera_jobs(ranges, chunk_size):
    """Split camera c's Gaussian range [ranges[c, 0], ranges[c, 1]) into chunks of about
    ``chunk_size``; returns bounds [C, K + 1] (K = the most chunks any camera needs; a camera
    with fewer repeats its end bound, giving empty chunks)."""
    n_cams = ranges.shape[0]
    n_chunks = 1
    for c in range(n_cams):
        n_chunks = max(n_chunks, min(256, -(-(ranges[c, 1] - ranges[c, 0]) // chunk_size)))
    bounds = np.empty((n_cams, n_chunks + 1), np.int64)
    for c in range(n_cams):
        lo, length = ranges[c, 0], ranges[c, 1] - ranges[c, 0]
        for k in range(n_chunks + 1):
            bounds[c, k] = lo + (length * k) // n_chunks
    return bounds


@njit(cache=True, fastmath=FASTMATH)
def mark_candidates(table, c, positions, max_scale, extent, lo, hi, width, height, near, far, flags, flag_base):
    """flags[flag_base + n - lo] (n in [lo, hi)) = a cheap necessary test of ``project``'s
    visibility for camera c: visible opacity, depth in range, and a box bounding the
    opacity-aware extent (extent x (||J row|| x largest scale + sqrt(0.3))) reaching a pixel
    centre. Branch-free float32 over SoA arrays so that it vectorises: most Gaussians of a scene
    are off-screen and should cost a few ns, not a full projection. Returns how many passed."""
    r0, r1, r2 = np.float32(table[c, 0]), np.float32(table[c, 1]), np.float32(table[c, 2])
    r3, r4, r5 = np.float32(table[c, 3]), np.float32(table[c, 4]), np.float32(table[c, 5])
    r6, r7, r8 = np.float32(table[c, 6]), np.float32(table[c, 7]), np.float32(table[c, 8])
    t0, t1, t2 = np.float32(table[c, 9]), np.float32(table[c, 10]), np.float32(table[c, 11])
    fx, fy = np.float32(table[c, 12]), np.float32(table[c, 13])
    cx, cy = np.float32(table[c, 14]), np.float32(table[c, 15])
    lim_x_pos, lim_x_neg = np.float32(table[c, 19]), np.float32(table[c, 20])
    lim_y_pos, lim_y_neg = np.float32(table[c, 21]), np.float32(table[c, 22])
    near32, far32 = np.float32(near), np.float32(far)
    u_max, v_max = np.float32(width - 0.5), np.float32(height - 0.5)
    dilation = np.float32(0.5478)  # > sqrt(0.3)
    slack = np.float32(1e-3)
    count = 0
    for n in range(lo, hi):
        mx, my, mz = positions[0, n], positions[1, n], positions[2, n]
        x = r0 * mx + r1 * my + r2 * mz + t0
        y = r3 * mx + r4 * my + r5 * mz + t1
        z = r6 * mx + r7 * my + r8 * mz + t2
        in_depth = (z > near32) & (z < far32)
        rz = F1 / max(z, near32)
        tx = min(max(x * rz, -lim_x_neg), lim_x_pos)
        ty = min(max(y * rz, -lim_y_neg), lim_y_pos)
        scale = max_scale[n] * rz
        k = extent[n]
        half_x = k * (fx * scale * math.sqrt(F1 + tx * tx) + dilation) + slack
        half_y = k * (fy * scale * math.sqrt(F1 + ty * ty) + dilation) + slack
        u = fx * x * rz + cx
        v = fy * y * rz + cy
        on_screen = (u + half_x >= HALF) & (u - half_x <= u_max) & (v + half_y >= HALF) & (v - half_y <= v_max)
        passed = in_depth & on_screen & (k > F0)
        flags[flag_base + n - lo] = passed
        count += passed
    return count


# ------------------------------------------------------------------------------- projection
@njit(parallel=True, cache=True, fastmath=FASTMATH)
def project(positions, covariances, opacity, sigma_max, extent, max_scale, colours, sh, viewmats, Ks, width, height,
            near, far, sh_degree, radius_clip, want_color, bounds):
    """Project the prepared Gaussians (see ``prepare_gaussians``) into every camera.

    Camera c sees Gaussians [bounds[c, 0], bounds[c, K]), in chunks [bounds[c, k], bounds[c, k+1])
    (``camera_jobs``): one batched call can give each camera its own scene. A first pass marks the
    candidates that may be visible, which sizes the outputs (a few times smaller than C x N rows);
    the second projects them. For camera c the visible Gaussians of chunk k go to rows
    region_start[c, k] + 0.. of ``proj[c]`` [C, capacity, 16] (packed layout), with their index
    in ``source`` [C, capacity] and depth in ``depth_keys`` [C, capacity]; ``counts`` [C, K]
    says how many. Returns (proj, source, depth_keys, counts, region_start). Visible: near < z <
    far, det(Σ2d) > 0, opacity >= 1/255, radius > radius_clip, and the alpha >= 1/255 box holds
    at least one pixel centre. Colour: ``colours`` for sh_degree 0, else the SH of ``sh``.
    """
    n_cams = viewmats.shape[0]
    n_chunks = bounds.shape[1] - 1
    n_jobs = n_cams * n_chunks
    n_bases = (sh_degree + 1) * (sh_degree + 1)
    table = camera_table(viewmats, Ks, width, height)
    flag_base = np.zeros(n_cams + 1, np.int64)
    for c in range(n_cams):
        flag_base[c + 1] = flag_base[c] + bounds[c, n_chunks] - bounds[c, 0]
    flags = np.empty(flag_base[n_cams], np.bool_)
    candidates = np.zeros((n_cams, n_chunks), np.int64)
    for job in prange(n_jobs):
        c = job // n_chunks
        k = job % n_chunks
        lo, hi = bounds[c, k], bounds[c, k + 1]
        candidates[c, k] = mark_candidates(table, c, positions, max_scale, extent, lo, hi, width, height, near, far,
                                           flags, flag_base[c] + lo - bounds[c, 0])
    region_start = np.zeros((n_cams, n_chunks), np.int64)
    capacity = 1
    for c in range(n_cams):
        running = 0
        for k in range(n_chunks):
            region_start[c, k] = running
            running += candidates[c, k]
        capacity = max(capacity, running)
    proj = np.empty((n_cams, capacity, REC_WIDTH), np.float32)
    source = np.empty((n_cams, capacity), np.int32)
    depth_keys = np.empty((n_cams, capacity), np.float32)
    counts = np.zeros((n_cams, n_chunks), np.int64)
    order = job_order(n_jobs)  # mix index ranges: visible Gaussians cluster by object
    for job_index in prange(n_jobs):
        job = order[job_index]
        c = job // n_chunks
        k = job % n_chunks
        if candidates[c, k] == 0:
            continue
        lo, hi = bounds[c, k], bounds[c, k + 1]
        counts[c, k] = project_range(table, c, positions, covariances, opacity, sigma_max, extent, colours, sh, lo, hi,
                                     flags, flag_base[c] - bounds[c, 0], width, height, near, far, sh_degree,
                                     radius_clip, want_color, proj, source, depth_keys, region_start[c, k])
    return proj, source, depth_keys, counts, region_start


@njit(cache=True, fastmath=FASTMATH)
def sh_colour32(sh, n, degree, x, y, z):
    """Unclamped colour 0.5 + Σ_k basis_k(x, y, z) sh[n, k, :] up to ``degree``, float32, with the
    basis written out as scalars (no basis array, no float64 conversions per coefficient)."""
    r = HALF + np.float32(SH_C0) * sh[n, 0, 0]
    g = HALF + np.float32(SH_C0) * sh[n, 0, 1]
    b = HALF + np.float32(SH_C0) * sh[n, 0, 2]
    if degree >= 1:
        b1 = np.float32(-SH_C1) * y
        b2 = np.float32(SH_C1) * z
        b3 = np.float32(-SH_C1) * x
        r += b1 * sh[n, 1, 0] + b2 * sh[n, 2, 0] + b3 * sh[n, 3, 0]
        g += b1 * sh[n, 1, 1] + b2 * sh[n, 2, 1] + b3 * sh[n, 3, 1]
        b += b1 * sh[n, 1, 2] + b2 * sh[n, 2, 2] + b3 * sh[n, 3, 2]
        if degree >= 2:
            xx, yy, zz = x * x, y * y, z * z
            b4 = np.float32(SH_C2[0]) * x * y
            b5 = np.float32(SH_C2[1]) * y * z
            b6 = np.float32(SH_C2[2]) * (F2 * zz - xx - yy)
            b7 = np.float32(SH_C2[3]) * x * z
            b8 = np.float32(SH_C2[4]) * (xx - yy)
            r += b4 * sh[n, 4, 0] + b5 * sh[n, 5, 0] + b6 * sh[n, 6, 0] + b7 * sh[n, 7, 0] + b8 * sh[n, 8, 0]
            g += b4 * sh[n, 4, 1] + b5 * sh[n, 5, 1] + b6 * sh[n, 6, 1] + b7 * sh[n, 7, 1] + b8 * sh[n, 8, 1]
            b += b4 * sh[n, 4, 2] + b5 * sh[n, 5, 2] + b6 * sh[n, 6, 2] + b7 * sh[n, 7, 2] + b8 * sh[n, 8, 2]
            if degree >= 3:
                three, four = np.float32(3.0), np.float32(4.0)
                b9 = np.float32(SH_C3[0]) * y * (three * xx - yy)
                b10 = np.float32(SH_C3[1]) * x * y * z
                b11 = np.float32(SH_C3[2]) * y * (four * zz - xx - yy)
                b12 = np.float32(SH_C3[3]) * z * (F2 * zz - three * xx - three * yy)
                b13 = np.float32(SH_C3[4]) * x * (four * zz - xx - yy)
                b14 = np.float32(SH_C3[5]) * z * (xx - yy)
                b15 = np.float32(SH_C3[6]) * x * (xx - three * yy)
                r += (b9 * sh[n, 9, 0] + b10 * sh[n, 10, 0] + b11 * sh[n, 11, 0] + b12 * sh[n, 12, 0] + b13 * sh[n, 13, 0]
                      + b14 * sh[n, 14, 0] + b15 * sh[n, 15, 0])
                g += (b9 * sh[n, 9, 1] + b10 * sh[n, 10, 1] + b11 * sh[n, 11, 1] + b12 * sh[n, 12, 1] + b13 * sh[n, 13, 1]
                      + b14 * sh[n, 14, 1] + b15 * sh[n, 15, 1])
                b += (b9 * sh[n, 9, 2] + b10 * sh[n, 10, 2] + b11 * sh[n, 11, 2] + b12 * sh[n, 12, 2] + b13 * sh[n, 13, 2]
                      + b14 * sh[n, 14, 2] + b15 * sh[n, 15, 2])
    return r, g, b


@njit(cache=True, fastmath=FASTMATH)
def project_range(table, c, positions, covariances, opacity, sigma_max, extent, colours, sh, lo, hi, flags, flag_offset,
                  width, height, near, far, sh_degree, radius_clip, want_color, proj, source, depth_keys, row_start):
    """Project the candidates n in [lo, hi) (``flags[flag_offset + n]``) of camera c into rows
    row_start + 0.. of ``proj[c]``; returns how many were visible (see ``project``).

    float32 throughout, with the camera's constants in local scalars (read from the float64
    table once, not per Gaussian: the writes to ``proj`` could alias it, so the compiler would
    reload them), the same maths as ``camera_jacobian``, ``rotate_covariance`` and
    ``project_covariance``."""
    w0, w1, w2 = np.float32(table[c, 0]), np.float32(table[c, 1]), np.float32(table[c, 2])
    w3, w4, w5 = np.float32(table[c, 3]), np.float32(table[c, 4]), np.float32(table[c, 5])
    w6, w7, w8 = np.float32(table[c, 6]), np.float32(table[c, 7]), np.float32(table[c, 8])
    t0, t1, t2 = np.float32(table[c, 9]), np.float32(table[c, 10]), np.float32(table[c, 11])
    fx, fy = np.float32(table[c, 12]), np.float32(table[c, 13])
    cx, cy = np.float32(table[c, 14]), np.float32(table[c, 15])
    px, py, pz = np.float32(table[c, 16]), np.float32(table[c, 17]), np.float32(table[c, 18])
    lim_x_pos, lim_x_neg = np.float32(table[c, 19]), np.float32(table[c, 20])
    lim_y_pos, lim_y_neg = np.float32(table[c, 21]), np.float32(table[c, 22])
    near32, far32 = np.float32(near), np.float32(far)
    width_last, height_last = np.float32(width - 1.0), np.float32(height - 1.0)
    clip = np.float32(radius_clip)
    dilation = np.float32(0.3)
    tiny = np.float32(1e-12)
    colour_mode = 0 if not want_color else (1 if sh_degree == 0 else 2)
    filled = 0
    for n in range(lo, hi):
        if not flags[flag_offset + n]:
            continue
        mx, my, mz = positions[0, n], positions[1, n], positions[2, n]
        x = w0 * mx + w1 * my + w2 * mz + t0
        y = w3 * mx + w4 * my + w5 * mz + t1
        z = w6 * mx + w7 * my + w8 * mz + t2
        if not (z > near32 and z < far32):
            continue
        # gsplat's Jacobian with x/z, y/z clamped (camera_jacobian)
        rz = F1 / z
        tx = min(max(x * rz, -lim_x_neg), lim_x_pos)
        ty = min(max(y * rz, -lim_y_neg), lim_y_pos)
        j00, j02 = fx * rz, -fx * tx * rz
        j11, j12 = fy * rz, -fy * ty * rz
        # Σcam = W Σ Wᵀ (rotate_covariance), then J Σcam Jᵀ + 0.3 I (project_covariance)
        s00, s01, s02 = covariances[0, n], covariances[1, n], covariances[2, n]
        s11, s12, s22 = covariances[3, n], covariances[4, n], covariances[5, n]
        a00 = w0 * s00 + w1 * s01 + w2 * s02
        a01 = w0 * s01 + w1 * s11 + w2 * s12
        a02 = w0 * s02 + w1 * s12 + w2 * s22
        a10 = w3 * s00 + w4 * s01 + w5 * s02
        a11 = w3 * s01 + w4 * s11 + w5 * s12
        a12 = w3 * s02 + w4 * s12 + w5 * s22
        a20 = w6 * s00 + w7 * s01 + w8 * s02
        a21 = w6 * s01 + w7 * s11 + w8 * s12
        a22 = w6 * s02 + w7 * s12 + w8 * s22
        c00 = a00 * w0 + a01 * w1 + a02 * w2
        c01 = a00 * w3 + a01 * w4 + a02 * w5
        c02 = a00 * w6 + a01 * w7 + a02 * w8
        c11 = a10 * w3 + a11 * w4 + a12 * w5
        c12 = a10 * w6 + a11 * w7 + a12 * w8
        c22 = a20 * w6 + a21 * w7 + a22 * w8
        sxx = j00 * j00 * c00 + F2 * j00 * j02 * c02 + j02 * j02 * c22 + dilation
        sxy = j00 * j11 * c01 + j00 * j12 * c02 + j02 * j11 * c12 + j02 * j12 * c22
        syy = j11 * j11 * c11 + F2 * j11 * j12 * c12 + j12 * j12 * c22 + dilation
        det = sxx * syy - sxy * sxy
        if not det > F0:
            continue
        reach = extent[n]
        half_x = reach * math.sqrt(sxx)
        half_y = reach * math.sqrt(syy)
        if math.ceil(half_x) <= clip and math.ceil(half_y) <= clip:
            continue
        u = fx * x * rz + cx
        v = fy * y * rz + cy
        # pixel u covers centre u + 0.5: the inclusive range of centres in the box
        u0 = max(np.ceil(u - half_x - HALF), F0)
        u1 = min(np.floor(u + half_x - HALF), width_last)
        v0 = max(np.ceil(v - half_y - HALF), F0)
        v1 = min(np.floor(v + half_y - HALF), height_last)
        if u0 > u1 or v0 > v1:
            continue
        row = row_start + filled
        filled += 1
        inv_det = F1 / det
        # direct element writes: a row view would cost two atomic refcount updates
        proj[c, row, REC_MX] = u
        proj[c, row, REC_MY] = v
        proj[c, row, REC_CA] = syy * inv_det
        proj[c, row, REC_CB] = -sxy * inv_det
        proj[c, row, REC_CC] = sxx * inv_det
        proj[c, row, REC_OPACITY] = opacity[n]
        proj[c, row, REC_SIGMA_MAX] = sigma_max[n]
        proj[c, row, REC_Z] = z
        proj[c, row, REC_U0] = u0
        proj[c, row, REC_U1] = u1
        proj[c, row, REC_V0] = v0
        proj[c, row, REC_V1] = v1
        proj[c, row, 15] = F0
        if colour_mode == 0:  # the backward multiplies colours by zero gradients: keep them finite
            red = green = blue = F0
        elif colour_mode == 1:
            red, green, blue = colours[0, n], colours[1, n], colours[2, n]
        else:
            vx, vy, vz = mx - px, my - py, mz - pz
            inv = F1 / max(math.sqrt(vx * vx + vy * vy + vz * vz), tiny)
            red, green, blue = sh_colour32(sh, n, sh_degree, vx * inv, vy * inv, vz * inv)
        proj[c, row, REC_R] = max(red, F0)
        proj[c, row, REC_G] = max(green, F0)
        proj[c, row, REC_B] = max(blue, F0)
        source[c, row] = n
        depth_keys[c, row] = z
    return filled


# ------------------------------------------------------------------------------- depth sort
RADIX_BITS = 11
RADIX_BUCKETS = 1 << RADIX_BITS


@njit(parallel=True, cache=True)
def _radix_pass(keys_in, values_in, keys_out, values_out, shift, chunk_bounds):
    """One stable counting-sort pass on bits [shift, shift + 11) of ``keys_in``.

    Returns False (and writes nothing) when every key has the same digit: the pass would be
    the identity, which is common for the high bits of depths that share an exponent.
    """
    n_chunks = chunk_bounds.shape[0] - 1
    histogram = np.zeros((n_chunks, RADIX_BUCKETS), np.int64)
    for k in prange(n_chunks):
        for i in range(chunk_bounds[k], chunk_bounds[k + 1]):
            histogram[k, (keys_in[i] >> shift) & (RADIX_BUCKETS - 1)] += 1
    total = keys_in.shape[0]
    running = 0
    for d in range(RADIX_BUCKETS):
        digit_count = 0
        for k in range(n_chunks):
            count = histogram[k, d]
            histogram[k, d] = running
            running += count
            digit_count += count
        if digit_count == total:
            return False
    for k in prange(n_chunks):
        for i in range(chunk_bounds[k], chunk_bounds[k + 1]):
            d = (keys_in[i] >> shift) & (RADIX_BUCKETS - 1)
            position = histogram[k, d]
            histogram[k, d] = position + 1
            keys_out[position] = keys_in[i]
            values_out[position] = values_in[i]
    return True


@njit(cache=True)
def even_chunks(n, n_chunks):
    """Bounds [n_chunks + 1] splitting range(n) into near-equal parts."""
    bounds = np.empty(n_chunks + 1, np.int64)
    for k in range(n_chunks + 1):
        bounds[k] = (n * k) // n_chunks
    return bounds


@njit(cache=True)
def flip_float_bits(bits):
    """Map float32 bits to a uint32 whose unsigned order is the float order (negatives too)."""
    return bits ^ (np.uint32(0xFFFFFFFF) if bits >> 31 else np.uint32(0x80000000))


@njit(parallel=True, cache=True)
def _gather_visible(depth_keys_bits, region_start, counts, camera, offsets, keys, rows):
    """Copy camera c's per-chunk visible keys and proj rows into dense arrays (index order)."""
    n_chunks = region_start.shape[1]
    for k in prange(n_chunks):
        lo = region_start[camera, k]
        for j in range(counts[camera, k]):
            keys[offsets[k] + j] = flip_float_bits(depth_keys_bits[camera, lo + j])
            rows[offsets[k] + j] = lo + j


@njit(cache=True)
def sort_by_depth(depth_keys_bits, region_start, counts, n_sort_chunks):
    """Per camera, the proj rows of its visible Gaussians sorted front to back (stable).

    ``depth_keys_bits`` [C, capacity] holds float32 depth bits (flipped so that their unsigned
    order is the float order, which makes an LSD radix sort exact); camera c's chunk k holds
    ``counts[c, k]`` of them from row ``region_start[c, k]`` (see ``project``). Returns ``order`` [M]
    (concatenated over cameras) and ``camera_offsets`` [C + 1].
    """
    n_cams, n_chunks = counts.shape
    camera_offsets = np.zeros(n_cams + 1, np.int64)
    for c in range(n_cams):
        camera_offsets[c + 1] = camera_offsets[c] + counts[c].sum()
    order = np.empty(camera_offsets[n_cams], np.int32)
    if n_cams == 1 and camera_offsets[1] >= PARALLEL_SORT_MIN:
        m = camera_offsets[1]
        offsets = np.zeros(n_chunks, np.int64)
        for k in range(1, n_chunks):
            offsets[k] = offsets[k - 1] + counts[0, k - 1]
        keys = np.empty(m, np.uint32)
        rows = np.empty(m, np.int32)
        _gather_visible(depth_keys_bits, region_start, counts, 0, offsets, keys, rows)
        keys_tmp = np.empty(m, np.uint32)
        rows_tmp = np.empty(m, np.int32)
        bounds = even_chunks(m, max(1, min(n_sort_chunks, m // 2048)))
        for shift in range(0, 32, RADIX_BITS):
            if _radix_pass(keys, rows, keys_tmp, rows_tmp, shift, bounds):
                keys, keys_tmp = keys_tmp, keys
                rows, rows_tmp = rows_tmp, rows
        order[:] = rows
    else:
        _sort_cameras(depth_keys_bits, region_start, counts, camera_offsets, order)
    return order, camera_offsets


# below this many visible Gaussians a camera is sorted by one thread: each parallel pass is a
# fork/join, which costs more than it saves on small inputs and a lot on a busy machine
PARALLEL_SORT_MIN = 65536


@njit(parallel=True, cache=True)
def _sort_cameras(depth_keys_bits, region_start, counts, camera_offsets, order):
    """Sort each camera's visible Gaussians on its own thread (one fork/join for all)."""
    n_cams, n_chunks = counts.shape
    for c in prange(n_cams):
        m = camera_offsets[c + 1] - camera_offsets[c]
        keys = np.empty(m, np.uint32)
        rows = np.empty(m, np.int32)
        position = 0
        for k in range(n_chunks):
            lo = region_start[c, k]
            for j in range(counts[c, k]):
                keys[position] = flip_float_bits(depth_keys_bits[c, lo + j])
                rows[position] = lo + j
                position += 1
        keys_tmp = np.empty(m, np.uint32)
        rows_tmp = np.empty(m, np.int32)
        histogram = np.empty(RADIX_BUCKETS, np.int64)
        for shift in range(0, 32, RADIX_BITS):
            histogram[:] = 0
            for i in range(m):
                histogram[(keys[i] >> shift) & (RADIX_BUCKETS - 1)] += 1
            running = 0
            single_digit = False
            for d in range(RADIX_BUCKETS):
                count = histogram[d]
                single_digit |= count == m
                histogram[d] = running
                running += count
            if single_digit:  # the pass would be the identity
                continue
            for i in range(m):
                d = (keys[i] >> shift) & (RADIX_BUCKETS - 1)
                keys_tmp[histogram[d]] = keys[i]
                rows_tmp[histogram[d]] = rows[i]
                histogram[d] += 1
            keys, keys_tmp = keys_tmp, keys
            rows, rows_tmp = rows_tmp, rows
        order[camera_offsets[c]:camera_offsets[c + 1]] = rows


# ------------------------------------------------------------------------------ tile binning
@njit(cache=True)
def _tile_box(packed, i):
    """Inclusive tile range (x0, x1, y0, y1) of packed row i's pixel box."""
    return (int(packed[i, REC_U0]) // TILE, int(packed[i, REC_U1]) // TILE,
            int(packed[i, REC_V0]) // TILE, int(packed[i, REC_V1]) // TILE)


@njit(parallel=True, cache=True)
def bin_tiles(proj, source, order, camera_offsets, labels, tiles_x, tiles_y, n_chunks):
    """Gather projected Gaussians into depth order and list, per tile, the ones reaching it.

    Returns ``packed`` [M, 16], ``packed_source`` [M] (Gaussian index), ``packed_label`` [M]
    (labels[source], or zeros when ``labels`` is empty), ``tile_start`` [C * T + 1] and
    ``tile_entries`` [E] (packed rows; within a tile in depth order since chunks are
    consecutive ranges of the sorted order and are written chunk by chunk).
    """
    n_cams = camera_offsets.shape[0] - 1
    m = order.shape[0]
    tiles_per_camera = tiles_x * tiles_y
    n_jobs = n_cams * tiles_per_camera
    packed = np.empty((m, REC_WIDTH), np.float32)
    packed_source = np.empty(m, np.int32)
    packed_label = np.zeros(m, np.int32)
    has_labels = labels.shape[0] > 0
    bounds = even_chunks(m, n_chunks)
    counts = np.zeros((n_chunks, n_jobs), np.int32)
    for k in prange(n_chunks):
        # the gather first, on its own: its rows are random cache misses, and a loop with
        # nothing data-dependent in it lets the CPU keep many of them in flight
        c = 0
        for i in range(bounds[k], bounds[k + 1]):
            while i >= camera_offsets[c + 1]:
                c += 1
            row = order[i]
            for q in range(REC_WIDTH):  # element copy: a row view costs refcount updates
                packed[i, q] = proj[c, row, q]
            packed_source[i] = source[c, row]
        c = 0
        for i in range(bounds[k], bounds[k + 1]):
            while i >= camera_offsets[c + 1]:
                c += 1
            if has_labels:
                packed_label[i] = labels[packed_source[i]]
            tx0, tx1, ty0, ty1 = _tile_box(packed, i)
            base = c * tiles_per_camera
            for ty in range(ty0, ty1 + 1):
                for tx in range(tx0, tx1 + 1):
                    counts[k, base + ty * tiles_x + tx] += 1
    # tile-major, chunk-minor offsets: chunk k's entries of a tile follow chunk k-1's
    tile_start = np.empty(n_jobs + 1, np.int64)
    running = 0
    for j in range(n_jobs):
        tile_start[j] = running
        for k in range(n_chunks):
            count = counts[k, j]
            counts[k, j] = running
            running += count
    tile_start[n_jobs] = running
    tile_entries = np.empty(running, np.int32)
    for k in prange(n_chunks):
        c = 0
        for i in range(bounds[k], bounds[k + 1]):
            while i >= camera_offsets[c + 1]:
                c += 1
            tx0, tx1, ty0, ty1 = _tile_box(packed, i)
            base = c * tiles_per_camera
            for ty in range(ty0, ty1 + 1):
                for tx in range(tx0, tx1 + 1):
                    j = base + ty * tiles_x + tx
                    tile_entries[counts[k, j]] = i
                    counts[k, j] += 1
    return packed, packed_source, packed_label, tile_start, tile_entries


@njit(cache=True)
def job_order(n_jobs):
    """Jobs in bit-reversed order (0, n/2, n/4, 3n/4, ...): numba splits a prange statically
    into one contiguous block per thread, and every block of this order samples the whole
    range evenly (for any power-of-two thread count), so each thread gets a mix of image
    regions (sky and clutter cost very differently) or of Gaussian index ranges (visible
    Gaussians cluster by object)."""
    bits = 0
    while (1 << bits) < n_jobs:
        bits += 1
    keys = np.empty(n_jobs, np.int64)
    for j in range(n_jobs):
        reversed_j = 0
        for bit in range(bits):
            reversed_j |= ((j >> bit) & 1) << (bits - 1 - bit)
        keys[j] = reversed_j
    return np.argsort(keys)


@njit(cache=True)
def _tile_label_slots(packed_label, tile_entries, start, end):
    """The distinct labels of entries [start, end) (sorted), each entry's slot among them, and
    zeroed per-slot pixel weights [labels, TILE, TILE]. A separate function: inside a prange body,
    numba's parfor passes mis-handle these array expressions."""
    entry_label = np.empty(end - start, np.int32)
    for e in range(start, end):
        entry_label[e - start] = packed_label[tile_entries[e]]
    tile_labels = np.unique(entry_label)
    entry_slot = np.searchsorted(tile_labels, entry_label).astype(np.int32)
    return tile_labels, entry_slot, np.zeros((tile_labels.shape[0], TILE, TILE), np.float32)


@njit(cache=True)
def tile_geometry(job, tiles_x, tiles_per_camera, width, height):
    """Camera, top-left pixel (x0, y0) and in-image size (cols, rows) of tile job ``job``."""
    tile = job % tiles_per_camera
    x0 = (tile % tiles_x) * TILE
    y0 = (tile // tiles_x) * TILE
    return job // tiles_per_camera, x0, y0, min(TILE, width - x0), min(TILE, height - y0)


# --------------------------------------------------------------------------- rasterisation
@njit(inline="always", fastmath=FASTMATH, cache=True)
def blend_pixel(sigma, sigma_max, opacity, t):
    """One Gaussian on one pixel with transmittance ``t`` (negative once the pixel stopped):
    (blend weight, transmittance after, whether the pixel stops here)."""
    alpha = min(MAX_ALPHA, opacity * fast_exp_neg(sigma))
    next_t = t * (F1 - alpha)
    hit = (sigma <= sigma_max) & (t > F0)
    blend = hit & (next_t > TRANSMITTANCE_STOP)
    ends = hit & (next_t <= TRANSMITTANCE_STOP)
    return (alpha * t if blend else F0), (next_t if blend else (-t if ends else t)), ends


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def rasterize_tiles(packed, packed_label, tile_start, tile_entries, n_cams, width, height, tiles_x, tiles_y,
                    background, want_rgb, want_depth, want_median, want_instance, save_stop,
                    out_rgb, out_alpha, out_depth, out_median, out_instance, out_transmittance, out_stop, tile_end):
    """Blend each tile's Gaussians front to back, Gaussian-major (see the module docstring).

    Writes the requested images ([C, H, W, ch]; the unrequested ones may be size-0 arrays) and,
    for the backward pass, per pixel the final transmittance and (when ``save_stop``) the
    tile-local entry index at which the pixel stopped (NO_STOP if it never did), and per tile
    how many entries it used.
    """
    tiles_per_camera = tiles_x * tiles_y
    n_jobs = n_cams * tiles_per_camera
    jobs = job_order(n_jobs)
    for job_index in prange(n_jobs):
        job = jobs[job_index]
        c, x0, y0, cols, rows = tile_geometry(job, tiles_x, tiles_per_camera, width, height)
        # transmittance per pixel; a stopped pixel keeps -T (its final value), pixels outside
        # the image are stopped from the start
        # per-pixel state as [row, lane] arrays: the lane index of the inner loops runs 0..15,
        # so numba's negative-index wraparound folds away and LLVM vectorises the lane loops
        trans = np.empty((TILE, TILE), np.float32)
        for py in range(TILE):
            for px in range(TILE):
                trans[py, px] = F1 if (py < rows and px < cols) else -F1
        stop = np.full((TILE, TILE), NO_STOP, np.int32)
        acc_r = np.zeros((TILE, TILE), np.float32)
        acc_g = np.zeros((TILE, TILE), np.float32)
        acc_b = np.zeros((TILE, TILE), np.float32)
        acc_z = np.zeros((TILE, TILE), np.float32)
        median = np.zeros((TILE, TILE), np.float32)
        weights = np.empty(TILE, np.float32)
        before = np.empty(TILE, np.float32)
        start = tile_start[job]
        end = tile_start[job + 1]
        # instance: the distinct labels of this tile, a compact slot per entry, weights per slot
        tile_labels, entry_slot, label_weights = _tile_label_slots(
            packed_label, tile_entries, start, end if want_instance else start)
        used = end - start
        for e in range(start, end):
            local = np.int32(e - start)
            if local % 16 == 0 and local > 0:
                alive = F0
                for py in range(TILE):
                    for px in range(TILE):
                        alive = max(alive, trans[py, px])
                if alive <= F0:
                    used = local
                    break
            g = tile_entries[e]
            mx = packed[g, REC_MX]
            my = packed[g, REC_MY]
            half_a = HALF * packed[g, REC_CA]
            cb = packed[g, REC_CB]
            half_c = HALF * packed[g, REC_CC]
            opacity = packed[g, REC_OPACITY]
            sigma_max = packed[g, REC_SIGMA_MAX]
            z = packed[g, REC_Z]
            v_lo = max(int(packed[g, REC_V0]), y0)
            v_hi = min(int(packed[g, REC_V1]), y0 + rows - 1)
            dx0 = np.float32(x0) + HALF - mx
            for v in range(v_lo, v_hi + 1):
                dy = np.float32(v) + HALF - my
                lin = cb * dy
                const = half_c * dy * dy
                row = v - y0
                # the stop index is recorded in the blending loop (a separate pass over the row
                # cost a third of the rasteriser); the loop is written twice so that the
                # forward-only render does not pay for it
                if save_stop:
                    for i in range(TILE):
                        dx = dx0 + np.float32(i)
                        t = trans[row, i]
                        weights[i], trans[row, i], ends = blend_pixel((half_a * dx + lin) * dx + const, sigma_max, opacity, t)
                        before[i] = t
                        stop[row, i] = local if ends else stop[row, i]
                else:
                    for i in range(TILE):
                        dx = dx0 + np.float32(i)
                        t = trans[row, i]
                        weights[i], trans[row, i], _ = blend_pixel((half_a * dx + lin) * dx + const, sigma_max, opacity, t)
                        before[i] = t
                if want_rgb:
                    cr = packed[g, REC_R]
                    cg = packed[g, REC_G]
                    cbl = packed[g, REC_B]
                    for i in range(TILE):
                        acc_r[row, i] += weights[i] * cr
                        acc_g[row, i] += weights[i] * cg
                        acc_b[row, i] += weights[i] * cbl
                if want_depth:
                    for i in range(TILE):
                        acc_z[row, i] += weights[i] * z
                if want_median:
                    for i in range(TILE):
                        crossed = (weights[i] > F0) & (before[i] > MEDIAN_TRANSMITTANCE) & (
                            before[i] - weights[i] <= MEDIAN_TRANSMITTANCE)
                        median[row, i] = z if crossed else median[row, i]
                if want_instance:
                    slot = entry_slot[local]
                    for i in range(TILE):
                        label_weights[slot, row, i] += weights[i]
        tile_end[job] = used
        for py in range(rows):
            for px in range(cols):
                final_t = abs(trans[py, px])
                alpha = F1 - final_t
                v = y0 + py
                u = x0 + px
                out_alpha[c, v, u, 0] = alpha
                out_transmittance[c, v, u] = final_t
                out_stop[c, v, u] = stop[py, px]
                if want_rgb:
                    out_rgb[c, v, u, 0] = acc_r[py, px] + final_t * background[c, 0]
                    out_rgb[c, v, u, 1] = acc_g[py, px] + final_t * background[c, 1]
                    out_rgb[c, v, u, 2] = acc_b[py, px] + final_t * background[c, 2]
                if want_depth:
                    out_depth[c, v, u, 0] = acc_z[py, px] / alpha if alpha > F0 else F0
                if want_median:
                    out_median[c, v, u, 0] = median[py, px]
                if want_instance:
                    label = -1
                    if alpha >= HALF and tile_labels.shape[0] > 0:
                        best = 0
                        for s in range(1, tile_labels.shape[0]):
                            if label_weights[s, py, px] > label_weights[best, py, px]:
                                best = s
                        label = tile_labels[best]
                    out_instance[c, v, u, 0] = label


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def rasterize_tiles_backward(packed, tile_start, tile_entries, tile_end, n_cams, width, height, tiles_x, tiles_y,
                             background, out_alpha, out_depth, out_transmittance, out_stop,
                             grad_rgb, grad_alpha, grad_depth, grad_buffer):
    """Gradient of the rgb/alpha/depth images w.r.t. each packed Gaussian's 2D parameters.

    ``grad_rgb`` [C,H,W,3], ``grad_alpha`` and ``grad_depth`` [C,H,W,1] may be size-0 arrays
    (no gradient). Each tile walks its entries back to front, recovering T before a Gaussian
    as T_after / (1 - α). Threads add into their own slice of ``grad_buffer``
    [threads, M, GRAD_WIDTH] (numba has no atomics); the projection backward sums the slices.
    """
    tiles_per_camera = tiles_x * tiles_y
    n_jobs = n_cams * tiles_per_camera
    has_rgb = grad_rgb.shape[0] > 0
    has_alpha = grad_alpha.shape[0] > 0
    has_depth = grad_depth.shape[0] > 0
    jobs = job_order(n_jobs)
    for job_index in prange(n_jobs):
        thread = numba.get_thread_id()
        job = jobs[job_index]
        c, x0, y0, cols, rows = tile_geometry(job, tiles_x, tiles_per_camera, width, height)
        # per-pixel state as [row, lane] (see rasterize_tiles)
        trans = np.ones((TILE, TILE), np.float32)
        stop = np.full((TILE, TILE), -1, np.int32)  # outside the image: nothing ever blended
        g_r = np.zeros((TILE, TILE), np.float32)
        g_g = np.zeros((TILE, TILE), np.float32)
        g_b = np.zeros((TILE, TILE), np.float32)
        g_z = np.zeros((TILE, TILE), np.float32)  # dL/d(Σ w z), the unnormalised depth
        # dL/dα_i = T_i q_i - suffix / (1 - α_i), suffix = Σ_{j>i} w_j q_j + T_N (g·bg - g_A)
        suffix = np.zeros((TILE, TILE), np.float32)
        for py in range(rows):
            for px in range(cols):
                p = (py, px)
                v = y0 + py
                u = x0 + px
                final_t = out_transmittance[c, v, u]
                alpha = out_alpha[c, v, u, 0]
                trans[p] = final_t
                stop[p] = out_stop[c, v, u]
                g_alpha_total = grad_alpha[c, v, u, 0] if has_alpha else F0
                if has_rgb:
                    g_r[p] = grad_rgb[c, v, u, 0]
                    g_g[p] = grad_rgb[c, v, u, 1]
                    g_b[p] = grad_rgb[c, v, u, 2]
                if has_depth and alpha > F0:
                    g_depth = grad_depth[c, v, u, 0]
                    g_z[p] = g_depth / alpha
                    g_alpha_total -= g_depth * out_depth[c, v, u, 0] / alpha
                g_background = g_r[p] * background[c, 0] + g_g[p] * background[c, 1] + g_b[p] * background[c, 2]
                suffix[p] = final_t * (g_background - g_alpha_total)
        # a row's pixels blended only entries below their stop index: rows whose largest stop
        # index is <= an entry's skip it
        row_stop = np.zeros(TILE, np.int32)
        for py in range(TILE):
            largest = -1
            for px in range(TILE):
                largest = max(largest, stop[py, px])
            row_stop[py] = largest
        lane_sums = np.zeros((LANE_WIDTH, TILE), np.float32)
        start = tile_start[job]
        for e in range(start + tile_end[job] - 1, start - 1, -1):
            local = e - start
            g = tile_entries[e]
            mx = packed[g, REC_MX]
            my = packed[g, REC_MY]
            ca = packed[g, REC_CA]
            cb = packed[g, REC_CB]
            cc = packed[g, REC_CC]
            half_a = HALF * ca
            half_c = HALF * cc
            opacity = packed[g, REC_OPACITY]
            sigma_max = packed[g, REC_SIGMA_MAX]
            cr = packed[g, REC_R]
            cg = packed[g, REC_G]
            cbl = packed[g, REC_B]
            z = packed[g, REC_Z]
            v_lo = max(int(packed[g, REC_V0]), y0)
            v_hi = min(int(packed[g, REC_V1]), y0 + rows - 1)
            dx0 = np.float32(x0) + HALF - mx
            touched = False
            for v in range(v_lo, v_hi + 1):
                row = v - y0
                if local >= row_stop[row]:
                    continue
                touched = True
                dy = np.float32(v) + HALF - my
                lin = cb * dy
                const = half_c * dy * dy
                for i in range(TILE):
                    p = (row, i)
                    dx = dx0 + np.float32(i)
                    sigma = (half_a * dx + lin) * dx + const
                    gauss = fast_exp_neg(sigma)
                    raw_alpha = opacity * gauss
                    alpha = min(MAX_ALPHA, raw_alpha)
                    blended = (sigma <= sigma_max) & (local < stop[p])
                    inv_one_minus = F1 / (F1 - alpha)
                    t_after = trans[p]
                    t_before = t_after * inv_one_minus
                    q = g_r[p] * cr + g_g[p] * cg + g_b[p] * cbl + g_z[p] * z
                    weight = alpha * t_before if blended else F0
                    g_alpha = (t_before * q - suffix[p] * inv_one_minus) if blended else F0
                    suffix[p] += weight * q
                    trans[p] = t_before if blended else t_after
                    g_alpha = g_alpha if raw_alpha < MAX_ALPHA else F0
                    g_sigma = -g_alpha * alpha
                    # per-lane sums across rows, reduced once per entry (a horizontal sum per
                    # row and quantity would cost more than the lane arithmetic itself)
                    lane_sums[GRAD_OPACITY, i] += g_alpha * gauss
                    lane_sums[GRAD_R, i] += weight * g_r[p]
                    lane_sums[GRAD_G, i] += weight * g_g[p]
                    lane_sums[GRAD_B, i] += weight * g_b[p]
                    lane_sums[GRAD_Z, i] += weight * g_z[p]
                    # the σ terms need only Σ g_σ, Σ g_σ dy, Σ g_σ dy² per lane: dx is fixed
                    # per lane, so the dx factors are applied once per entry below
                    g_sigma_dy = g_sigma * dy
                    lane_sums[LANE_SIGMA, i] += g_sigma
                    lane_sums[LANE_SIGMA_DY, i] += g_sigma_dy
                    lane_sums[LANE_SIGMA_DY2, i] += g_sigma_dy * dy
            if touched:
                for q_index in range(GRAD_R, GRAD_Z + 1):
                    total = F0
                    for i in range(TILE):
                        total += lane_sums[q_index, i]
                        lane_sums[q_index, i] = F0
                    grad_buffer[thread, g, q_index] += total
                # σ = ½a dx² + b dx dy + ½c dy² with d = pixel - mean; dσ/dmean = -(∂σ/∂dx, ∂σ/∂dy)
                sum_opacity = F0
                s_sigma_dx = s_sigma_dx2 = s_sigma_dy = s_sigma_dxdy = s_sigma_dy2 = F0
                for i in range(TILE):
                    dx = dx0 + np.float32(i)
                    lane_sigma = lane_sums[LANE_SIGMA, i]
                    lane_sigma_dy = lane_sums[LANE_SIGMA_DY, i]
                    sum_opacity += lane_sums[GRAD_OPACITY, i]
                    s_sigma_dx += lane_sigma * dx
                    s_sigma_dx2 += lane_sigma * dx * dx
                    s_sigma_dy += lane_sigma_dy
                    s_sigma_dxdy += lane_sigma_dy * dx
                    s_sigma_dy2 += lane_sums[LANE_SIGMA_DY2, i]
                    lane_sums[GRAD_OPACITY, i] = F0
                    lane_sums[LANE_SIGMA, i] = F0
                    lane_sums[LANE_SIGMA_DY, i] = F0
                    lane_sums[LANE_SIGMA_DY2, i] = F0
                grad_buffer[thread, g, GRAD_OPACITY] += sum_opacity
                grad_buffer[thread, g, GRAD_MX] -= ca * s_sigma_dx + cb * s_sigma_dy
                grad_buffer[thread, g, GRAD_MY] -= cb * s_sigma_dx + cc * s_sigma_dy
                grad_buffer[thread, g, GRAD_CA] += HALF * s_sigma_dx2
                grad_buffer[thread, g, GRAD_CB] += s_sigma_dxdy
                grad_buffer[thread, g, GRAD_CC] += HALF * s_sigma_dy2


# -------------------------------------------------------------------- projection backward
@njit(parallel=True, cache=True, fastmath=FASTMATH)
def project_backward(means, quats, log_scales, opacity_logits, sh, viewmats, Ks, width, height, sh_degree,
                     packed, slot, grad_buffer, want_color,
                     g_means, g_quats, g_log_scales, g_opacity_logits, g_sh):
    """Chain the per-camera 2D gradients (``grad_buffer`` summed over threads, at packed row
    ``slot[c, n]``, -1 when not visible) back to the raw parameters of Gaussian n. Exact
    derivative of ``project`` (clamped Jacobian entries included), float32."""
    n_cams = viewmats.shape[0]
    n_threads = grad_buffer.shape[0]
    n_bases = (sh_degree + 1) * (sh_degree + 1)
    n_gaussians = means.shape[0]
    table = camera_table(viewmats, Ks, width, height)
    sh_row_width = g_sh.shape[1] * 3
    g_sh_rows = g_sh.reshape(n_gaussians, sh_row_width)  # a view: zeroed as one contiguous row
    bounds = even_chunks(n_gaussians, max(1, min(64, n_gaussians // 256)))
    chunk_order = job_order(bounds.shape[0] - 1)  # mix index ranges: visible Gaussians cluster
    for chunk_index in prange(bounds.shape[0] - 1):
        k = chunk_order[chunk_index]
        # scratch allocated once per chunk, not per Gaussian (an allocation costs ~100 ns)
        g_cov = np.empty(6, np.float64)  # dL/dΣ3d as a symmetric matrix (xx, xy, xz, yy, yz, zz)
        g_mean = np.empty(3, np.float64)
        grad = np.empty(GRAD_WIDTH, np.float64)
        g_r = np.empty(9, np.float64)
        g_scale = np.empty(3, np.float64)
        basis_values = np.empty(16, np.float64)
        sh_weights = np.empty(16, np.float32)  # Σ_ch sh[n, k, ch] dL/dcolour_ch per basis k
        rot = np.empty(9, np.float64)
        g_full = np.empty(9, np.float64)
        scales = np.empty(3, np.float64)
        for n in range(bounds[k], bounds[k + 1]):
            visible = False
            for c in range(n_cams):
                if slot[c, n] >= 0:
                    visible = True
            # every output element is written here (the caller allocates them uninitialised):
            # zeroing the large SH gradient in this parallel loop saves a serial pass
            for q in range(sh_row_width):
                g_sh_rows[n, q] = F0
            if not visible:
                for i in range(3):
                    g_means[n, i] = 0.0
                    g_log_scales[n, i] = 0.0
                for i in range(4):
                    g_quats[n, i] = 0.0
                g_opacity_logits[n] = 0.0
                continue
            qw, qx, qy, qz = quats[n, 0], quats[n, 1], quats[n, 2], quats[n, 3]
            r = quat_rotation(qw, qx, qy, qz)
            sx, sy, sz = math.exp(log_scales[n, 0]), math.exp(log_scales[n, 1]), math.exp(log_scales[n, 2])
            cov = covariance_world(r, sx, sy, sz)
            g_cov[:] = 0.0
            g_mean[:] = 0.0
            g_opacity = 0.0
            for c in range(n_cams):
                row = slot[c, n]
                if row < 0:
                    continue
                grad[:] = 0.0
                for th in range(n_threads):
                    for q in range(GRAD_WIDTH):
                        grad[q] += grad_buffer[th, row, q]
                w, t, fx, fy, cx, cy, campos = camera_setup(table, c)
                x, y, z = to_camera(table, c, means[n, 0], means[n, 1], means[n, 2])
                j00, j02, j11, j12, tx, ty, clamped_x, clamped_y = camera_jacobian(table, c, x, y, z)
                cc = rotate_covariance(w, cov)
                sxx, sxy, syy = project_covariance(j00, j02, j11, j12, cc)
                det = sxx * syy - sxy * sxy
                # conic = Σ2d⁻¹; dL/dΣ2d = -Q G Q with G = [[ga, gb/2], [gb/2, gc]] (b appears twice)
                qa, qb, qc = syy / det, -sxy / det, sxx / det
                ga, gb, gc = grad[GRAD_CA], HALF * grad[GRAD_CB], grad[GRAD_CC]
                # Q G
                m00 = qa * ga + qb * gb
                m01 = qa * gb + qb * gc
                m10 = qb * ga + qc * gb
                m11 = qb * gb + qc * gc
                g2xx = -(m00 * qa + m01 * qb)
                g2xy = -(m00 * qb + m01 * qc)
                g2yy = -(m10 * qb + m11 * qc)
                # Σ2d = J Σc Jᵀ: dΣc = Jᵀ G2 J, dJ = 2 G2 J Σc (G2 symmetric)
                c00, c01, c02, c11, c12, c22 = cc
                # J rows: [j00, 0, j02], [0, j11, j12]
                gc00 = j00 * j00 * g2xx
                gc01 = j00 * j11 * g2xy
                gc02 = j00 * (j02 * g2xx + j12 * g2xy)
                gc11 = j11 * j11 * g2yy
                gc12 = j11 * (j02 * g2xy + j12 * g2yy)
                gc22 = j02 * j02 * g2xx + 2.0 * j02 * j12 * g2xy + j12 * j12 * g2yy
                # J Σc rows
                js00 = j00 * c00 + j02 * c02
                js01 = j00 * c01 + j02 * c12
                js02 = j00 * c02 + j02 * c22
                js10 = j11 * c01 + j12 * c02
                js11 = j11 * c11 + j12 * c12
                js12 = j11 * c12 + j12 * c22
                g_j00 = 2.0 * (g2xx * js00 + g2xy * js10)
                g_j02 = 2.0 * (g2xx * js02 + g2xy * js12)
                g_j11 = 2.0 * (g2xy * js01 + g2yy * js11)
                g_j12 = 2.0 * (g2xy * js02 + g2yy * js12)
                rz = 1.0 / z
                rz2 = rz * rz
                gpx = grad[GRAD_MX] * fx * rz
                gpy = grad[GRAD_MY] * fy * rz
                gpz = -(grad[GRAD_MX] * fx * x + grad[GRAD_MY] * fy * y) * rz2 + grad[GRAD_Z]
                gpz += -fx * rz2 * g_j00 - fy * rz2 * g_j11
                # j02 = -fx tx / z with tx = clamp(x / z): unclamped -fx x / z², clamped -fx c / z
                if clamped_x:
                    gpz += fx * tx * rz2 * g_j02
                else:
                    gpx += -fx * rz2 * g_j02
                    gpz += 2.0 * fx * x * rz2 * rz * g_j02
                if clamped_y:
                    gpz += fy * ty * rz2 * g_j12
                else:
                    gpy += -fy * rz2 * g_j12
                    gpz += 2.0 * fy * y * rz2 * rz * g_j12
                # p = W m + t
                g_mean[0] += w[0] * gpx + w[3] * gpy + w[6] * gpz
                g_mean[1] += w[1] * gpx + w[4] * gpy + w[7] * gpz
                g_mean[2] += w[2] * gpx + w[5] * gpy + w[8] * gpz
                # Σc = W Σ Wᵀ: dΣ = Wᵀ dΣc W (full symmetric matrices)
                sym = rotate_covariance((w[0], w[3], w[6], w[1], w[4], w[7], w[2], w[5], w[8]),
                                        (gc00, gc01, gc02, gc11, gc12, gc22))
                for idx in range(6):
                    g_cov[idx] += sym[idx]
                g_opacity += grad[GRAD_OPACITY]
                if want_color:
                    dxn, dyn, dzn, length = view_direction(means, n, campos)
                    sh_basis(dxn, dyn, dzn, sh_degree, basis_values)
                    # recomputed rather than stored by the forward: a second random read of the
                    # packed row costs more than these 48 multiply-adds on rows read anyway
                    red, green, blue = sh_color(sh, n, basis_values, n_bases)
                    # float32 from here: g_sh is float32, and float64 products cost a conversion
                    # per read-modify-write (a colour clamped at 0 has no gradient)
                    g_red = np.float32(grad[GRAD_R]) if red > 0.0 else F0
                    g_green = np.float32(grad[GRAD_G]) if green > 0.0 else F0
                    g_blue = np.float32(grad[GRAD_B]) if blue > 0.0 else F0
                    for b in range(n_bases):
                        weight = np.float32(basis_values[b])
                        g_sh[n, b, 0] += weight * g_red
                        g_sh[n, b, 1] += weight * g_green
                        g_sh[n, b, 2] += weight * g_blue
                        sh_weights[b] = sh[n, b, 0] * g_red + sh[n, b, 1] * g_green + sh[n, b, 2] * g_blue
                    gdx, gdy, gdz = sh_direction_gradient(dxn, dyn, dzn, sh_degree, sh_weights)
                    if length > 1e-12:
                        # through normalisation: (g - d (d·g)) / |v|
                        radial = dxn * gdx + dyn * gdy + dzn * gdz
                        g_mean[0] += (gdx - dxn * radial) / length
                        g_mean[1] += (gdy - dyn * radial) / length
                        g_mean[2] += (gdz - dzn * radial) / length
            for i in range(3):
                g_means[n, i] = g_mean[i]
            opacity = 1.0 / (1.0 + math.exp(-opacity_logits[n]))
            g_opacity_logits[n] = g_opacity * opacity * (1.0 - opacity)
            # Σ3d = M Mᵀ with M = R diag(s): dM = 2 dΣ M (dΣ symmetric)
            # arrays, not tuples: tuples indexed by loop variables compile to slow switches
            for i in range(9):
                rot[i] = r[i]
            g_full[0], g_full[1], g_full[2] = g_cov[0], g_cov[1], g_cov[2]
            g_full[3], g_full[4], g_full[5] = g_cov[1], g_cov[3], g_cov[4]
            g_full[6], g_full[7], g_full[8] = g_cov[2], g_cov[4], g_cov[5]
            scales[0], scales[1], scales[2] = sx, sy, sz
            g_r[:] = 0.0
            g_scale[:] = 0.0
            for i in range(3):
                for j in range(3):
                    # dM[i, j] = 2 Σ_k dΣ[i, k] M[k, j], M[k, j] = r[k, j] s_j
                    g_m = 0.0
                    for inner in range(3):
                        g_m += g_full[3 * i + inner] * rot[3 * inner + j]
                    g_m *= 2.0 * scales[j]
                    g_r[3 * i + j] = g_m * scales[j]
                    g_scale[j] += g_m * rot[3 * i + j]
            for j in range(3):
                g_log_scales[n, j] = g_scale[j] * scales[j]
            # R(q̂) -> q̂ -> q through the normalisation
            norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
            if norm < 1e-12:
                for i in range(4):
                    g_quats[n, i] = 0.0
                continue
            w_, x_, y_, z_ = qw / norm, qx / norm, qy / norm, qz / norm
            g00, g01, g02, g10, g11, g12, g20, g21, g22 = g_r[0], g_r[1], g_r[2], g_r[3], g_r[4], g_r[5], g_r[6], g_r[7], g_r[8]
            gw = 2.0 * (-z_ * g01 + y_ * g02 + z_ * g10 - x_ * g12 - y_ * g20 + x_ * g21)
            gx = 2.0 * (y_ * g01 + z_ * g02 + y_ * g10 - 2.0 * x_ * g11 - w_ * g12 + z_ * g20 + w_ * g21 - 2.0 * x_ * g22)
            gy = 2.0 * (-2.0 * y_ * g00 + x_ * g01 + w_ * g02 + x_ * g10 + z_ * g12 - w_ * g20 + z_ * g21 - 2.0 * y_ * g22)
            gz = 2.0 * (-2.0 * z_ * g00 - w_ * g01 + x_ * g02 + w_ * g10 - 2.0 * z_ * g11 + y_ * g12 + x_ * g20 + y_ * g21)
            radial = w_ * gw + x_ * gx + y_ * gy + z_ * gz
            g_quats[n, 0] = (gw - w_ * radial) / norm
            g_quats[n, 1] = (gx - x_ * radial) / norm
            g_quats[n, 2] = (gy - y_ * radial) / norm
            g_quats[n, 3] = (gz - z_ * radial) / norm
