// NeAT's all-to-all PAMA attention as a fused, flash-style kernel: the CUDA side of the custom op in
// src/ops/streaming_attention, whose cpu.rs is the reference these must match.
//
//   out[:, i] = sum_j softmax_j(<q_i, k_j>) v_j      (no 1/sqrt(d) scaling, as PAMA)
//
// Layouts (one frame): queries q [D, n_q] (the planar content map, read in place), keys k [n_k, D] and
// values v [n_k, D] (pixel-major style side, computed once per style), output [D, n_q] planar. D is
// the head dim padded to 64, 128 or 256 with zero channels (src/ops/streaming_attention/cuda.rs pads
// when needed; PAMA's 256 needs none), so padded channels add nothing to a dot product.
//
// Both kernels walk the keys tile by tile with the online softmax (running max m, running normaliser
// l, output accumulator rescaled by exp(m_old - m_new) whenever m grows): no [n_q x n_k] score matrix
// exists anywhere, only one tile of it per block, in registers.
//
//   stream_attention_{f16,bf16}_d*  tensor cores: mma.sync m16n8k16 with f32 accumulation. A block of
//                                   4 warps owns 64 queries (16 per warp); key/value tiles of 32 keys
//                                   are double-buffered in shared memory with cp.async; the score
//                                   accumulators are reused as the A operand of P V (FlashAttention-2).
//   stream_attention_f32_d*         f32 FMA (the tensor cores' f16/bf16 inputs would not meet the f32
//                                   reference's 1e-5): 256 threads, 64 queries x 32 keys per step.
#include "stylestream.cuh"

#include <math.h>

constexpr float LOG2E = 1.4426950408889634f;

// ---------------------------------------------------------------------------------------------
// PTX wrappers (sm_80+ instructions; sm_90 runs them).

__device__ __forceinline__ uint32_t shared_address(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16 bytes global -> shared, asynchronously; zero-filled when !valid (nothing is read then).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(smem)), "l"(gmem),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int PENDING> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

// Four 8x8 b16 matrices from shared memory; lane l gives the address of row l % 8 of matrix l / 8
// (16 contiguous bytes). Plain: lane gets M[l/4][2(l%4)], M[l/4][2(l%4)+1] of each matrix; .trans:
// M[2(l%4)][l/4], M[2(l%4)+1][l/4].
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row))
                 : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row))
                 : "memory");
}

// d += a b for one 16x8x16 tile. Fragments (PTX ISA, "mma.m16n8k16"), g = lane / 4, t = lane % 4:
// a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..];
// b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]; d0,d1 = D[g][2t..2t+1], d2,d3 = D[g+8][2t..2t+1].
template <typename T> __device__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                            uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                                   uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as a packed pair of T, `lo` in the low half (the lower column of a fragment).
template <typename T> __device__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
}
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
}

// ---------------------------------------------------------------------------------------------
// Tensor-core kernel (f16, bf16 storage).

constexpr int TC_WARPS = 4;
constexpr int TC_THREADS = 32 * TC_WARPS;
constexpr int TC_QUERIES = 16 * TC_WARPS;  // per block: 16 rows of the mma per warp
constexpr int TC_KEYS = 32;                // per shared-memory stage
constexpr int TC_PAD = 8;                  // elements (16 bytes) per row: ldmatrix rows hit distinct banks

// Shared memory of one block, in elements of T: queries [D][TC_QUERIES + pad] (channel-major, as the
// map), then two stages of keys [TC_KEYS][D + pad] and values [TC_KEYS][D + pad]. The byte count is
// mirrored by src/ops/streaming_attention/cuda.rs `tensor_core_shared_bytes`.
template <int D> struct TcSmem {
    static constexpr int q_stride = TC_QUERIES + TC_PAD;
    static constexpr int kv_stride = D + TC_PAD;
    static constexpr int q_elems = D * q_stride;
    static constexpr int kv_elems = TC_KEYS * kv_stride;
};

// Grid ceil(n_q / 64); dynamic shared memory (q_elems + 4 kv_elems) * 2 bytes. k and v must be
// 16-byte aligned (cp.async), which rows of D >= 64 two-byte elements from a 16-byte-aligned base are.
template <typename T, int D>
__device__ void stream_attention_tc(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                    T* __restrict__ out, AttentionShape s) {
    using L = TcSmem<D>;
    extern __shared__ __align__(16) unsigned char smem[];
    T* qs = reinterpret_cast<T*>(smem);
    T* stages = qs + L::q_elems;  // stage st: keys at stages + 2 st kv_elems, values kv_elems after
    const uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const uint32_t g = lane / 4, t = lane % 4;
    // ldmatrix addressing: this lane's matrix (0..3) and row in it.
    const uint32_t mi = lane / 8, mr = lane % 8;
    const size_t i0 = (size_t)blockIdx.x * TC_QUERIES;
    const uint32_t m0 = warp * 16;  // this warp's first query row in the block

    auto load_tile = [&](int stage, uint32_t j0) {
        T* ks = stages + 2 * stage * L::kv_elems;
        T* vs = ks + L::kv_elems;
        constexpr int chunks = TC_KEYS * D / 8;  // 16-byte chunks per matrix
        for (int e = threadIdx.x; e < chunks; e += TC_THREADS) {
            const int row = e / (D / 8), col = (e % (D / 8)) * 8;
            const uint32_t j = j0 + row;
            const bool valid = j < s.n_k;  // rows past the last key are zeros (P is 0 there too)
            const size_t src = (size_t)(valid ? j : 0) * D + col;
            cp_async16(ks + row * L::kv_stride + col, k + src, valid);
            cp_async16(vs + row * L::kv_stride + col, v + src, valid);
        }
        cp_async_commit();
    };

    load_tile(0, 0);
    // Queries of this block, zero beyond n_q. Read once per block, so plain loads suffice.
    for (int e = threadIdx.x; e < D * TC_QUERIES; e += TC_THREADS) {
        const int c = e / TC_QUERIES, i = e % TC_QUERIES;
        const size_t qi = i0 + i;
        qs[c * L::q_stride + i] = qi < s.n_q ? q[(size_t)c * s.n_q + qi] : from_f32<T>(0.f);
    }

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    // Rows g and g + 8 of this warp's 16: running max and this thread's part of the normaliser.
    float mx[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    const uint32_t tiles = (s.n_k + TC_KEYS - 1) / TC_KEYS;
    for (uint32_t tile = 0; tile < tiles; ++tile) {
        const int stage = tile & 1;
        if (tile + 1 < tiles) {
            load_tile(stage ^ 1, (tile + 1) * TC_KEYS);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();  // this tile (and, the first time, the queries) visible to every warp
        const T* ks = stages + 2 * stage * L::kv_elems;
        const T* vs = ks + L::kv_elems;

        // S = Q K^T for 16 queries x 32 keys: 4 n-tiles of 8 keys.
        float sc[TC_KEYS / 8][4];
#pragma unroll
        for (int n = 0; n < TC_KEYS / 8; ++n) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.f;
#pragma unroll
        for (int kc = 0; kc < D / 16; ++kc) {
            // A[m][c] = qs[c][m]: matrices (c + 8 (mi / 2), m + 8 (mi % 2)) give a0..a3, transposed.
            uint32_t a[4];
            ldmatrix_x4_trans(a, qs + (16 * kc + 8 * (mi >> 1) + mr) * L::q_stride + m0 + 8 * (mi & 1));
#pragma unroll
            for (int np = 0; np < TC_KEYS / 16; ++np) {
                // B[c][j] = ks[j][c]: matrices (j + 8 (mi / 2), c + 8 (mi % 2)) give b0, b1 of n-tiles
                // 2 np and 2 np + 1.
                uint32_t b[4];
                ldmatrix_x4(b, ks + (16 * np + 8 * (mi >> 1) + mr) * L::kv_stride + 16 * kc + 8 * (mi & 1));
                mma16816<T>(sc[2 * np], a, b[0], b[1]);
                mma16816<T>(sc[2 * np + 1], a, b[2], b[3]);
            }
        }
        const uint32_t j0 = tile * TC_KEYS;
        if (j0 + TC_KEYS > s.n_k) {
#pragma unroll
            for (int n = 0; n < TC_KEYS / 8; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    if (j0 + 8 * n + 2 * t + (e & 1) >= s.n_k) sc[n][e] = -INFINITY;
        }

        // Online softmax for rows g (elements 0, 1) and g + 8 (elements 2, 3); a row's 32 scores are
        // spread over the 4 lanes of a quad.
        float alpha[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float m_new = mx[h];
#pragma unroll
            for (int n = 0; n < TC_KEYS / 8; ++n) m_new = fmaxf(m_new, fmaxf(sc[n][2 * h], sc[n][2 * h + 1]));
            m_new = fmaxf(m_new, __shfl_xor_sync(0xFFFFFFFFu, m_new, 1));
            m_new = fmaxf(m_new, __shfl_xor_sync(0xFFFFFFFFu, m_new, 2));
            // Every tile holds a real key, so m_new is finite; exp2(-inf) = 0 on the first tile.
            alpha[h] = exp2f((mx[h] - m_new) * LOG2E);
            mx[h] = m_new;
            float sum = 0.f;
#pragma unroll
            for (int n = 0; n < TC_KEYS / 8; ++n)
#pragma unroll
                for (int e = 2 * h; e < 2 * h + 2; ++e) {
                    sc[n][e] = exp2f((sc[n][e] - m_new) * LOG2E);
                    sum += sc[n][e];
                }
            l[h] = l[h] * alpha[h] + sum;
        }
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            o[n][0] *= alpha[0];
            o[n][1] *= alpha[0];
            o[n][2] *= alpha[1];
            o[n][3] *= alpha[1];
        }

        // O += P V: the score accumulators of n-tiles 2 kk, 2 kk + 1 are the A fragment of keys
        // 16 kk .. 16 kk + 15 (same rows, same columns), rounded to T.
#pragma unroll
        for (int kk = 0; kk < TC_KEYS / 16; ++kk) {
            const uint32_t a[4] = {
                pack2<T>(sc[2 * kk][0], sc[2 * kk][1]),
                pack2<T>(sc[2 * kk][2], sc[2 * kk][3]),
                pack2<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                pack2<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3]),
            };
#pragma unroll
            for (int np = 0; np < D / 16; ++np) {
                // B[j][c] = vs[j][c]: matrices (j + 8 (mi % 2), c + 8 (mi / 2)), transposed, give b0, b1
                // of channel n-tiles 2 np and 2 np + 1.
                uint32_t b[4];
                ldmatrix_x4_trans(b, vs + (16 * kk + 8 * (mi & 1) + mr) * L::kv_stride + 16 * np + 8 * (mi >> 1));
                mma16816<T>(o[2 * np], a, b[0], b[1]);
                mma16816<T>(o[2 * np + 1], a, b[2], b[3]);
            }
        }
        __syncthreads();  // this stage is consumed before the next iteration refills it
    }

    // Normalise and stage the output through this warp's own query columns of qs (only this warp
    // reads them), then write [D, n_q] with consecutive threads on consecutive queries.
    float inv[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        l[h] += __shfl_xor_sync(0xFFFFFFFFu, l[h], 1);
        l[h] += __shfl_xor_sync(0xFFFFFFFFu, l[h], 2);
        inv[h] = 1.f / l[h];
    }
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e)
            qs[(8 * n + 2 * t + (e & 1)) * L::q_stride + m0 + g + 8 * (e >> 1)] = from_f32<T>(o[n][e] * inv[e >> 1]);
    __syncthreads();
    for (int e = threadIdx.x; e < D * TC_QUERIES; e += TC_THREADS) {
        const int c = e / TC_QUERIES, i = e % TC_QUERIES;
        if (i0 + i < s.n_q) out[(size_t)c * s.n_q + i0 + i] = qs[c * L::q_stride + i];
    }
}

// ---------------------------------------------------------------------------------------------
// f32 kernel.

constexpr int F32_THREADS = 256;
constexpr int F32_QUERIES = 64;  // 32 row pairs, one per group of 8 threads
constexpr int F32_KEYS = 32;     // 8 groups of 4 keys
constexpr int F32_P_STRIDE = F32_KEYS + 1;

// Shared memory in floats: queries [D][64], keys transposed [D][32], values [32][D], probabilities
// [64][33]. Mirrored by src/ops/streaming_attention/cuda.rs `f32_shared_bytes`.
template <int D> struct F32Smem {
    static constexpr int q_elems = D * F32_QUERIES;
    static constexpr int k_elems = D * F32_KEYS;
    static constexpr int v_elems = F32_KEYS * D;
    static constexpr int p_elems = F32_QUERIES * F32_P_STRIDE;
};

// Grid ceil(n_q / 64). Thread: query rows r0, r0 + 1 (r0 = 2 (tid / 8)); scores for keys
// 4 (tid % 8) .. + 3 of each tile; output channels tid % 8 + 8 c for c < D / 8.
template <int D>
__device__ void stream_attention_f32(const float* __restrict__ q, const float* __restrict__ k,
                                     const float* __restrict__ v, float* __restrict__ out, AttentionShape s) {
    using L = F32Smem<D>;
    extern __shared__ __align__(16) unsigned char smem[];
    float* qs = reinterpret_cast<float*>(smem);  // [D][64]
    float* kt = qs + L::q_elems;                 // [D][32]
    float* vs = kt + L::k_elems;                 // [32][D]
    float* ps = vs + L::v_elems;                 // [64][33]
    const uint32_t tid = threadIdx.x;
    const uint32_t r0 = 2 * (tid / 8), lane8 = tid % 8, k0 = 4 * lane8;
    const size_t i0 = (size_t)blockIdx.x * F32_QUERIES;

    for (int e = tid; e < D * F32_QUERIES; e += F32_THREADS) {
        const int c = e / F32_QUERIES, i = e % F32_QUERIES;
        qs[e] = i0 + i < s.n_q ? q[(size_t)c * s.n_q + i0 + i] : 0.f;
    }
    float o[2][D / 8];
#pragma unroll
    for (int c = 0; c < D / 8; ++c) o[0][c] = o[1][c] = 0.f;
    float mx[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    for (uint32_t j0 = 0; j0 < s.n_k; j0 += F32_KEYS) {
        __syncthreads();  // the previous tile is consumed (and, the first time, qs is written)
        // Keys transposed: consecutive threads on consecutive keys, so the shared stores spread
        // over the banks; values as they are. Zeros past the last key.
        for (int e = tid; e < F32_KEYS * D / 4; e += F32_THREADS) {
            const int j = e % F32_KEYS, c4 = e / F32_KEYS;
            const bool valid = j0 + j < s.n_k;
            const float4 kv = valid ? *reinterpret_cast<const float4*>(k + (size_t)(j0 + j) * D + 4 * c4)
                                    : make_float4(0.f, 0.f, 0.f, 0.f);
            kt[(4 * c4 + 0) * F32_KEYS + j] = kv.x;
            kt[(4 * c4 + 1) * F32_KEYS + j] = kv.y;
            kt[(4 * c4 + 2) * F32_KEYS + j] = kv.z;
            kt[(4 * c4 + 3) * F32_KEYS + j] = kv.w;
        }
        for (int e = tid; e < F32_KEYS * D / 4; e += F32_THREADS) {
            const int j = e / (D / 4), c4 = e % (D / 4);
            const bool valid = j0 + j < s.n_k;
            reinterpret_cast<float4*>(vs)[e] = valid
                ? *reinterpret_cast<const float4*>(v + (size_t)(j0 + j) * D + 4 * c4)
                : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        __syncthreads();

        float sc[2][4] = {};
#pragma unroll 8
        for (int c = 0; c < D; ++c) {
            const float2 qv = *reinterpret_cast<const float2*>(qs + c * F32_QUERIES + r0);
            const float4 kv = *reinterpret_cast<const float4*>(kt + c * F32_KEYS + k0);
            const float kr[4] = {kv.x, kv.y, kv.z, kv.w};
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                sc[0][j] = fmaf(qv.x, kr[j], sc[0][j]);
                sc[1][j] = fmaf(qv.y, kr[j], sc[1][j]);
            }
        }
        float alpha[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float m_new = mx[r];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                if (j0 + k0 + j >= s.n_k) sc[r][j] = -INFINITY;
                m_new = fmaxf(m_new, sc[r][j]);
            }
            // The 8 threads of a row pair are consecutive lanes of one warp.
            for (int lanes = 1; lanes < 8; lanes *= 2)
                m_new = fmaxf(m_new, __shfl_xor_sync(0xFFFFFFFFu, m_new, lanes));
            alpha[r] = expf(mx[r] - m_new);
            mx[r] = m_new;
            float sum = 0.f;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const float p = expf(sc[r][j] - m_new);
                ps[(r0 + r) * F32_P_STRIDE + k0 + j] = p;
                sum += p;
            }
            for (int lanes = 1; lanes < 8; lanes *= 2) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, lanes);
            l[r] = l[r] * alpha[r] + sum;
        }
        __syncwarp();  // a row pair's probabilities come from its own 8 lanes only
#pragma unroll
        for (int c = 0; c < D / 8; ++c) {
            o[0][c] *= alpha[0];
            o[1][c] *= alpha[1];
        }
        const uint32_t count = min((uint32_t)F32_KEYS, s.n_k - j0);
        for (uint32_t j = 0; j < count; ++j) {
            const float p0 = ps[r0 * F32_P_STRIDE + j], p1 = ps[(r0 + 1) * F32_P_STRIDE + j];
            const float* vj = vs + j * D + lane8;
#pragma unroll
            for (int c = 0; c < D / 8; ++c) {
                const float vv = vj[8 * c];
                o[0][c] = fmaf(p0, vv, o[0][c]);
                o[1][c] = fmaf(p1, vv, o[1][c]);
            }
        }
    }
    __syncthreads();  // every thread is done with qs
#pragma unroll
    for (int c = 0; c < D / 8; ++c) {
        qs[(lane8 + 8 * c) * F32_QUERIES + r0] = o[0][c] / l[0];
        qs[(lane8 + 8 * c) * F32_QUERIES + r0 + 1] = o[1][c] / l[1];
    }
    __syncthreads();
    for (int e = tid; e < D * F32_QUERIES; e += F32_THREADS) {
        const int c = e / F32_QUERIES, i = e % F32_QUERIES;
        if (i0 + i < s.n_q) out[(size_t)c * s.n_q + i0 + i] = qs[e];
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points: stream_attention_<storage>_d<D>, named in src/ops/streaming_attention/cuda.rs.

#define TENSOR_CORE(SUFFIX, T, D)                                                                  \
    extern "C" __global__ void __launch_bounds__(TC_THREADS)                                       \
        stream_attention_##SUFFIX##_d##D(const T* q, const T* k, const T* v, T* out, AttentionShape s) { \
        stream_attention_tc<T, D>(q, k, v, out, s);                                                \
    }
#define FLOAT32(D)                                                                                 \
    extern "C" __global__ void __launch_bounds__(F32_THREADS)                                      \
        stream_attention_f32_d##D(const float* q, const float* k, const float* v, float* out,     \
                                  AttentionShape s) {                                              \
        stream_attention_f32<D>(q, k, v, out, s);                                                  \
    }
#define BY_DIM(D) TENSOR_CORE(f16, __half, D) TENSOR_CORE(bf16, __nv_bfloat16, D) FLOAT32(D)

BY_DIM(64)
BY_DIM(128)
BY_DIM(256)
