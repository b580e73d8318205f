// Frame conversions around the model: the CUDA side of src/ops/convert, whose cpu.rs is the
// reference. Frames are packed 8-bit RGB [height, width, 3]; the model sees planar [3, H, W] in
// [0, 1] in its storage type, reflect-padded at the bottom and right (models::stya2k::PAD_MULTIPLE).
#include "stylestream.cuh"

// One thread per padded pixel. rgb: [height, width, 3] u8; out: [3, padded_height, padded_width],
// value = byte / 255.
template <typename T>
__device__ void rgb8_to_planar(const uint8_t* __restrict__ rgb, T* __restrict__ out, FrameGeometry g) {
    const size_t plane = (size_t)g.padded_height * g.padded_width;
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= plane) return;
    const uint32_t y = reflect101(i / g.padded_width, g.height), x = reflect101(i % g.padded_width, g.width);
    const uint8_t* px = rgb + ((size_t)y * g.width + x) * 3;
#pragma unroll
    for (int c = 0; c < 3; ++c) out[c * plane + i] = from_f32<T>((float)px[c] / 255.f);
}

// One thread per output pixel. planar: [3, padded_height, padded_width], of which the top-left
// [height, width] is kept; rgb: [height, width, 3] u8 = round(clamp(v, 0, 1) * 255), halves away
// from zero.
template <typename T>
__device__ void planar_to_rgb8(const T* __restrict__ planar, uint8_t* __restrict__ rgb, FrameGeometry g) {
    const size_t plane = (size_t)g.padded_height * g.padded_width;
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)g.height * g.width) return;
    const size_t src = (i / g.width) * g.padded_width + i % g.width;
#pragma unroll
    for (int c = 0; c < 3; ++c) {
        const float v = fminf(fmaxf(to_f32(planar[c * plane + src]), 0.f), 1.f);
        rgb[i * 3 + c] = (uint8_t)roundf(v * 255.f);
    }
}

#define CONVERT(SUFFIX, T)                                                                         \
    extern "C" __global__ void rgb8_to_planar_##SUFFIX(const uint8_t* rgb, T* out, FrameGeometry g) { \
        rgb8_to_planar<T>(rgb, out, g);                                                            \
    }                                                                                              \
    extern "C" __global__ void planar_to_rgb8_##SUFFIX(const T* planar, uint8_t* rgb, FrameGeometry g) { \
        planar_to_rgb8<T>(planar, rgb, g);                                                         \
    }

CONVERT(f32, float)
CONVERT(f16, __half)
CONVERT(bf16, __nv_bfloat16)
