//! CPU time of one StyA2K frame at 256x256 and 512x512 (formula weights: same arithmetic as trained
//! ones). `cpu_stya2k_frame_*`: the per-frame content half with the style cached, as video runs it;
//! `cpu_stya2k_full_*`: style encoding + frame, what the official test script does per image.
//! Run: `cargo bench --bench cpu_stya2k`; results go to benches/RESULTS.md.
use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use stylestream::checkpoint::{self, formula, WeightSource};

fn image(size: usize, phase: f32) -> Tensor {
    // A smooth non-constant pattern: all-zero or constant inputs would under-exercise softmax/argmax.
    let v: Vec<f32> = (0..3 * size * size)
        .map(|i| 0.5 + 0.5 * ((i % size) as f32 * 0.05 + (i / size) as f32 * 0.031 + phase).sin())
        .collect();
    Tensor::from_vec(v, (1, 3, size, size), &Device::Cpu).unwrap()
}

fn bench(c: &mut Criterion) {
    let model = checkpoint::load_stya2k(&WeightSource::Formula(formula::GOLDEN_SEED), &Device::Cpu).unwrap();
    let mut group = c.benchmark_group("cpu_stya2k");
    group.sample_size(10);
    for size in [256, 512] {
        let (content, style) = (image(size, 0.0), image(size, 1.3));
        let features = model.encode_style(&style).unwrap();
        group.bench_function(format!("frame_{size}"), |b| {
            b.iter(|| model.stylize(&content, &features, 1.0).unwrap())
        });
        group.bench_function(format!("full_{size}"), |b| {
            b.iter(|| {
                let features = model.encode_style(&style).unwrap();
                model.stylize(&content, &features, 1.0).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
