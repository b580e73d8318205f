// StyA2K's all-to-key blocked attention (shared/docs/stya2k.md section 4.3): the CUDA side of the
// custom ops in src/ops/blocked_attention, whose cpu.rs is the reference these must match.
//
// Layouts (one frame, batch 1):
//   queries q          [heads * d_k, H, W]   planar content map, read in place (no blocking pass)
//   style keys k       [heads, n, r, d_k]    n patches of r = R*R positions (ops::blocked_attention::block)
//   style values v     [heads, n, r, d_v]
//   aggregates         k_bar [heads, n, d_k], v_bar [heads, n, d_v] (the style side, built with tensor
//                      ops once per style so that training can differentiate it)
//   output             [heads * d_v, H, W]
// Storage T is float, __half or __nv_bfloat16; every sum, max and exp is f32.
//
// Kernels, per A2K call:
//   a2k_distributed_*  one thread per content pixel, flash-style online softmax over all n style
//                      patches, streamed through shared memory in tiles: no [pixels x n] logits exist
//   a2k_match_*        progressive attention's patch scores S = Q_blocked K_blocked^T as a tiled GEMM
//                      whose epilogue keeps only the per-row argmax (first index on ties), merged
//                      across tiles with one 64-bit atomicMax per row: no [n_c x n] score tensor exists
//   a2k_local_*        gathers the matched style patch into shared memory and runs the r x r softmax
//                      attention of each content position inside it
#include "stylestream.cuh"

#include <math.h>

// ---------------------------------------------------------------------------------------------
// Softmax attention of one query against keys held in shared memory.

// Keys and values as f32 rows of D floats (zero beyond the real head dims, so padded channels add
// nothing to a dot product and leave zeros in acc). Online softmax: (mx, l, acc) is the running max,
// the running sum of exp(logit - mx) and the running weighted value sum, rescaled whenever mx grows.
template <int D>
__device__ __forceinline__ void attend(const float (&q)[D], const float4* __restrict__ keys,
                                       const float4* __restrict__ values, uint32_t count, float& mx,
                                       float& l, float (&acc)[D]) {
    // Not unrolled: q and acc already hold 2 D registers, unrolling spills them at D = 64.
#pragma unroll 1
    for (uint32_t j = 0; j < count; ++j) {
        const float4* key = keys + (size_t)j * (D / 4);
        float logit = 0.f;
#pragma unroll
        for (int c = 0; c < D / 4; ++c) {
            const float4 kk = key[c];
            logit += q[4 * c] * kk.x + q[4 * c + 1] * kk.y + q[4 * c + 2] * kk.z + q[4 * c + 3] * kk.w;
        }
        if (logit > mx) {
            const float rescale = expf(mx - logit);  // 0 for the first key (mx = -inf)
            l *= rescale;
#pragma unroll
            for (int c = 0; c < D; ++c) acc[c] *= rescale;
            mx = logit;
        }
        const float p = expf(logit - mx);
        l += p;
        const float4* value = values + (size_t)j * (D / 4);
#pragma unroll
        for (int c = 0; c < D / 4; ++c) {
            const float4 vv = value[c];
            acc[4 * c] += p * vv.x;
            acc[4 * c + 1] += p * vv.y;
            acc[4 * c + 2] += p * vv.z;
            acc[4 * c + 3] += p * vv.w;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Distributed attention.

constexpr int DA_THREADS = 128;
// Style patches per shared-memory tile: 2 * 32 * D floats (16 KB at D = 64).
constexpr int DA_KEYS = 32;

// Grid (ceil(H*W / DA_THREADS), heads): one thread per pixel of one head. Pixels outside whole
// patches get 0, as the reference. D >= d_k, d_v, a multiple of 4.
template <typename T, int D>
__device__ void distributed(const T* __restrict__ q, const T* __restrict__ k_bar, const T* __restrict__ v_bar,
                            T* __restrict__ out, StylePatches s, QueryMap m) {
    __shared__ float4 keys[DA_KEYS * D / 4];
    __shared__ float4 values[DA_KEYS * D / 4];
    const uint32_t h = blockIdx.y;
    const size_t hw = (size_t)m.height * m.width;
    const size_t pixel = (size_t)blockIdx.x * DA_THREADS + threadIdx.x;
    const bool inside = pixel < hw;
    const uint32_t py = inside ? pixel / m.width : 0, px = inside ? pixel % m.width : 0;
    const bool covered =
        inside && py < m.height / m.region * m.region && px < m.width / m.region * m.region;
    float query[D], acc[D];
#pragma unroll
    for (int c = 0; c < D; ++c) {
        query[c] = covered && c < (int)s.d_k ? to_f32(q[((size_t)h * s.d_k + c) * hw + pixel]) : 0.f;
        acc[c] = 0.f;
    }
    float mx = -INFINITY, l = 0.f;
    for (uint32_t z0 = 0; z0 < s.n; z0 += DA_KEYS) {
        const uint32_t count = min((uint32_t)DA_KEYS, s.n - z0);
        __syncthreads();  // the previous tile is consumed
        float* kf = reinterpret_cast<float*>(keys);
        float* vf = reinterpret_cast<float*>(values);
        for (uint32_t i = threadIdx.x; i < DA_KEYS * D; i += DA_THREADS) {
            const uint32_t j = i / D, c = i % D;
            const size_t z = (size_t)h * s.n + z0 + j;
            kf[i] = j < count && c < s.d_k ? to_f32(k_bar[z * s.d_k + c]) : 0.f;
            vf[i] = j < count && c < s.d_v ? to_f32(v_bar[z * s.d_v + c]) : 0.f;
        }
        __syncthreads();
        if (covered) attend<D>(query, keys, values, count, mx, l, acc);
    }
    if (!inside) return;
    const float inv = covered ? 1.f / l : 0.f;
#pragma unroll
    for (int c = 0; c < D; ++c)
        if (c < (int)s.d_v) out[((size_t)h * s.d_v + c) * hw + pixel] = from_f32<T>(acc[c] * inv);
}

// ---------------------------------------------------------------------------------------------
// Progressive attention, step 1: best style patch per content patch.

constexpr int PA_TILE = 64;    // content patches x style patches per block
constexpr int PA_DEPTH = 16;   // reduction elements (channel, position) per shared-memory stage
constexpr int PA_THREADS = 256;  // 16 x 16 threads, each a 4 x 4 block of scores

// Orders (score, patch) pairs as 64-bit integers: the float's bits made monotonic in the high word,
// the complement of the patch index in the low word, so a larger key is a larger score and, among
// equal scores, a smaller index (torch.argmax's first index).
__device__ __forceinline__ unsigned long long match_key(float score, uint32_t z) {
    uint32_t u = __float_as_uint(score);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((unsigned long long)u << 32) | (0xFFFFFFFFu - z);
}

// Grid (ceil(n_s / 64), ceil(n_c / 64), heads). best: [heads, n_c], zero-initialised, receives the
// atomicMax of match_key over all style patches. The reduction index kk = c * r + y enumerates
// (channel, position) pairs channel-major, so that the content reads, straight from the planar map,
// are runs of R pixels; the style reads stride by d_k, but the style tensor is shared by every block
// and stays in L2.
template <typename T>
__device__ void match(const T* __restrict__ q, const T* __restrict__ k, unsigned long long* __restrict__ best,
                      StylePatches s, QueryMap m) {
    __shared__ __align__(16) float a[PA_DEPTH][PA_TILE + 4];
    __shared__ __align__(16) float b[PA_DEPTH][PA_TILE + 4];
    const uint32_t grid_w = m.width / m.region;
    const uint32_t n_c = m.height / m.region * grid_w;
    const uint32_t depth = s.d_k * s.r;
    const size_t hw = (size_t)m.height * m.width;
    const uint32_t h = blockIdx.z, x0 = blockIdx.y * PA_TILE, z0 = blockIdx.x * PA_TILE;
    const uint32_t tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[4][4] = {};
    for (uint32_t k0 = 0; k0 < depth; k0 += PA_DEPTH) {
        for (uint32_t e = threadIdx.x; e < PA_TILE * PA_DEPTH; e += PA_THREADS) {
            const uint32_t kk = e % PA_DEPTH, i = e / PA_DEPTH;
            const uint32_t idx = k0 + kk;
            float av = 0.f, bv = 0.f;
            if (idx < depth) {
                const uint32_t c = idx / s.r, y = idx % s.r;
                const uint32_t x = x0 + i, z = z0 + i;
                if (x < n_c) {
                    const size_t py = (size_t)(x / grid_w) * m.region + y / m.region;
                    const size_t px = (size_t)(x % grid_w) * m.region + y % m.region;
                    av = to_f32(q[((size_t)h * s.d_k + c) * hw + py * m.width + px]);
                }
                if (z < s.n) bv = to_f32(k[(((size_t)h * s.n + z) * s.r + y) * s.d_k + c]);
            }
            a[kk][i] = av;
            b[kk][i] = bv;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < PA_DEPTH; ++kk) {
            const float4 av = *reinterpret_cast<const float4*>(&a[kk][ty * 4]);
            const float4 bv = *reinterpret_cast<const float4*>(&b[kk][tx * 4]);
            const float ar[4] = {av.x, av.y, av.z, av.w}, br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += ar[i] * br[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        unsigned long long key = 0;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const uint32_t z = z0 + tx * 4 + j;
            if (z < s.n) key = max(key, match_key(acc[i][j], z));
        }
        // The 16 threads of a row are one half-warp.
        for (int lane = 8; lane > 0; lane /= 2) key = max(key, __shfl_xor_sync(0xFFFFFFFFu, key, lane, 16));
        const uint32_t x = x0 + ty * 4 + i;
        if (tx == 0 && x < n_c && key != 0) atomicMax(best + (size_t)h * n_c + x, key);
    }
}

// ---------------------------------------------------------------------------------------------
// Progressive attention, step 2: local attention inside the matched patch.

// Grid (n_c, heads), blockDim = r rounded up to whole warps: the block gathers style patch
// m = argmax into shared memory as [r, D] rows (dynamic shared memory: 2 * r * D floats), then thread y
// attends for content position y of its patch. Pixels outside whole patches are not written (the
// caller zeroes the output when any exist).
template <typename T, int D>
__device__ void local(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                      const unsigned long long* __restrict__ best, T* __restrict__ out, StylePatches s,
                      QueryMap m) {
    extern __shared__ float4 patch[];
    float4* keys = patch;                           // [r, D/4]
    float4* values = patch + (size_t)s.r * (D / 4);  // [r, D/4]
    const uint32_t x = blockIdx.x, h = blockIdx.y;
    const uint32_t grid_w = m.width / m.region;
    const uint32_t n_c = m.height / m.region * grid_w;
    const uint32_t z = 0xFFFFFFFFu - (uint32_t)(best[(size_t)h * n_c + x] & 0xFFFFFFFFu);
    const size_t hw = (size_t)m.height * m.width;
    const T* kz = k + ((size_t)h * s.n + z) * s.r * s.d_k;  // [r, d_k]
    const T* vz = v + ((size_t)h * s.n + z) * s.r * s.d_v;  // [r, d_v]
    float* kf = reinterpret_cast<float*>(keys);
    float* vf = reinterpret_cast<float*>(values);
    for (uint32_t i = threadIdx.x; i < s.r * D; i += blockDim.x) {
        const uint32_t y = i / D, c = i % D;
        kf[i] = c < s.d_k ? to_f32(kz[(size_t)y * s.d_k + c]) : 0.f;
        vf[i] = c < s.d_v ? to_f32(vz[(size_t)y * s.d_v + c]) : 0.f;
    }
    __syncthreads();
    // One position per thread: a loop over positions here made nvcc keep two iterations' registers
    // live and spill at D = 64.
    const uint32_t y = threadIdx.x;
    if (y < s.r) {
        const size_t py = (size_t)(x / grid_w) * m.region + y / m.region;
        const size_t px = (size_t)(x % grid_w) * m.region + y % m.region;
        const size_t pixel = py * m.width + px;
        const T* qp = q + (size_t)h * s.d_k * hw + pixel;
        float query[D], acc[D];
#pragma unroll
        for (int c = 0; c < D; ++c) {
            query[c] = c < (int)s.d_k ? to_f32(qp[c * hw]) : 0.f;
            acc[c] = 0.f;
        }
        float mx = -INFINITY, l = 0.f;
        attend<D>(query, keys, values, s.r, mx, l, acc);
        const float inv = 1.f / l;
#pragma unroll
        for (int c = 0; c < D; ++c)
            if (c < (int)s.d_v) out[((size_t)h * s.d_v + c) * hw + pixel] = from_f32<T>(acc[c] * inv);
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points: <kernel>_<storage>[_d<D>], named in src/ops/blocked_attention/cuda.rs.

#define MATCH(SUFFIX, T)                                                                            \
    extern "C" __global__ void __launch_bounds__(PA_THREADS)                                        \
        a2k_match_##SUFFIX(const T* q, const T* k, unsigned long long* best, StylePatches s,         \
                           QueryMap m) {                                                            \
        match<T>(q, k, best, s, m);                                                                 \
    }
#define BY_DIM(SUFFIX, T, D)                                                                        \
    extern "C" __global__ void __launch_bounds__(DA_THREADS)                                        \
        a2k_distributed_##SUFFIX##_d##D(const T* q, const T* k_bar, const T* v_bar, T* out,          \
                                        StylePatches s, QueryMap m) {                               \
        distributed<T, D>(q, k_bar, v_bar, out, s, m);                                              \
    }                                                                                               \
    extern "C" __global__ void a2k_local_##SUFFIX##_d##D(const T* q, const T* k, const T* v,          \
                                                        const unsigned long long* best, T* out,    \
                                                        StylePatches s, QueryMap m) {              \
        local<T, D>(q, k, v, best, out, s, m);                                                      \
    }
#define STORAGE(SUFFIX, T) MATCH(SUFFIX, T) BY_DIM(SUFFIX, T, 32) BY_DIM(SUFFIX, T, 64)

STORAGE(f32, float)
STORAGE(f16, __half)
STORAGE(bf16, __nv_bfloat16)
