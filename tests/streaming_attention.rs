//! The streaming (online-softmax) attention against the dense definition softmax(Q K^T) V, computed
//! here in f64 with the whole score matrix: the independent truth for any tile arithmetic.
use candle_core::{Device, Tensor};
use stylestream::checkpoint::formula::uniform;
use stylestream::ops::streaming_attention::{streaming_attention, KEY_TILE, QUERY_TILE};

/// `n` values in [-scale, scale) from the formula stream of `key`.
fn random(key: &str, n: usize, scale: f64) -> Vec<f32> {
    (0..n as u64).map(|i| (scale * uniform(key, 42, i)) as f32).collect()
}

/// Dense f64 reference. `q`: `[d_k, n_q]` channel-major; `k`: `[n_k, d_k]`; `v`: `[n_k, d_v]`.
/// Returns `[d_v, n_q]`.
fn dense(q: &[f32], k: &[f32], v: &[f32], n_q: usize, n_k: usize, d_k: usize, d_v: usize) -> Vec<f64> {
    let mut out = vec![0f64; d_v * n_q];
    for i in 0..n_q {
        let scores: Vec<f64> =
            (0..n_k).map(|j| (0..d_k).map(|c| q[c * n_q + i] as f64 * k[j * d_k + c] as f64).sum()).collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        for c in 0..d_v {
            out[c * n_q + i] = (0..n_k).map(|j| weights[j] * v[j * d_v + c] as f64).sum::<f64>() / total;
        }
    }
    out
}

fn check(h: usize, w: usize, n_k: usize, d_k: usize, d_v: usize, logit_scale: f64) {
    let n_q = h * w;
    let q = random("q", d_k * n_q, logit_scale);
    let k = random("k", n_k * d_k, 1.0);
    let v = random("v", n_k * d_v, 1.0);
    let qt = Tensor::from_slice(&q, (1, d_k, h, w), &Device::Cpu).unwrap();
    let kt = Tensor::from_slice(&k, (n_k, d_k), &Device::Cpu).unwrap();
    let vt = Tensor::from_slice(&v, (n_k, d_v), &Device::Cpu).unwrap();
    let out = streaming_attention(&qt, &kt, &vt).unwrap();
    assert_eq!(out.dims(), &[1, d_v, h, w]);
    let got = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want = dense(&q, &k, &v, n_q, n_k, d_k, d_v);
    let num: f64 = got.iter().zip(&want).map(|(a, b)| (*a as f64 - b).powi(2)).sum();
    let den: f64 = want.iter().map(|b| b * b).sum();
    let rel = (num / den).sqrt();
    assert!(rel <= 1e-5, "{h}x{w} queries, {n_k} keys, d_k {d_k}, d_v {d_v}: rel L2 {rel:e}");
}

#[test]
fn matches_dense_softmax_for_counts_off_the_tile_grid() {
    // Query counts below, at and across QUERY_TILE (64) and key counts across KEY_TILE (256), none of
    // them (except as stated) multiples of a tile.
    assert_eq!((QUERY_TILE, KEY_TILE), (64, 256), "the cases below are chosen for these tiles");
    for (h, w, n_k) in
        [(1, 1, 1), (1, 1, 300), (1, 67, 1), (7, 19, 257), (3, 43, 513), (8, 8, 256), (5, 13, 700)]
    {
        check(h, w, n_k, 24, 16, 1.0);
    }
}

#[test]
fn large_logits_and_a_growing_maximum_stay_exact() {
    // Scores up to ~150: exp would overflow f32 without the running maximum, and later key tiles
    // often raise it, exercising the rescale of the accumulator.
    check(9, 11, 777, 32, 8, 5.0);
    check(1, 1, 1000, 64, 64, 4.0);
}

#[test]
fn refuses_mismatched_shapes_with_a_message() {
    let q = Tensor::zeros((1, 8, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let k = Tensor::zeros((5, 7), candle_core::DType::F32, &Device::Cpu).unwrap();
    let v = Tensor::zeros((5, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = streaming_attention(&q, &k, &v).unwrap_err().to_string();
    assert!(e.contains("keys have 7 channels, the queries 8"), "{e}");
    let none = Tensor::zeros((0, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
    let v0 = Tensor::zeros((0, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(streaming_attention(&q, &none, &v0).unwrap_err().to_string().contains("at least one key"));
}

#[test]
fn half_storage_is_the_f32_computation_on_the_widened_inputs_rounded_once() {
    use candle_core::DType;
    let (h, w, n_k, d) = (5, 7, 300, 16);
    let q = Tensor::from_vec(random("q", d * h * w, 1.0), (1, d, h, w), &Device::Cpu).unwrap();
    let k = Tensor::from_vec(random("k", n_k * d, 1.0), (n_k, d), &Device::Cpu).unwrap();
    let v = Tensor::from_vec(random("v", n_k * d, 1.0), (n_k, d), &Device::Cpu).unwrap();
    for dtype in [DType::F16, DType::BF16] {
        let [q, k, v] = [&q, &k, &v].map(|t| t.to_dtype(dtype).unwrap());
        let got = streaming_attention(&q, &k, &v).unwrap();
        assert_eq!(got.dtype(), dtype);
        let widened = [&q, &k, &v].map(|t| t.to_dtype(DType::F32).unwrap());
        let want =
            streaming_attention(&widened[0], &widened[1], &widened[2]).unwrap().to_dtype(dtype).unwrap();
        let bits =
            |t: &Tensor| t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(bits(&got) == bits(&want), "{dtype:?}");
    }
    let e = streaming_attention(&q.to_dtype(DType::F16).unwrap(), &k, &v).unwrap_err().to_string();
    assert!(e.contains("keys are F32, the queries F16"), "{e}");
}
