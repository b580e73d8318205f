//! Reads the official StyA2K A2K checkpoint (PyTorch zip format) and checks every tensor against the
//! shape, sum, sum of absolute values and first values recorded beside it in latest_net_A2K.json.
use std::path::Path;

use stylestream::checkpoint::pth::read_pth;

/// shared/ sits beside the repository root, in a checkout as in CI.
const OFFICIAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/official");

/// The JSON sums are float64 sums of the float32 values; summation order alone moves them by far
/// less than this fraction of the sum of absolute values, a wrong element by far more.
const SUM_TOLERANCE: f64 = 1e-9;

#[test]
fn official_a2k_checkpoint_matches_its_description() {
    let dir = Path::new(OFFICIAL);
    let json = std::fs::read_to_string(dir.join("latest_net_A2K.json")).expect("shared/ fixture description");
    let description: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let expected = description["tensors"].as_object().expect("a `tensors` object");

    let tensors = read_pth(&dir.join("latest_net_A2K.pth")).expect("official checkpoint reads");

    let mut names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    let mut expected_names: Vec<&str> = expected.keys().map(String::as_str).collect();
    names.sort_unstable();
    expected_names.sort_unstable();
    assert_eq!(names, expected_names);
    assert_eq!(tensors[0].name, "sim_alpha", "state-dict order is kept");

    for tensor in &tensors {
        let want = &expected[&tensor.name];
        let name = &tensor.name;
        assert_eq!(want["dtype"], "float32", "{name}");
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        assert_eq!(tensor.shape, shape, "{name}");
        assert_eq!(tensor.data.len(), shape.iter().product::<usize>(), "{name}");

        let sum: f64 = tensor.data.iter().map(|&v| f64::from(v)).sum();
        let sum_abs: f64 = tensor.data.iter().map(|&v| f64::from(v).abs()).sum();
        let want_sum = want["sum"].as_f64().expect("sum");
        let want_sum_abs = want["sum_abs"].as_f64().expect("sum_abs");
        let tolerance = SUM_TOLERANCE * want_sum_abs.max(1.0);
        assert!((sum - want_sum).abs() <= tolerance, "{name}: sum {sum}, expected {want_sum}");
        assert!(
            (sum_abs - want_sum_abs).abs() <= tolerance,
            "{name}: sum_abs {sum_abs}, expected {want_sum_abs}"
        );

        let first: Vec<f32> = want["first"]
            .as_array()
            .expect("first")
            .iter()
            .map(|v| v.as_f64().expect("value") as f32)
            .collect();
        assert_eq!(tensor.data[..first.len()], first[..], "{name}: first values");
    }
}
