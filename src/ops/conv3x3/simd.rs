//! Runtime choice of the vector width for our own loops (the products run in `gemm`, which chooses for
//! itself). The crate is built for baseline x86-64 (SSE2) so that one binary runs everywhere; loops
//! written over 16-lane arrays are compiled a second time with AVX-512 enabled and picked when the CPU
//! has it, which makes the Winograd transforms about 4x faster on AVX-512 machines.

/// Runs `f` (whose body must be `#[inline(always)]` code) compiled with AVX-512F when this CPU has it.
#[inline(always)]
pub(super) fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return unsafe { with_avx512(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}
