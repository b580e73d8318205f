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

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}
