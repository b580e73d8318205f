// NeAT's content prior on the GPU (shared/docs/neat.md, "Content prior"): the CUDA side of the op in
// src/ops/prior, whose cpu.rs is the reference these must match (and which is itself checked against
// OpenCV's GaussianBlur + bilateralFilter on photos).
//
// Planes are f32 [3, height, width] in 0..255, as OpenCV filters the frame times 255. Stages, one
// launch each:
//   prior_blur_rows_<src>  reads the frame (packed RGB bytes, or planar f32/f16/bf16 in [0, 1]) and
//                          applies the horizontal Gaussian taps: the u8/float -> planar conversion is
//                          fused into the first filter pass (with blur off, one tap of 1: conversion only)
//   prior_blur_cols        the vertical taps
//   prior_bilateral        OpenCV's bilateralFilter for 3-channel float images: a circular window of
//                          radius R, weight exp(space_coeff r^2 + color_coeff (sum_c |x_c - x0_c|)^2)
//   prior_stats            sums of x and x x^T (in [0, 1] units, f64) for the colour statistics
//   prior_recolour_<dst>   the affine colour map times the prior weight, written in the model's type
// Borders are reflect-101 (OpenCV's BORDER_DEFAULT) throughout.
#include "stylestream.cuh"

// A frame's channel c at pixel index p (= y * width + x), on the 0..255 scale.
__device__ __forceinline__ float frame_255(const uint8_t* f, uint32_t c, size_t p, size_t) {
    return (float)f[p * 3 + c];
}
template <typename T> __device__ __forceinline__ float frame_255(const T* f, uint32_t c, size_t p, size_t plane) {
    return to_f32(f[c * plane + p]) * 255.f;
}

// One thread per pixel: out[c][y][x] = sum_t taps[t] frame(c, y, x + t - R), R = blur_radius.
template <typename S>
__device__ void blur_rows(const S* __restrict__ frame, const float* __restrict__ taps, float* __restrict__ out,
                          PriorShape s) {
    const size_t plane = (size_t)s.height * s.width;
    const size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= plane) return;
    const int64_t y = p / s.width, x = p % s.width, r = s.blur_radius;
    float acc[3] = {0.f, 0.f, 0.f};
    for (int64_t t = -r; t <= r; ++t) {
        const size_t q = (size_t)y * s.width + reflect101(x + t, s.width);
        const float w = taps[t + r];
#pragma unroll
        for (int c = 0; c < 3; ++c) acc[c] = fmaf(w, frame_255(frame, c, q, plane), acc[c]);
    }
#pragma unroll
    for (int c = 0; c < 3; ++c) out[c * plane + p] = acc[c];
}

// One thread per pixel: the vertical taps.
__device__ void blur_cols(const float* __restrict__ in, const float* __restrict__ taps, float* __restrict__ out,
                          PriorShape s) {
    const size_t plane = (size_t)s.height * s.width;
    const size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= plane) return;
    const int64_t y = p / s.width, x = p % s.width, r = s.blur_radius;
    float acc[3] = {0.f, 0.f, 0.f};
    for (int64_t t = -r; t <= r; ++t) {
        const size_t q = (size_t)reflect101(y + t, s.height) * s.width + x;
        const float w = taps[t + r];
#pragma unroll
        for (int c = 0; c < 3; ++c) acc[c] = fmaf(w, in[c * plane + q], acc[c]);
    }
#pragma unroll
    for (int c = 0; c < 3; ++c) out[c * plane + p] = acc[c];
}

constexpr int BILATERAL_TILE = 16;  // output pixels per block side; blockDim = (16, 16)

// Block: a 16 x 16 output tile; its (16 + 2R)^2 input pixels (reflected at the borders) are staged in
// dynamic shared memory as three planes, 3 (16 + 2R)^2 floats (src/ops/prior/cuda.rs sizes it).
__device__ void bilateral(const float* __restrict__ in, float* __restrict__ out, PriorShape s) {
    extern __shared__ float tile[];
    const int r = s.bilateral_radius, side = BILATERAL_TILE + 2 * r;
    const size_t plane = (size_t)s.height * s.width;
    const int64_t y0 = (int64_t)blockIdx.y * BILATERAL_TILE - r, x0 = (int64_t)blockIdx.x * BILATERAL_TILE - r;
    const int tid = threadIdx.y * BILATERAL_TILE + threadIdx.x;
    for (int e = tid; e < side * side; e += BILATERAL_TILE * BILATERAL_TILE) {
        const size_t q = (size_t)reflect101(y0 + e / side, s.height) * s.width + reflect101(x0 + e % side, s.width);
#pragma unroll
        for (int c = 0; c < 3; ++c) tile[c * side * side + e] = in[c * plane + q];
    }
    __syncthreads();
    const uint32_t y = blockIdx.y * BILATERAL_TILE + threadIdx.y, x = blockIdx.x * BILATERAL_TILE + threadIdx.x;
    if (y >= s.height || x >= s.width) return;
    const float* t0 = tile;
    const float* t1 = tile + side * side;
    const float* t2 = tile + 2 * side * side;
    const int centre = (threadIdx.y + r) * side + threadIdx.x + r;
    const float c0 = t0[centre], c1 = t1[centre], c2 = t2[centre];
    float sum0 = 0.f, sum1 = 0.f, sum2 = 0.f, wsum = 0.f;
    for (int dy = -r; dy <= r; ++dy) {
        // Half-width of the circle's row dy: the largest dx with dx^2 + dy^2 <= r^2.
        int half = (int)sqrtf((float)(r * r - dy * dy));
        while ((half + 1) * (half + 1) + dy * dy <= r * r) ++half;
        while (half * half + dy * dy > r * r) --half;
        const int row = centre + dy * side;
        for (int dx = -half; dx <= half; ++dx) {
            const float v0 = t0[row + dx], v1 = t1[row + dx], v2 = t2[row + dx];
            const float diff = fabsf(v0 - c0) + fabsf(v1 - c1) + fabsf(v2 - c2);
            const float w = __expf(s.space_coeff * (float)(dx * dx + dy * dy) + s.color_coeff * diff * diff);
            sum0 = fmaf(w, v0, sum0);
            sum1 = fmaf(w, v1, sum1);
            sum2 = fmaf(w, v2, sum2);
            wsum += w;
        }
    }
    const size_t p = (size_t)y * s.width + x;
    out[p] = sum0 / wsum;
    out[plane + p] = sum1 / wsum;
    out[2 * plane + p] = sum2 / wsum;
}

constexpr int STATS_THREADS = 256;

// Grid-stride over pixels; sums (9 doubles, zeroed by the caller) receive sum x_c for c < 3, then
// sum x_i x_j for (i, j) = (0,0), (0,1), (0,2), (1,1), (1,2), (2,2), with x = value / 255. One atomic
// per block and sum.
__device__ void stats(const float* __restrict__ in, double* __restrict__ sums, PriorShape s) {
    __shared__ double partial[STATS_THREADS / 32][9];
    const size_t plane = (size_t)s.height * s.width;
    double acc[9] = {};
    for (size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x; p < plane; p += (size_t)gridDim.x * blockDim.x) {
        const double x[3] = {in[p] / 255.0, in[plane + p] / 255.0, in[2 * plane + p] / 255.0};
        acc[0] += x[0];
        acc[1] += x[1];
        acc[2] += x[2];
        acc[3] += x[0] * x[0];
        acc[4] += x[0] * x[1];
        acc[5] += x[0] * x[2];
        acc[6] += x[1] * x[1];
        acc[7] += x[1] * x[2];
        acc[8] += x[2] * x[2];
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
    for (int i = 0; i < 9; ++i) {
        for (int off = 16; off > 0; off /= 2) acc[i] += __shfl_xor_sync(0xFFFFFFFFu, acc[i], off);
        if (lane == 0) partial[warp][i] = acc[i];
    }
    __syncthreads();
    if (threadIdx.x < 9) {
        double total = 0.0;
        for (int w = 0; w < STATS_THREADS / 32; ++w) total += partial[w][threadIdx.x];
        atomicAdd(sums + threadIdx.x, total);
    }
}

// One thread per pixel: out = affine(in), planar [3, H, W] in the model's storage type.
template <typename T>
__device__ void recolour(const float* __restrict__ in, T* __restrict__ out, ColourAffine m, PriorShape s) {
    const size_t plane = (size_t)s.height * s.width;
    const size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= plane) return;
    const float x0 = in[p], x1 = in[plane + p], x2 = in[2 * plane + p];
#pragma unroll
    for (int c = 0; c < 3; ++c)
        out[c * plane + p] = from_f32<T>(fmaf(m.a[3 * c], x0, fmaf(m.a[3 * c + 1], x1, fmaf(m.a[3 * c + 2], x2, m.b[c]))));
}

// ---------------------------------------------------------------------------------------------
// Entry points, named in src/ops/prior/cuda.rs.

#define BLUR_ROWS(SUFFIX, S)                                                                        \
    extern "C" __global__ void prior_blur_rows_##SUFFIX(const S* frame, const float* taps, float* out, \
                                                        PriorShape s) {                            \
        blur_rows<S>(frame, taps, out, s);                                                         \
    }
#define RECOLOUR(SUFFIX, T)                                                                         \
    extern "C" __global__ void prior_recolour_##SUFFIX(const float* in, T* out, ColourAffine m, PriorShape s) { \
        recolour<T>(in, out, m, s);                                                                \
    }

BLUR_ROWS(u8, uint8_t)
BLUR_ROWS(f32, float)
BLUR_ROWS(f16, __half)
BLUR_ROWS(bf16, __nv_bfloat16)
RECOLOUR(f32, float)
RECOLOUR(f16, __half)
RECOLOUR(bf16, __nv_bfloat16)

extern "C" __global__ void prior_blur_cols(const float* in, const float* taps, float* out, PriorShape s) {
    blur_cols(in, taps, out, s);
}
extern "C" __global__ void __launch_bounds__(BILATERAL_TILE * BILATERAL_TILE)
    prior_bilateral(const float* in, float* out, PriorShape s) {
    bilateral(in, out, s);
}
extern "C" __global__ void __launch_bounds__(STATS_THREADS) prior_stats(const float* in, double* sums, PriorShape s) {
    stats(in, sums, s);
}
