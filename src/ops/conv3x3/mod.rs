//! The 3x3, stride-1, size-keeping convolution of every VGG-style layer, as a custom op on the CPU.
//!
//! `y = relu?(conv(pad1(x), W) + b)`: `x` `[B, C_in, H, W]`, `W` `[C_out, C_in, 3, 3]`, `b` `[C_out]`,
//! `y` `[B, C_out, H, W]`, f32. Padding (reflection or zeros) is written into the border of the op's
//! own input buffer, and bias and ReLU are applied per output tile while it is in cache, so a layer
//! is one pass over its input and one over its output around the products.
//!
//! - `direct.rs`: nine shifted-view `gemm` products per row tile (plus the few-channel and
//!   few-filter shapes of the RGB ends of a network); the training path.
//! - `winograd.rs`: F(4x4, 3x3), a quarter of the multiplies, for inference on wide layers
//!   ([`conv3x3_winograd`] with filters from [`winograd_filters`]).
//! - `grad.rs`: the backward pass on the direct machinery. The input gradient is the same
//!   convolution of the output gradient with the flipped, transposed filters (zero padding 2, then the
//!   padding's adjoint folds the border back); the filter gradient is nine products of the output
//!   gradient with shifted views of the padded input.
//! - `reference.rs`: the plain loop every path is tested against (and, with feature
//!   `check-kernels`, the direct path is checked against on every call).
//! - `simd.rs`: AVX-512 builds of our own loops, chosen at run time.
mod direct;
mod grad;
mod reference;
mod simd;
mod winograd;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use direct::{conv_valid, Padded};

/// How a 3x3 convolution fills the one-pixel border it reads outside the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// `ReflectionPad2d(1)`, as the official StyA2K/AdaIN networks pad: borders stay free of dark frames.
    Reflect,
    /// Zeros, as torchvision's VGG pads (`Conv2d(padding=1)`).
    Zero,
}

/// Relative L2 distance allowed between the fast path and the reference: both sum in f32, in other
/// orders.
#[cfg_attr(not(any(test, feature = "check-kernels")), allow(dead_code))]
const CHECK_TOLERANCE: f64 = 1e-5;

/// `relu?(conv3x3(pad1(x), weight) + bias)` on the CPU in f32 (see the module docs for shapes).
/// Errors name the mismatching shape or dtype.
pub fn conv3x3(x: &Tensor, weight: &Tensor, bias: &Tensor, padding: Padding, relu: bool) -> Result<Tensor> {
    let (_, c_in, _, _) = x.dims4()?;
    let (c_out, w_in, kh, kw) = weight.dims4()?;
    if (w_in, kh, kw) != (c_in, 3, 3) || bias.dims() != [c_out] {
        candle_core::bail!(
            "conv3x3: input {:?}, weight {:?} and bias {:?} do not form a 3x3 convolution",
            x.dims(),
            weight.dims(),
            bias.dims()
        );
    }
    check_cpu_f32([x, weight, bias])?;
    x.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, Conv3x3 { padding, relu })
}

/// Winograd-transformed filters for [`conv3x3_winograd`]: `weight` `[C_out, C_in, 3, 3]` ->
/// `[36, C_out, C_in]`. Computed once per loaded layer: the transform costs about a tenth of a frame's
/// convolution on the largest layers.
pub fn winograd_filters(weight: &Tensor) -> Result<Tensor> {
    let (c_out, c_in, kh, kw) = weight.dims4()?;
    if (kh, kw) != (3, 3) || weight.dtype() != DType::F32 || !weight.device().is_cpu() {
        candle_core::bail!("winograd_filters takes f32 3x3 filters on the CPU, got {:?}", weight.dims());
    }
    let w = weight.flatten_all()?.to_vec1::<f32>()?;
    Tensor::from_vec(winograd::filters(&w, c_out, c_in), (36, c_out, c_in), weight.device())
}

/// [`conv3x3`] through Winograd's F(4x4, 3x3) with filters from [`winograd_filters`]: a quarter of
/// the multiplies, a few 1e-6 relative error more; inference only (no gradient).
pub fn conv3x3_winograd(
    x: &Tensor,
    filters: &Tensor,
    bias: &Tensor,
    padding: Padding,
    relu: bool,
) -> Result<Tensor> {
    let (_, c_in, _, _) = x.dims4()?;
    let (taps, c_out, u_in) = filters.dims3()?;
    if (taps, u_in) != (36, c_in) || bias.dims() != [c_out] {
        candle_core::bail!(
            "conv3x3_winograd: input {:?}, filters {:?} and bias {:?} do not form a 3x3 convolution",
            x.dims(),
            filters.dims(),
            bias.dims()
        );
    }
    check_cpu_f32([x, filters, bias])?;
    x.contiguous()?.apply_op3_no_bwd(&filters.contiguous()?, &bias.contiguous()?, &Winograd { padding, relu })
}

/// The forward op.
struct Conv3x3 {
    padding: Padding,
    relu: bool,
}

impl CustomOp3 for Conv3x3 {
    fn name(&self) -> &'static str {
        "conv3x3"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (f32_slice(xs, xl)?, f32_slice(ws, wl)?, f32_slice(bs, bl)?);
        let [batch, c_in, h, wd] = dims4(xl);
        let c_out = wl.dims()[0];
        let mut out = vec![0f32; batch * c_out * h * wd];
        let mut padded = Padded::zeros(c_in, h + 2, wd + 2);
        // Tap t = 3 dy + dx of W as a [C_out, C_in] matrix: W[o, c, t] at o * 9 C_in + 9 c + t.
        let tap = move |t: usize| (t, (9 * c_in) as isize, 9);
        for (frame, y) in x.chunks(c_in * h * wd).zip(out.chunks_mut(c_out * h * wd)) {
            padded.fill(frame, h, wd, 1, self.padding);
            conv_valid(&padded, w, tap, c_out, Some(b), self.relu, y);
        }
        #[cfg(feature = "check-kernels")]
        {
            let want = reference::conv3x3(x, [batch, c_in, h, wd], w, c_out, b, self.padding, self.relu);
            let err = super::storage::relative_l2(&out, &want);
            assert!(err <= CHECK_TOLERANCE, "check-kernels: conv3x3 differs from the reference by {err:e}");
        }
        Ok((CpuStorage::F32(out), Shape::from((batch, c_out, h, wd))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Through the ReLU: the output is positive exactly where the pre-activation was.
        let grad =
            if self.relu { (grad_res * res.gt(0f32)?.to_dtype(DType::F32)?)? } else { grad_res.clone() };
        let grad = grad.contiguous()?;
        // The frame itself rarely needs a gradient (the first layer's input is an image).
        let d_x = match x.track_op() {
            true => Some(grad.apply_op2_no_bwd(weight, &grad::InputGrad { padding: self.padding })?),
            false => None,
        };
        let d_w = x.apply_op2_no_bwd(&grad, &grad::WeightGrad { padding: self.padding })?;
        let d_b = grad.sum((0, 2, 3))?;
        Ok((d_x, Some(d_w), Some(d_b)))
    }
}

/// The Winograd forward op (inference only).
struct Winograd {
    padding: Padding,
    relu: bool,
}

impl CustomOp3 for Winograd {
    fn name(&self) -> &'static str {
        "conv3x3-winograd"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, u, b) = (f32_slice(xs, xl)?, f32_slice(us, ul)?, f32_slice(bs, bl)?);
        let [batch, c_in, h, wd] = dims4(xl);
        let c_out = ul.dims()[1];
        let mut out = vec![0f32; batch * c_out * h * wd];
        let (ty, tx) = winograd::tiles(h, wd);
        let mut padded = Padded::zeros(c_in, 4 * ty + 2, 4 * tx + 2);
        for (frame, y) in x.chunks(c_in * h * wd).zip(out.chunks_mut(c_out * h * wd)) {
            padded.fill(frame, h, wd, 1, self.padding);
            winograd::conv(&padded, u, c_out, b, self.relu, h, wd, y);
        }
        Ok((CpuStorage::F32(out), Shape::from((batch, c_out, h, wd))))
    }
}

fn check_cpu_f32(tensors: [&Tensor; 3]) -> Result<()> {
    match tensors.iter().find(|t| t.dtype() != DType::F32 || !t.device().is_cpu()) {
        Some(t) => {
            candle_core::bail!("conv3x3 runs in f32 on the CPU, got {:?} on {:?}", t.dtype(), t.device())
        }
        None => Ok(()),
    }
}

/// A contiguous f32 input's values.
fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("conv3x3 needs contiguous inputs".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(&v[start..end]),
        other => candle_core::bail!("conv3x3 runs in f32, got {:?}", other.dtype()),
    }
}

fn dims4(l: &Layout) -> [usize; 4] {
    let d = l.dims();
    [d[0], d[1], d[2], d[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn random(dims: &[usize], seed: u64) -> Tensor {
        let n: usize = dims.iter().product();
        let v = (0..n as u64).map(|i| crate::checkpoint::formula::uniform("t", seed, i) as f32).collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        super::super::storage::relative_l2(&a, &b)
    }

    /// Relative L2 distance allowed between the Winograd path and the direct one (see `winograd.rs`).
    const WINOGRAD_TOLERANCE: f64 = 2e-5;

    /// Shapes with odd sizes, one-pixel frames, a batch, and channel counts off the SIMD widths.
    const SHAPES: [(usize, usize, usize, usize, usize); 6] = [
        (1, 3, 5, 9, 7),
        (2, 4, 6, 1, 5),
        (1, 5, 3, 1, 1),
        (1, 17, 33, 12, 10),
        (3, 2, 2, 4, 3),
        (1, 64, 64, 19, 23),
    ];

    #[test]
    fn forward_matches_the_reference_loop() {
        for (i, &(b, c_in, c_out, h, w)) in SHAPES.iter().enumerate() {
            for padding in [Padding::Reflect, Padding::Zero] {
                for relu in [false, true] {
                    let x = random(&[b, c_in, h, w], 3 * i as u64);
                    let k = random(&[c_out, c_in, 3, 3], 3 * i as u64 + 1);
                    let bias = random(&[c_out], 3 * i as u64 + 2);
                    let got = conv3x3(&x, &k, &bias, padding, relu).unwrap();
                    let want = reference::conv3x3(
                        &x.flatten_all().unwrap().to_vec1().unwrap(),
                        [b, c_in, h, w],
                        &k.flatten_all().unwrap().to_vec1().unwrap(),
                        c_out,
                        &bias.to_vec1().unwrap(),
                        padding,
                        relu,
                    );
                    let want = Tensor::from_vec(want, (b, c_out, h, w), &Device::Cpu).unwrap();
                    let err = rel_l2(&got, &want);
                    assert!(err < CHECK_TOLERANCE, "{:?} {padding:?} relu {relu}: {err:e}", SHAPES[i]);
                }
            }
        }
    }

    #[test]
    fn winograd_matches_the_direct_convolution() {
        // The last shape spans several blocks of tile rows (see `winograd::BLOCK_VALUES`).
        for (i, &(b, c_in, c_out, h, w)) in SHAPES.iter().chain(&[(1, 64, 64, 210, 70)]).enumerate() {
            for padding in [Padding::Reflect, Padding::Zero] {
                let relu = i % 2 == 1;
                let x = random(&[b, c_in, h, w], 50 + i as u64);
                let k = random(&[c_out, c_in, 3, 3], 60 + i as u64);
                let bias = random(&[c_out], 70 + i as u64);
                let got = conv3x3_winograd(&x, &winograd_filters(&k).unwrap(), &bias, padding, relu).unwrap();
                let want = conv3x3(&x, &k, &bias, padding, relu).unwrap();
                let err = rel_l2(&got, &want);
                assert!(err < WINOGRAD_TOLERANCE, "{:?} {padding:?}: {err:e}", (b, c_in, c_out, h, w));
            }
        }
    }

    /// The same loss through candle's own padding and convolution, whose gradients candle derives.
    fn candle_conv(x: &Tensor, k: &Tensor, bias: &Tensor, padding: Padding, relu: bool) -> Tensor {
        let padded = match padding {
            Padding::Reflect => crate::nn::reflect_pad(x, 1, 1, 1, 1).unwrap(),
            Padding::Zero => x.pad_with_zeros(2, 1, 1).unwrap().pad_with_zeros(3, 1, 1).unwrap(),
        };
        let y = padded
            .conv2d(k, 0, 1, 1, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, (), 1, 1)).unwrap())
            .unwrap();
        if relu {
            y.relu().unwrap()
        } else {
            y
        }
    }

    #[test]
    fn gradients_match_candles_autograd() {
        for (i, &(b, c_in, c_out, h, w)) in SHAPES.iter().enumerate() {
            for padding in [Padding::Reflect, Padding::Zero] {
                let relu = i % 2 == 0;
                let x = Var::from_tensor(&random(&[b, c_in, h, w], 10 + i as u64)).unwrap();
                let k = Var::from_tensor(&random(&[c_out, c_in, 3, 3], 20 + i as u64)).unwrap();
                let bias = Var::from_tensor(&random(&[c_out], 30 + i as u64)).unwrap();
                let probe = random(&[b, c_out, h, w], 40 + i as u64);
                let ours = conv3x3(&x, &k, &bias, padding, relu).unwrap();
                let theirs = candle_conv(&x, &k, &bias, padding, relu);
                assert!(rel_l2(&ours, &theirs) < CHECK_TOLERANCE);
                let g_ours = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                let g_theirs = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                for (name, v) in [("x", x.as_tensor()), ("weight", k.as_tensor()), ("bias", bias.as_tensor())]
                {
                    let err = rel_l2(g_ours.get(v).unwrap(), g_theirs.get(v).unwrap());
                    assert!(err < 1e-5, "{:?} {padding:?}: d{name} differs by {err:e}", SHAPES[i]);
                }
            }
        }
    }

    #[test]
    fn mismatched_shapes_and_dtypes_are_refused() {
        let x = random(&[1, 4, 5, 5], 1);
        let k = random(&[6, 3, 3, 3], 2);
        let bias = random(&[6], 3);
        assert!(conv3x3(&x, &k, &bias, Padding::Zero, false)
            .unwrap_err()
            .to_string()
            .contains("3x3 convolution"));
        let k = random(&[6, 4, 3, 3], 2).to_dtype(DType::F16).unwrap();
        assert!(conv3x3(&x, &k, &bias, Padding::Zero, false).unwrap_err().to_string().contains("f32"));
    }
}
