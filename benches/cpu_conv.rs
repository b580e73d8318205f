//! Every 3x3 convolution shape of StyA2K at 512x512 (VGG-19 encoder to relu5_1, merge conv, decoder):
//! our op (`ops::conv3x3`, padding + bias + ReLU fused), direct and Winograd F(4x4, 3x3), against the
//! way the layers ran before it
//! (reflection pad, candle's `conv2d`, bias, ReLU as separate tensor ops), in the same run, and both as
//! a fraction of this machine's measured f32 FMA peak (all cores, AVX2 FMA: the same peak as AVX-512 on Zen 4).
//! Prints a markdown table for benches/RESULTS.md. Run: `cargo bench --bench cpu_conv [-- RUNS]`.
use std::time::Instant;

use candle_core::{Device, Tensor};
use stylestream::nn::reflect_pad;
use stylestream::ops::conv3x3::{conv3x3, conv3x3_winograd, winograd_filters, Padding};

/// `(layer, C_in, C_out, side)` at a 512x512 frame.
const LAYERS: [(&str, usize, usize, usize); 14] = [
    ("conv1_1", 3, 64, 512),
    ("conv1_2", 64, 64, 512),
    ("conv2_1", 64, 128, 256),
    ("conv2_2", 128, 128, 256),
    ("conv3_1", 128, 256, 128),
    ("conv3_2..4", 256, 256, 128),
    ("conv4_1", 256, 512, 64),
    ("conv4_2..4, merge", 512, 512, 64),
    ("conv5_1", 512, 512, 32),
    ("dec 512->256 @64", 512, 256, 64),
    ("dec 512->256 @128", 512, 256, 128),
    ("dec 256->128", 256, 128, 128),
    ("dec 128->64", 128, 64, 256),
    ("dec 64->3", 64, 3, 512),
];

fn random(dims: &[usize], seed: u32) -> Tensor {
    let n: usize = dims.iter().product();
    let mut s = seed.wrapping_mul(2654435761).max(1);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) - 0.5
        })
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

fn median_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[runs / 2]
}

/// f32 multiply-adds per second of all cores: 12 independent FMA chains per thread (enough to cover
/// the FMA latency on two pipes).
fn fma_peak_gflops(iters: usize) -> f64 {
    let run = || {
        let start = Instant::now();
        let lanes = rayon::broadcast(|_| fma_loop(iters));
        (lanes.iter().sum::<f64>(), start.elapsed().as_secs_f64())
    };
    run();
    let (flops, secs) = (0..3).map(|_| run()).min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    flops / secs / 1e9
}

/// Runs `iters` rounds of 12 vector FMAs and returns the flops done (2 per lane per FMA).
fn fma_loop(iters: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA are present (checked above).
        return unsafe { fma_loop_avx2(iters) };
    }
    let mut acc = [1f32; 96];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    std::hint::black_box(acc);
    (iters * 96 * 2) as f64
}

/// The same chains on 256-bit vectors (AVX2 + FMA). Zen 4 runs a 512-bit FMA as both halves of its two
/// 256-bit pipes, so this is also the AVX-512 peak there: 2 pipes x 8 lanes x 2 flops per cycle.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(iters: usize) -> f64 {
    use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_set1_ps};
    let mul = _mm256_set1_ps(0.999_999);
    let add = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, mul, add);
        }
    }
    std::hint::black_box(acc);
    (iters * 12 * 8 * 2) as f64
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: one small layer, once, as a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let (runs, layers) = if smoke { (1, &LAYERS[8..9]) } else { (runs, &LAYERS[..]) };
    let peak = fma_peak_gflops(if smoke { 1000 } else { 20_000_000 });
    println!(
        "measured f32 FMA peak: {peak:.0} GFLOP/s ({} threads); median of {runs} runs",
        rayon::current_num_threads()
    );
    println!();
    println!("| layer | C_in -> C_out | side | direct ms | GFLOP/s | of peak | Winograd ms | eff. GFLOP/s | of peak | before ms | GFLOP/s | best speed-up |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let (mut direct_total, mut winograd_total, mut best_total, mut before_total) = (0.0, 0.0, 0.0, 0.0);
    for (i, &(name, c_in, c_out, side)) in layers.iter().enumerate() {
        let x = random(&[1, c_in, side, side], 3 * i as u32 + 1);
        let w = (random(&[c_out, c_in, 3, 3], 3 * i as u32 + 2) * (2.0 / (9 * c_in) as f64).sqrt()).unwrap();
        let b = random(&[c_out], 3 * i as u32 + 3);
        let direct = median_secs(runs, || {
            conv3x3(&x, &w, &b, Padding::Reflect, true).unwrap();
        });
        let u = winograd_filters(&w).unwrap();
        let winograd = median_secs(runs, || {
            conv3x3_winograd(&x, &u, &b, Padding::Reflect, true).unwrap();
        });
        let before = median_secs(runs, || {
            let p = reflect_pad(&x, 1, 1, 1, 1).unwrap();
            let y = p.conv2d(&w, 0, 1, 1, 1).unwrap();
            y.broadcast_add(&b.reshape((1, (), 1, 1)).unwrap()).unwrap().relu().unwrap();
        });
        let gflop = (2 * 9 * c_in * c_out * side * side) as f64 / 1e9;
        let best = direct.min(winograd);
        direct_total += direct;
        winograd_total += winograd;
        best_total += best;
        before_total += before;
        println!(
            "| {name} | {c_in} -> {c_out} | {side} | {:.1} | {:.0} | {:.0}% | {:.1} | {:.0} | {:.0}% | {:.1} | {:.0} | {:.2}x |",
            direct * 1e3,
            gflop / direct,
            100.0 * gflop / direct / peak,
            winograd * 1e3,
            gflop / winograd,
            100.0 * gflop / winograd / peak,
            before * 1e3,
            gflop / before,
            before / best
        );
    }
    println!(
        "| all shapes once | | | {:.0} | | | {:.0} | | | {:.0} | | {:.2}x |",
        direct_total * 1e3,
        winograd_total * 1e3,
        before_total * 1e3,
        before_total / best_total
    );
}
