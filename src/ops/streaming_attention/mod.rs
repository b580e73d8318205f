//! All-to-all attention that streams over the keys (online softmax), for NeAT's PAMA blocks.
//!
//! `out[:, p] = sum_j softmax_j(<q_p, k_j>) v_j` for every query position `p` of a map, over every key
//! `j` (no `1/sqrt(d)` scaling, as PAMA defines it). A dense implementation holds the `N_q x N_k` score
//! matrix: at 1920x1080 content and a 512x512 style that is 32,400 x 4,096 f32 = 530 MB per block. This
//! op never holds more than one [`QUERY_TILE`] x [`KEY_TILE`] tile of scores per worker: for each query
//! tile it walks the keys tile by tile, keeping per query the running maximum `m`, the running
//! normaliser `l = sum exp(s - m)` and the running weighted sum of values, rescaled by `exp(m_old -
//! m_new)` whenever the maximum grows (Milakov & Gimelshein 2018, "Online normalizer calculation for
//! softmax"; the FlashAttention recurrence). Memory is linear in `N_q + N_k`.
//!
//! The query side takes and returns plain `[1, C, H, W]` maps, as StyA2K's blocked attention does, so a
//! kernel can read the map in place; the key/value side (one style, reused for every frame) is given
//! pixel-major, `[N_k, d]`.
mod cpu;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

/// Queries per tile: one rayon task each. 64 keeps a 1080p frame's 32,400 queries in 507 tasks, plenty
/// for any core count, while each task's score tile stays in L2.
pub const QUERY_TILE: usize = 64;

/// Keys per tile: the score tile is `QUERY_TILE x KEY_TILE` f32 = 64 KiB. Larger tiles rescale the
/// accumulator less often; this one keeps the tile, its values and the accumulator in L2.
pub const KEY_TILE: usize = 256;

/// Streaming attention. `q`: queries `[1, d_k, H, W]`; `k`: keys `[N_k, d_k]`; `v`: values `[N_k, d_v]`,
/// all f32, `N_k >= 1`. Returns `[1, d_v, H, W]`: at each position the softmax-weighted sum of the values.
pub fn streaming_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, d_k, _, _) = q.dims4()?;
    let (n_k, kd) = k.dims2()?;
    let (vn, _) = v.dims2()?;
    check(b == 1, || format!("streaming attention takes one frame at a time, got batch {b}"))?;
    check(kd == d_k, || format!("keys have {kd} channels, the queries {d_k}"))?;
    check(vn == n_k, || format!("{vn} values do not pair with {n_k} keys"))?;
    check(n_k > 0, || "streaming attention needs at least one key".to_string())?;
    for (name, t) in [("queries", q), ("keys", k), ("values", v)] {
        check(t.dtype() == DType::F32, || {
            format!("streaming attention runs in f32, {name} are {:?}", t.dtype())
        })?;
    }
    q.contiguous()?.apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &StreamingAttention)
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(candle_core::Error::Msg(msg()))
    }
}

/// Sizes read from the layouts.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    d_k: usize,
    d_v: usize,
    /// Queries: `H * W`.
    n_q: usize,
    n_k: usize,
    height: usize,
    width: usize,
}

impl Geometry {
    /// From the query `[1, d_k, H, W]` and value `[N_k, d_v]` layouts.
    fn new(q: &Layout, v: &Layout) -> Self {
        let (qd, vd) = (q.dims(), v.dims());
        Geometry { d_k: qd[1], d_v: vd[1], n_q: qd[2] * qd[3], n_k: vd[0], height: qd[2], width: qd[3] }
    }

    fn out_shape(&self) -> Shape {
        Shape::from((1, self.d_v, self.height, self.width))
    }
}

/// Borrows a contiguous f32 storage as a slice.
fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => Err(candle_core::Error::Msg("streaming attention needs contiguous inputs".into())),
    }
}

struct StreamingAttention;

impl CustomOp3 for StreamingAttention {
    fn name(&self) -> &'static str {
        "streaming-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        lq: &Layout,
        k: &CpuStorage,
        lk: &Layout,
        v: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(lq, lv);
        let out = cpu::attend(&g, f32_slice(q, lq)?, f32_slice(k, lk)?, f32_slice(v, lv)?);
        Ok((CpuStorage::F32(out), g.out_shape()))
    }
}
