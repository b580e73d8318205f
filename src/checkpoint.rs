//! Checkpoints: stylestream's safetensors bundles, the import of the official PyTorch files, and the
//! formula weights of the golden tests.
//!
//! A bundle is one safetensors file per model. Keys are namespaced by the part of the network they
//! belong to (`vgg.`, `a2k.`, `transform.`, `decoder.` for StyA2K; `vgg.`, `transform.alignN.`,
//! `decoder.` for NeAT) followed by the official (or PAMA-style) state-dict key unchanged, so a bundle
//! listing reads next to the official files. Metadata (string map): `stylestream.model` (`stya2k` or
//! `neat`: what `--model` loads), `stylestream.format` ([`FORMAT_VERSION`]), `stylestream.encoder`
//! (where the frozen VGG came from: `random:SEED` and `vgg16 sha256:HEX` ([`vgg16`]) are regenerated
//! by the loader, not stored), `stylestream.training` (JSON: how the weights were made) and
//! `stylestream.config` (JSON: the network's configuration, [`NeatConfig`] for NeAT; `{}` for StyA2K,
//! and read as `{}` when absent, as in bundles written before it existed).
//! Tensors may be stored as f32, f16 or bf16; they are upcast to f32 on load.
pub mod formula;
pub mod numpy_pickle;
pub mod pth;
pub mod vgg16;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::models::neat::{Neat, NeatConfig};
use crate::models::stya2k::StyA2K;
use crate::models::vgg::Architecture;
use crate::models::Network;

/// Bundle layout version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

const META_MODEL: &str = "stylestream.model";
const META_FORMAT: &str = "stylestream.format";
const META_ENCODER: &str = "stylestream.encoder";
const META_TRAINING: &str = "stylestream.training";
const META_CONFIG: &str = "stylestream.config";

/// `stylestream.model` of StyA2K and NeAT bundles.
pub const STYA2K: &str = "stya2k";
pub const NEAT: &str = "neat";

/// The official StyA2K files and where their tensors go in a bundle: `(namespace, official file
/// name)`. Keys inside each file are kept verbatim after the namespace (the official saver strips
/// `nn.DataParallel`'s `module.` prefix, so none appears). The one thing dropped is in
/// [`VGG_NEVER_RUN`].
pub const OFFICIAL_FILES: [(&str, &str); 4] = [
    ("vgg", "vgg_normalised.pth"),
    ("a2k", "latest_net_A2K.pth"),
    ("transform", "latest_net_transform.pth"),
    ("decoder", "latest_net_decoder.pth"),
];

/// conv5_2 .. conv5_4 of `vgg_normalised.pth`: stored, never executed (the encoder stops at relu5_1),
/// so the import leaves out their 7 M parameters.
const VGG_NEVER_RUN: [&str; 6] = ["45.weight", "45.bias", "48.weight", "48.bias", "51.weight", "51.bias"];

/// What went wrong with a checkpoint; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a safetensors file ({reason})")]
    NotSafetensors { path: PathBuf, reason: String },
    #[error("{path}: no `{key}` metadata, so not a stylestream bundle (official .pth files go through `stylestream import-official`)")]
    NotABundle { path: PathBuf, key: &'static str },
    #[error("{path}: bundle format {found}, this build reads format {FORMAT_VERSION}")]
    Format { path: PathBuf, found: String },
    #[error("{path}: holds a `{found}` model, expected `{expected}`")]
    WrongModel { path: PathBuf, found: String, expected: &'static str },
    #[error("{path}: holds a `{found}` model; this build runs `{STYA2K}` and `{NEAT}`")]
    UnknownModel { path: PathBuf, found: String },
    #[error("{path}: `{META_CONFIG}` metadata: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Pth { path: PathBuf, source: pth::PthError },
    #[error("{path}: {message}")]
    Tensors { path: PathBuf, message: String },
}

/// Where model weights come from: a bundle file (StyA2K or NeAT, as its metadata says), `formula:SEED`
/// (StyA2K with the golden tests' deterministic random weights: an untrained network, for tests and
/// benchmarks), `formula-neat:SEED` (NeAT with formula weights and the default [`NeatConfig`]), or
/// `default` / `default-neat`: the models trained by us that ship in `weights/` and are compiled into
/// the binary, so a fresh install stylises with no download and no flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightSource {
    Bundle(PathBuf),
    Formula(u64),
    NeatFormula(u64),
    Default(Shipped),
}

/// The models that ship in `weights/` (`weights/README.md` says how each was trained).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shipped {
    /// `default`: `weights/stya2k.safetensors`.
    Stya2k,
    /// `default-neat`: `weights/neat.safetensors`.
    Neat,
}

impl Shipped {
    /// The name `--model` takes.
    pub fn name(self) -> &'static str {
        match self {
            Shipped::Stya2k => "default",
            Shipped::Neat => "default-neat",
        }
    }

    /// The bundle's bytes, compiled in.
    pub fn bundle(self) -> &'static [u8] {
        match self {
            Shipped::Stya2k => include_bytes!("../weights/stya2k.safetensors"),
            Shipped::Neat => include_bytes!("../weights/neat.safetensors"),
        }
    }
}

impl std::fmt::Display for WeightSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightSource::Bundle(path) => write!(f, "{}", path.display()),
            WeightSource::Formula(seed) => write!(f, "formula:{seed}"),
            WeightSource::NeatFormula(seed) => write!(f, "formula-neat:{seed}"),
            WeightSource::Default(shipped) => f.write_str(shipped.name()),
        }
    }
}

impl std::str::FromStr for WeightSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let seed = |prefix: &str, seed: &str| {
            seed.parse().map_err(|_| format!("`{s}`: the seed after `{prefix}` must be an unsigned integer"))
        };
        if let Some(rest) = s.strip_prefix("formula:") {
            seed("formula:", rest).map(WeightSource::Formula)
        } else if let Some(rest) = s.strip_prefix("formula-neat:") {
            seed("formula-neat:", rest).map(WeightSource::NeatFormula)
        } else if let Some(shipped) = [Shipped::Stya2k, Shipped::Neat].into_iter().find(|m| m.name() == s) {
            Ok(WeightSource::Default(shipped))
        } else {
            Ok(WeightSource::Bundle(PathBuf::from(s)))
        }
    }
}

/// Namespace of the training state (optimizer moments) inside a training checkpoint; inference
/// ignores it, so a training checkpoint runs wherever a bundle does.
pub const TRAINING_STATE: &str = "optim.";

/// Where a model's frozen VGG encoder comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoder {
    /// `vgg16`: torchvision's ImageNet VGG-16, compiled in ([`vgg16`]); a bundle records its identity
    /// and the file's sha256.
    Vgg16,
    /// `random:SEED`: fixed random weights generated from the seed (the `vgg` namespace of the formula
    /// weights, [`formula::vgg_tensors`]). He et al. 2016 showed random-weight VGG features still carry
    /// style statistics, but barely see hue or texture; the shipped models were trained on it, before
    /// [`Encoder::Vgg16`] existed. A bundle records only the seed.
    Random(u64),
    /// An official `vgg_normalised.pth`, or a bundle whose encoder is reused.
    File(PathBuf),
}

impl std::str::FromStr for Encoder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == vgg16::NAME {
            return Ok(Encoder::Vgg16);
        }
        match s.strip_prefix("random:") {
            Some(seed) => seed
                .parse()
                .map(Encoder::Random)
                .map_err(|_| format!("`{s}`: the seed after `random:` must be an unsigned integer")),
            None => Ok(Encoder::File(PathBuf::from(s))),
        }
    }
}

impl Encoder {
    /// The encoder's `vgg.` tensors and the text a bundle records for it (`stylestream.encoder`).
    pub fn load(&self) -> Result<(String, HashMap<String, Tensor>), CheckpointError> {
        match self {
            Encoder::Random(seed) => {
                let tensors = formula::vgg_tensors(*seed).map_err(|e| CheckpointError::Tensors {
                    path: PathBuf::from(format!("random:{seed}")),
                    message: e.to_string(),
                })?;
                Ok((format!("random:{seed}"), tensors))
            }
            Encoder::Vgg16 => Ok((vgg16::identity(), vgg16::tensors()?)),
            Encoder::File(path) if path.extension().is_some_and(|e| e == "pth") => {
                Ok((format!("official vgg_normalised ({})", path.display()), read_official("vgg", path)?))
            }
            Encoder::File(path) => {
                let (info, tensors) = read_bundle(path)?;
                if let Ok(random @ Encoder::Random(_)) = info.encoder.parse() {
                    return random.load();
                }
                if vgg16::is_recorded(&info.encoder, path)? {
                    return Encoder::Vgg16.load();
                }
                let vgg: HashMap<String, Tensor> =
                    tensors.into_iter().filter(|(k, _)| k.starts_with("vgg.")).collect();
                if vgg.is_empty() {
                    return Err(CheckpointError::Tensors {
                        path: path.clone(),
                        message: "holds no `vgg.` encoder tensors".into(),
                    });
                }
                Ok((info.encoder, vgg))
            }
        }
    }
}

/// Bundle metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    pub model: String,
    pub encoder: String,
    pub training: String,
    /// The network's configuration, JSON (`{}` for StyA2K).
    pub config: String,
}

/// Loads whichever network `source` holds onto `device`.
pub fn load(source: &WeightSource, device: &Device) -> Result<Network, CheckpointError> {
    load_as(source, device, DType::F32)
}

/// As [`load`], with every weight cast to `dtype` (f16/bf16 inference).
pub fn load_as(source: &WeightSource, device: &Device, dtype: DType) -> Result<Network, CheckpointError> {
    let path: PathBuf = match source {
        WeightSource::Formula(_) => {
            return load_stya2k_as(source, device, dtype).map(|m| Network::StyA2K(Box::new(m)))
        }
        WeightSource::NeatFormula(_) => return load_neat_as(source, device, dtype).map(Network::Neat),
        WeightSource::Bundle(_) | WeightSource::Default(_) => source.to_string().into(),
    };
    let path = &path;
    let (info, tensors) = read_source_bundle(source)?;
    match info.model.as_str() {
        STYA2K => build_stya2k(inference_tensors(&info, tensors, path)?, device, dtype, path)
            .map(|m| Network::StyA2K(Box::new(m))),
        NEAT => build_neat(&info, tensors, device, dtype, path).map(Network::Neat),
        _ => Err(CheckpointError::UnknownModel { path: path.clone(), found: info.model }),
    }
}

/// Loads StyA2K from `source` onto `device`.
pub fn load_stya2k(source: &WeightSource, device: &Device) -> Result<StyA2K, CheckpointError> {
    load_stya2k_as(source, device, DType::F32)
}

/// As [`load_stya2k`], with every weight cast to `dtype` (f16/bf16 inference).
pub fn load_stya2k_as(
    source: &WeightSource,
    device: &Device,
    dtype: DType,
) -> Result<StyA2K, CheckpointError> {
    match source {
        WeightSource::Formula(seed) => {
            let path = PathBuf::from(format!("formula:{seed}"));
            StyA2K::new(formula::var_builder(*seed, device).set_dtype(dtype))
                .map_err(|e| CheckpointError::Tensors { path, message: e.to_string() })
        }
        WeightSource::NeatFormula(seed) => Err(CheckpointError::WrongModel {
            path: PathBuf::from(format!("formula-neat:{seed}")),
            found: NEAT.into(),
            expected: STYA2K,
        }),
        WeightSource::Bundle(_) | WeightSource::Default(_) => {
            let path = &PathBuf::from(source.to_string());
            let (info, tensors) = read_source_bundle(source)?;
            if info.model != STYA2K {
                return Err(CheckpointError::WrongModel {
                    path: path.clone(),
                    found: info.model,
                    expected: STYA2K,
                });
            }
            build_stya2k(inference_tensors(&info, tensors, path)?, device, dtype, path)
        }
    }
}

/// Builds StyA2K on the encoder its tensors hold, strictly.
fn build_stya2k(
    tensors: NetworkTensors,
    device: &Device,
    dtype: DType,
    path: &Path,
) -> Result<StyA2K, CheckpointError> {
    let architecture = tensors.architecture();
    build_strict(
        tensors,
        device,
        dtype,
        |_| path.to_path_buf(),
        "StyA2K",
        |vb| StyA2K::with_encoder(architecture, vb),
    )
}

/// The tensors a network is built from.
struct NetworkTensors {
    /// The bundle's, less the training state: every one must be read.
    held: HashMap<String, Tensor>,
    /// A random encoder, which a bundle records by its seed only, regenerated (empty when the bundle
    /// holds its encoder): read where the network asks, since a network may use only the first layers.
    regenerated: HashMap<String, Tensor>,
}

impl NetworkTensors {
    /// Tensors that are all read, nothing regenerated.
    fn held(held: HashMap<String, Tensor>) -> Self {
        NetworkTensors { held, regenerated: HashMap::new() }
    }

    /// The encoder's architecture, as its keys say.
    fn architecture(&self) -> Architecture {
        Architecture::of_keys(self.held.keys().chain(self.regenerated.keys()))
    }
}

/// A bundle's tensors ready to build a network from: the training state dropped, a random encoder
/// regenerated from its seed, the VGG-16 one taken from the compiled-in file (errors name `path`).
fn inference_tensors(
    info: &BundleInfo,
    mut held: HashMap<String, Tensor>,
    path: &Path,
) -> Result<NetworkTensors, CheckpointError> {
    held.retain(|k, _| !k.starts_with(TRAINING_STATE));
    let mut regenerated = HashMap::new();
    if !held.keys().any(|k| k.starts_with("vgg.")) {
        if let Ok(random @ Encoder::Random(_)) = info.encoder.parse::<Encoder>() {
            regenerated = random.load()?.1;
        } else if vgg16::is_recorded(&info.encoder, path)? {
            regenerated = vgg16::tensors()?;
        }
    }
    Ok(NetworkTensors { held, regenerated })
}

/// Loads NeAT from `source` onto `device`.
pub fn load_neat(source: &WeightSource, device: &Device) -> Result<Neat, CheckpointError> {
    load_neat_as(source, device, DType::F32)
}

/// As [`load_neat`], with every weight cast to `dtype` (f16/bf16 inference).
pub fn load_neat_as(source: &WeightSource, device: &Device, dtype: DType) -> Result<Neat, CheckpointError> {
    match source {
        WeightSource::NeatFormula(seed) => {
            let path = PathBuf::from(format!("formula-neat:{seed}"));
            Neat::new(NeatConfig::default(), formula::var_builder(*seed, device).set_dtype(dtype))
                .map_err(|e| CheckpointError::Tensors { path, message: e.to_string() })
        }
        WeightSource::Formula(seed) => Err(CheckpointError::WrongModel {
            path: PathBuf::from(format!("formula:{seed}")),
            found: STYA2K.into(),
            expected: NEAT,
        }),
        WeightSource::Bundle(_) | WeightSource::Default(_) => {
            let path = &PathBuf::from(source.to_string());
            let (info, tensors) = read_source_bundle(source)?;
            if info.model != NEAT {
                return Err(CheckpointError::WrongModel {
                    path: path.clone(),
                    found: info.model,
                    expected: NEAT,
                });
            }
            build_neat(&info, tensors, device, dtype, path)
        }
    }
}

/// Builds NeAT from a bundle's (or a training checkpoint's) tensors and its `stylestream.config`,
/// strictly.
fn build_neat(
    info: &BundleInfo,
    tensors: HashMap<String, Tensor>,
    device: &Device,
    dtype: DType,
    path: &Path,
) -> Result<Neat, CheckpointError> {
    let config: NeatConfig = serde_json::from_str(&info.config)
        .map_err(|e| CheckpointError::Config { path: path.to_path_buf(), message: e.to_string() })?;
    config
        .prior
        .check()
        .map_err(|e| CheckpointError::Config { path: path.to_path_buf(), message: e.to_string() })?;
    let tensors = inference_tensors(info, tensors, path)?;
    let architecture = tensors.architecture();
    build_strict(
        tensors,
        device,
        dtype,
        |_| path.to_path_buf(),
        "NeAT",
        |vb| Neat::with_encoder(config, architecture, vb),
    )
}

/// The bundle of a source that is one: a file, or a shipped model compiled into the binary.
fn read_source_bundle(
    source: &WeightSource,
) -> Result<(BundleInfo, HashMap<String, Tensor>), CheckpointError> {
    match source {
        WeightSource::Default(shipped) => parse_bundle(shipped.bundle(), Path::new(shipped.name())),
        _ => read_bundle(Path::new(&source.to_string())),
    }
}

/// Reads a bundle's metadata and tensors (upcast to f32, on the CPU).
pub fn read_bundle(path: &Path) -> Result<(BundleInfo, HashMap<String, Tensor>), CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    parse_bundle(&std::fs::read(path).map_err(io)?, path)
}

/// A bundle's metadata and tensors from its bytes; errors name `path`.
fn parse_bundle(bytes: &[u8], path: &Path) -> Result<(BundleInfo, HashMap<String, Tensor>), CheckpointError> {
    let not_st = |e: safetensors::SafeTensorError| CheckpointError::NotSafetensors {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(not_st)?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let field = |key: &'static str| {
        meta.get(key).cloned().ok_or(CheckpointError::NotABundle { path: path.to_path_buf(), key })
    };
    let format = field(META_FORMAT)?;
    if format != FORMAT_VERSION.to_string() {
        return Err(CheckpointError::Format { path: path.to_path_buf(), found: format });
    }
    let info = BundleInfo {
        model: field(META_MODEL)?,
        encoder: field(META_ENCODER)?,
        training: field(META_TRAINING)?,
        config: meta.get(META_CONFIG).cloned().unwrap_or_else(|| "{}".into()),
    };
    Ok((info, parse_tensors(bytes, path)?))
}

/// The tensors of a safetensors file's bytes (upcast to f32, on the CPU); errors name `path`.
fn parse_tensors(bytes: &[u8], path: &Path) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| CheckpointError::NotSafetensors { path: path.to_path_buf(), reason: e.to_string() })?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let t = Tensor::from_raw_buffer(
            view.data(),
            dtype_of(view.dtype(), &name, path)?,
            view.shape(),
            &Device::Cpu,
        )
        .and_then(|t| t.to_dtype(DType::F32))
        .map_err(|e| CheckpointError::Tensors {
            path: path.to_path_buf(),
            message: format!("tensor `{name}`: {e}"),
        })?;
        tensors.insert(name, t);
    }
    Ok(tensors)
}

fn dtype_of(dtype: safetensors::Dtype, name: &str, path: &Path) -> Result<DType, CheckpointError> {
    match dtype {
        safetensors::Dtype::F32 => Ok(DType::F32),
        safetensors::Dtype::F16 => Ok(DType::F16),
        safetensors::Dtype::BF16 => Ok(DType::BF16),
        other => Err(CheckpointError::Tensors {
            path: path.to_path_buf(),
            message: format!("tensor `{name}` is {other:?}; bundles hold f32, f16 or bf16"),
        }),
    }
}

/// Writes a bundle atomically (a temporary name in the same folder, then a rename), tensors as f32.
pub fn write_bundle(
    path: &Path,
    info: &BundleInfo,
    tensors: &HashMap<String, Tensor>,
) -> Result<(), CheckpointError> {
    write_bundle_as(path, info, tensors, Storage::F32)
}

/// How a bundle stores its tensors. Loaders upcast everything to f32, so f16 halves the file (the shipped
/// default) at a rounding error of at most 2^-11 relative per weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    F32,
    F16,
}

/// As [`write_bundle`], storing the tensors as `storage`.
pub fn write_bundle_as(
    path: &Path,
    info: &BundleInfo,
    tensors: &HashMap<String, Tensor>,
    storage: Storage,
) -> Result<(), CheckpointError> {
    let meta = HashMap::from([
        (META_MODEL.to_string(), info.model.clone()),
        (META_FORMAT.to_string(), FORMAT_VERSION.to_string()),
        (META_ENCODER.to_string(), info.encoder.clone()),
        (META_TRAINING.to_string(), info.training.clone()),
        (META_CONFIG.to_string(), info.config.clone()),
    ]);
    let bytes = serialize(tensors, storage, meta)
        .map_err(|message| CheckpointError::Tensors { path: path.to_path_buf(), message })?;
    crate::output::write_atomically(path, &bytes)
        .map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })
}

/// A safetensors file of `tensors` stored as `storage`, with metadata `meta`. The tensors are
/// written in key order, so the bytes depend on the values and the metadata's order alone (one entry:
/// none).
fn serialize(
    tensors: &HashMap<String, Tensor>,
    storage: Storage,
    meta: HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let mut data = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_dtype(DType::F32).and_then(|t| t.flatten_all()).and_then(|f| f.to_vec1::<f32>());
        let values = t.map_err(|e| format!("tensor `{name}`: {e}"))?;
        let bytes: Vec<u8> = match storage {
            Storage::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Storage::F16 => values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        };
        data.push((name.clone(), tensors[name].dims().to_vec(), bytes));
    }
    let dtype = match storage {
        Storage::F32 => safetensors::Dtype::F32,
        Storage::F16 => safetensors::Dtype::F16,
    };
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| format!("tensor `{name}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::tensor::serialize(views, &Some(meta)).map_err(|e| e.to_string())
}

/// Reads one official StyA2K file into bundle keys: `<namespace>.<official key>` -> tensor.
pub fn read_official(namespace: &str, path: &Path) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let tensors =
        pth::read_pth(path).map_err(|source| CheckpointError::Pth { path: path.to_path_buf(), source })?;
    let mut out = HashMap::new();
    for t in tensors {
        if namespace == "vgg" && VGG_NEVER_RUN.contains(&t.name.as_str()) {
            continue;
        }
        let tensor =
            Tensor::from_vec(t.data, t.shape, &Device::Cpu).map_err(|e| CheckpointError::Tensors {
                path: path.to_path_buf(),
                message: format!("tensor `{}`: {e}", t.name),
            })?;
        out.insert(format!("{namespace}.{}", t.name), tensor);
    }
    Ok(out)
}

/// Imports the four official files (`paths` in the order of [`OFFICIAL_FILES`]) into one bundle at
/// `out`, checking every key and shape against the network first.
pub fn import_official(paths: &[PathBuf; 4], out: &Path) -> Result<(), CheckpointError> {
    let mut tensors = HashMap::new();
    let mut sources = HashMap::new();
    for ((namespace, _), path) in OFFICIAL_FILES.iter().zip(paths) {
        tensors.extend(read_official(namespace, path)?);
        sources.insert(namespace.to_string(), path.clone());
    }
    let source_of = |name: &str| {
        let ns = name.split('.').next().unwrap_or_default();
        sources.get(ns).cloned().unwrap_or_else(|| PathBuf::from(ns))
    };
    build_strict(
        NetworkTensors::held(tensors.clone()),
        &Device::Cpu,
        DType::F32,
        source_of,
        "StyA2K",
        StyA2K::new,
    )?;
    let encoder = format!("official vgg_normalised ({})", paths[0].display());
    let training = serde_json::json!({
        "source": "official StyA2K checkpoints, imported",
        "files": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    })
    .to_string();
    let info = BundleInfo { model: STYA2K.into(), encoder, training, config: "{}".into() };
    write_bundle(out, &info, &tensors)
}

/// Builds a network (`network` names it in errors) from bundle tensors, strictly: every parameter
/// present with its shape and nothing else. Errors name the tensor, the file it came from
/// (`source_of`), and expected vs found shape.
fn build_strict<M>(
    tensors: NetworkTensors,
    device: &Device,
    dtype: DType,
    source_of: impl Fn(&str) -> PathBuf,
    network: &str,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<M>,
) -> Result<M, CheckpointError> {
    let mut names: Vec<String> = tensors.held.keys().cloned().collect();
    let backend = StrictBackend { tensors, used: Default::default() };
    let used = backend.used.clone();
    let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
    let model = build(vb).map_err(|e| {
        let message = e.to_string();
        let name = message.split('`').nth(1).unwrap_or_default().to_string();
        CheckpointError::Tensors { path: source_of(&name), message }
    })?;
    let used = used.lock().map(|u| u.clone()).unwrap_or_default();
    names.retain(|k| !used.contains(k));
    names.sort();
    match names.first() {
        None => Ok(model),
        Some(name) => Err(CheckpointError::Tensors {
            path: source_of(name),
            message: format!("unexpected tensor `{name}`: {network} has no such parameter"),
        }),
    }
}

/// A tensor map that reports missing tensors and wrong shapes by name and records what was read.
struct StrictBackend {
    tensors: NetworkTensors,
    used: Arc<Mutex<HashSet<String>>>,
}

impl StrictBackend {
    fn lookup(&self, name: &str) -> candle_core::Result<&Tensor> {
        let NetworkTensors { held, regenerated } = &self.tensors;
        held.get(name)
            .or_else(|| regenerated.get(name))
            .ok_or_else(|| candle_core::Error::Msg(format!("tensor `{name}` missing")))
    }
}

impl candle_nn::var_builder::SimpleBackend for StrictBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.lookup(name)?;
        if t.shape() != &shape {
            candle_core::bail!("tensor `{name}`: expected shape {:?}, found {:?}", shape.dims(), t.dims());
        }
        if let Ok(mut used) = self.used.lock() {
            used.insert(name.to_string());
        }
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.lookup(name)?.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.lookup(name).is_ok()
    }
}

/// Writes the inference part of bundle `input` to `output`: the training state and a regenerable random
/// encoder dropped, tensors stored as `storage`. The input must load as the network its metadata names
/// (checked before anything is written).
pub fn export(input: &Path, output: &Path, storage: Storage) -> Result<(), CheckpointError> {
    load(&WeightSource::Bundle(input.to_path_buf()), &Device::Cpu)?;
    let (info, mut tensors) = read_bundle(input)?;
    tensors.retain(|k, _| !k.starts_with(TRAINING_STATE));
    if matches!(info.encoder.parse::<Encoder>(), Ok(Encoder::Random(_)))
        || vgg16::is_recorded(&info.encoder, input)?
    {
        tensors.retain(|k, _| !k.starts_with("vgg."));
    }
    write_bundle_as(output, &info, &tensors, storage)
}
