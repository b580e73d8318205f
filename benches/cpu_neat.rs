//! CPU time of one NeAT frame (formula weights, `formula-neat:20261122`: the same arithmetic as trained
//! ones) with the style prepared once, as `video`/`stream` run it: 256x256 and 512x512 content, a
//! 512x512 style (4,096 keys per PAMA block), default prior (blur 7 + bilateral 25). 1920x1080 takes
//! over a minute a frame on a 2-core CPU, so criterion's ten samples would run a quarter of an hour:
//! `benches/neat_sizes.sh` times it (and 4K, with peak memory) through the `image` command instead.
//! Run: `cargo bench --bench cpu_neat`; results go to benches/RESULTS.md beside `cpu_stya2k`'s.
use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use stylestream::checkpoint::{self, WeightSource};
use stylestream::models::neat::Controls;

fn image(h: usize, w: usize, phase: f32) -> Tensor {
    // A smooth non-constant pattern in [0, 1] (as cpu_stya2k's): constant frames would make the prior's
    // statistics degenerate and the softmax uniform.
    let v: Vec<f32> = (0..3 * h * w)
        .map(|i| 0.5 + 0.5 * ((i % w) as f32 * 0.05 + (i / w) as f32 * 0.031 + phase).sin())
        .collect();
    Tensor::from_vec(v, (1, 3, h, w), &Device::Cpu).unwrap()
}

fn bench(c: &mut Criterion) {
    let model = checkpoint::load_neat(&WeightSource::NeatFormula(20261122), &Device::Cpu).unwrap();
    let style = model.encode_style(&image(512, 512, 1.3)).unwrap();
    let mut group = c.benchmark_group("cpu_neat");
    group.sample_size(10);
    for size in [256, 512] {
        let content = image(size, size, 0.0);
        group.bench_function(format!("frame_{size}"), |b| {
            b.iter(|| model.stylize(&content, &style, Controls::default()).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
