// Shared by every stylestream kernel: the parameter structs (each mirrored field for field by a
// #[repr(C)] struct in src/ops/<op>/cuda.rs, passed by value as a kernel argument) and the storage
// type conversions. Storage is f32, f16 or bf16; arithmetic is always f32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

// The style side of an A2K attention: n patches of r = R*R positions, keys [heads, n, r, d_k] and
// values [heads, n, r, d_v] (or their per-patch aggregates [heads, n, d_k], [heads, n, d_v]).
// Mirror: src/ops/blocked_attention/cuda.rs `StylePatches`.
struct StylePatches {
    uint32_t heads;
    uint32_t n;
    uint32_t r;
    uint32_t d_k;
    uint32_t d_v;
};

// A content map [heads * d, height, width] attended in region x region patches, patch grid anchored at
// the top-left pixel. Mirror: src/ops/blocked_attention/cuda.rs `QueryMap`.
struct QueryMap {
    uint32_t height;
    uint32_t width;
    uint32_t region;
};

// Packed 8-bit RGB [height, width, 3] <-> planar [3, padded_height, padded_width].
// Mirror: src/ops/convert/cuda.rs `FrameGeometry`.
struct FrameGeometry {
    uint32_t height;
    uint32_t width;
    uint32_t padded_height;
    uint32_t padded_width;
};

// All-to-all attention of one map: n_q queries, n_k keys, head dims padded to the kernel's D.
// Mirror: src/ops/streaming_attention/cuda.rs `AttentionShape`.
struct AttentionShape {
    uint32_t n_q;
    uint32_t n_k;
};

// One frame of the content prior: planar [3, height, width] (or packed [height, width, 3] bytes),
// the Gaussian taps (radius taps either side of the centre, in a device array) and the bilateral
// filter's settings, as OpenCV's bilateralFilter derives them from (d, sigmaColor, sigmaSpace).
// Mirror: src/ops/prior/cuda.rs `PriorShape`.
struct PriorShape {
    uint32_t height;
    uint32_t width;
    uint32_t blur_radius;
    uint32_t bilateral_radius;
    float color_coeff;  // -0.5 / sigmaColor^2, on 0..255 values
    float space_coeff;  // -0.5 / sigmaSpace^2, in pixels
};

// The prior's recolouring, folded with the prior weight and the 1/255 of the filtered values:
// out_c = sum_j a[3c + j] x_j + b[c] for x in 0..255. Mirror: src/ops/prior/cuda.rs `ColourAffine`.
struct ColourAffine {
    float a[9];
    float b[3];
};

// Index that reflect-101 padding (OpenCV's BORDER_DEFAULT, torch's "reflect") reads for position i of
// an axis of n pixels: mirrored about the edge pixels without repeating them, periodic with period
// 2 (n - 1) for pads wider than the axis. As src/nn/pad.rs `reflect_index`.
__device__ __forceinline__ uint32_t reflect101(int64_t i, uint32_t n) {
    if (n == 1) return 0;
    const int64_t period = 2 * ((int64_t)n - 1);
    int64_t m = i % period;
    if (m < 0) m += period;
    return (uint32_t)(m < n ? m : period - m);
}

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}
