//! The one matrix product our CPU ops call: `gemm` on the calling thread, with strided views.

/// `dst = (accumulate ? dst : 0) + lhs x rhs` on this thread, for `(m, n, k)` and `[m, n]`, `[m, k]`,
/// `[k, n]` views given as (first element, column stride, row stride).
///
/// # Safety
/// Every element of the three views must lie inside its buffer; `dst` must not overlap the others.
pub(crate) unsafe fn product(
    (m, n, k): (usize, usize, usize),
    (dst, dst_cs, dst_rs): (*mut f32, isize, isize),
    accumulate: bool,
    (lhs, lhs_cs, lhs_rs): (*const f32, isize, isize),
    (rhs, rhs_cs, rhs_rs): (*const f32, isize, isize),
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
