//! Safe reader for PyTorch checkpoints written by `torch.save(state_dict, path)`.
//!
//! Two container formats exist:
//! - zip (PyTorch >= 1.6): `<prefix>/data.pkl` holds the pickled state dict (protocol 2),
//!   `<prefix>/data/<key>` holds each storage as raw little-endian elements, and
//!   `<prefix>/byteorder` (when present) says `little`.
//! - legacy (PyTorch < 1.6, or `_use_new_zipfile_serialization=False`): five things back to
//!   back: a pickled magic number, a pickled protocol version (1001), a pickled `sys_info`
//!   dict, the pickled state dict, a pickled list of storage keys, then for each key in that
//!   order a little-endian `u64` element count followed by the storage's raw elements.
//!
//! In both, tensors reach their storages through pickle persistent ids, tuples
//! `('storage', torch.<Type>Storage, key, location, numel[, view_metadata])`.
//!
//! The pickles are decoded by a data parser, not a pickle virtual machine: it knows the
//! handful of opcodes that `torch.save` (and numpy's ndarray pickling, for
//! [`super::numpy_pickle`]) emits, resolves globals against a fixed whitelist per [`Dialect`],
//! and interprets the whitelisted callables as data. Nothing in the file is ever executed, and
//! every size read from the file is checked against the bytes actually present before anything
//! is allocated for it.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

/// One tensor read from a .pth state dict (or one array of a numpy pickle), converted to f32,
/// contiguous row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct PthTensor {
    /// The state-dict key, e.g. `conv1.weight`.
    pub name: String,
    /// Sizes, outermost first; empty for a 0-dimensional tensor.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values in row-major order.
    pub data: Vec<f32>,
}

/// Why a checkpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PthError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "not a PyTorch checkpoint: expected a zip archive (PK\\x03\\x04) or a legacy pickle \
         (\\x80), found bytes {found:02x?}"
    )]
    UnknownFormat { found: Vec<u8> },
    #[error("zip archive: {}", describe_zip_error(.0))]
    Zip(#[from] ZipError),
    #[error("pickle byte {offset}: expected {expected}, found the end of the data")]
    Truncated { offset: usize, expected: &'static str },
    #[error(
        "pickle byte {offset}: opcode 0x{opcode:02x} is not supported \
         (expected one that {writer})"
    )]
    UnsupportedOpcode { offset: usize, opcode: u8, writer: &'static str },
    #[error("pickle byte {offset}: global {module}.{name} is not allowed (expected {allowed})")]
    ForbiddenGlobal { offset: usize, module: String, name: String, allowed: &'static str },
    #[error("pickle byte {offset}: {what} exceeds the limit of {limit}")]
    LimitExceeded { offset: usize, what: &'static str, limit: usize },
    #[error("pickle byte {offset}: expected {expected}, found {found}")]
    Unexpected { offset: usize, expected: String, found: String },
    #[error("checkpoint layout: expected {expected}, found {found}")]
    Layout { expected: String, found: String },
    #[error("state dict entry {key:?}: expected a tensor, found {found}")]
    NotATensor { key: String, found: String },
    #[error(
        "tensor {name:?}: dtype {dtype} is not supported \
         (expected float32, float64, float16 or bfloat16)"
    )]
    UnsupportedDtype { name: String, dtype: &'static str },
    #[error("tensor {name:?}: {problem}")]
    BadTensor { name: String, problem: String },
    #[error("storage {key:?}: expected {expected}, found {found}")]
    BadStorage { key: String, expected: String, found: String },
}

/// The zip crate's own message for an I/O error omits the cause (a CRC mismatch, a short read).
fn describe_zip_error(err: &ZipError) -> String {
    match err {
        ZipError::Io(cause) => format!("i/o error: {cause}"),
        other => other.to_string(),
    }
}

/// Most values the pickle stack, the memo or one list/dict may hold: a state dict needs a
/// few per tensor, and the cap keeps a hostile file from growing them without bound.
const MAX_ITEMS: usize = 1_000_000;
/// Deepest MARK nesting, and deepest nesting of containers inside containers. Dropping a
/// value recurses once per level, so the cap also protects the native stack.
const MAX_DEPTH: usize = 1000;
/// Deflate cannot expand data by more than this factor, so a deflated zip entry declaring a
/// larger size than `compressed * MAX_DEFLATE_RATIO` is lying.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// First pickled value of a legacy checkpoint (torch/serialization.py `MAGIC_NUMBER`).
const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
/// Second pickled value of a legacy checkpoint (`PROTOCOL_VERSION`).
const LEGACY_PROTOCOL_VERSION: i128 = 1001;
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Reads every tensor of a PyTorch state-dict checkpoint (zip or legacy format), in file (state-dict) order.
pub fn read_pth(path: &Path) -> Result<Vec<PthTensor>, PthError> {
    let bytes = std::fs::read(path).map_err(|source| PthError::Io { path: path.to_owned(), source })?;
    read_pth_bytes(&bytes)
}

/// Same from bytes (for tests and fuzzing).
pub fn read_pth_bytes(bytes: &[u8]) -> Result<Vec<PthTensor>, PthError> {
    if bytes.starts_with(ZIP_MAGIC) {
        read_zip(bytes)
    } else if bytes.first() == Some(&op::PROTO) {
        read_legacy(bytes)
    } else {
        Err(PthError::UnknownFormat { found: bytes.iter().take(8).copied().collect() })
    }
}

/// A state-dict entry: its key and the tensor view it names.
type Entry = (Rc<str>, Rc<TensorRef>);

/// Storage bytes by key: owned when unpacked from a zip entry, borrowed from the file in the
/// legacy format.
type Storages<'a> = HashMap<Rc<str>, Cow<'a, [u8]>>;

fn read_zip(bytes: &[u8]) -> Result<Vec<PthTensor>, PthError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes))?;
    let prefix = archive_prefix(&archive)?;
    check_byteorder(&mut archive, &prefix, bytes.len())?;
    let pickle = read_entry(&mut archive, &format!("{prefix}/data.pkl"), bytes.len())?;
    let (top, _) = load_pickle(&pickle, 0, Dialect::Torch)?;
    let entries = state_dict_entries(&top)?;
    let mut storages = Storages::new();
    for storage in &unique_storages(&entries)? {
        let name = format!("{prefix}/data/{}", storage.key);
        let data = read_entry(&mut archive, &name, bytes.len())?;
        check_storage_len(storage, data.len())?;
        storages.insert(storage.key.clone(), Cow::Owned(data));
    }
    convert(&entries, &storages)
}

/// The archive's single top-level folder, the one holding `data.pkl` (torch names it after
/// the file, or `archive`).
fn archive_prefix(archive: &ZipArchive<Cursor<&[u8]>>) -> Result<String, PthError> {
    let mut pickles = archive
        .file_names()
        .filter_map(|name| name.strip_suffix("/data.pkl"))
        .filter(|prefix| !prefix.contains('/'));
    match (pickles.next(), pickles.next()) {
        (Some(prefix), None) => Ok(prefix.to_owned()),
        (first, _) => Err(PthError::Layout {
            expected: "exactly one <prefix>/data.pkl entry in the zip archive".into(),
            found: if first.is_some() { "several" } else { "none" }.into(),
        }),
    }
}

/// Storages are raw native-endian bytes; torch records the writer's byte order in
/// `byteorder` (absent in files from before it did, which were all little-endian).
fn check_byteorder(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    prefix: &str,
    archive_len: usize,
) -> Result<(), PthError> {
    let name = format!("{prefix}/byteorder");
    if archive.index_for_name(&name).is_none() {
        return Ok(());
    }
    let order = read_entry(archive, &name, archive_len)?;
    if order != b"little" {
        return Err(PthError::Layout {
            expected: "byteorder \"little\"".into(),
            found: format!("{:?}", String::from_utf8_lossy(&order)),
        });
    }
    Ok(())
}

/// Reads a whole zip entry, refusing a declared size the archive cannot back: a stored
/// entry is no larger than its compressed size, a deflated one no larger than its compressed
/// size times deflate's maximal ratio, and the compressed size fits in the archive.
fn read_entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    archive_len: usize,
) -> Result<Vec<u8>, PthError> {
    let entry = archive.by_name(name).map_err(|err| match err {
        ZipError::FileNotFound => {
            PthError::Layout { expected: format!("zip entry {name}"), found: "no such entry".into() }
        }
        other => PthError::Zip(other),
    })?;
    let compressed = entry.compressed_size();
    let ratio = match entry.compression() {
        CompressionMethod::Stored => 1,
        _ => MAX_DEFLATE_RATIO,
    };
    let size = entry.size();
    if compressed > archive_len as u64 || size > compressed.saturating_mul(ratio) {
        return Err(PthError::Layout {
            expected: format!("zip entry {name} backed by the archive's {archive_len} bytes"),
            found: format!("{size} bytes declared, {compressed} compressed"),
        });
    }
    let size = usize::try_from(size).map_err(|_| PthError::Layout {
        expected: format!("zip entry {name} addressable in memory"),
        found: format!("{size} bytes"),
    })?;
    let mut data = Vec::with_capacity(size);
    // One byte past the declared size makes the reader reach the entry's end, where the zip
    // crate verifies the CRC, and exposes entries longer than declared.
    entry.take(size as u64 + 1).read_to_end(&mut data).map_err(ZipError::from)?;
    if data.len() != size {
        return Err(PthError::Layout {
            expected: format!("{size} bytes in zip entry {name}"),
            found: format!("{} bytes", data.len()),
        });
    }
    Ok(data)
}

fn read_legacy(bytes: &[u8]) -> Result<Vec<PthTensor>, PthError> {
    let (magic, pos) = load_pickle(bytes, 0, Dialect::Torch)?;
    expect_int(&magic, LEGACY_MAGIC, "the legacy magic number")?;
    let (version, pos) = load_pickle(bytes, pos, Dialect::Torch)?;
    expect_int(&version, LEGACY_PROTOCOL_VERSION, "legacy protocol version")?;
    let (sys_info, pos) = load_pickle(bytes, pos, Dialect::Torch)?;
    check_little_endian(&sys_info)?;
    let (top, pos) = load_pickle(bytes, pos, Dialect::Torch)?;
    let (keys, pos) = load_pickle(bytes, pos, Dialect::Torch)?;
    let entries = state_dict_entries(&top)?;
    let storages = legacy_storages(bytes, pos, &keys, &unique_storages(&entries)?)?;
    convert(&entries, &storages)
}

fn expect_int(value: &Value, expected: i128, what: &str) -> Result<(), PthError> {
    match value {
        Value::Int(found) if *found == expected => Ok(()),
        Value::Int(found) => {
            Err(PthError::Layout { expected: format!("{what} {expected:#x}"), found: format!("{found:#x}") })
        }
        other => Err(PthError::Layout {
            expected: format!("{what} {expected:#x}"),
            found: other.type_name().into(),
        }),
    }
}

/// Legacy storages are raw native-endian bytes; `sys_info` records the writer's byte order.
fn check_little_endian(sys_info: &Value) -> Result<(), PthError> {
    let Value::Dict(dict) = sys_info else {
        return Err(PthError::Layout {
            expected: "a sys_info dict".into(),
            found: sys_info.type_name().into(),
        });
    };
    let little = dict.items.iter().find_map(|(key, value)| match (key, value) {
        (Value::Str(key), Value::Bool(little)) if &**key == "little_endian" => Some(*little),
        _ => None,
    });
    match little {
        Some(false) => Err(PthError::Layout {
            expected: "a little-endian checkpoint".into(),
            found: "sys_info little_endian = False".into(),
        }),
        _ => Ok(()),
    }
}

/// Slices the storages that follow the pickles of a legacy file: for each key of the key
/// list, a little-endian u64 element count, then that many elements of the storage's dtype.
fn legacy_storages<'a>(
    bytes: &'a [u8],
    mut pos: usize,
    keys: &Value,
    referenced: &[Rc<StorageRef>],
) -> Result<Storages<'a>, PthError> {
    let Value::List(keys) = keys else {
        return Err(PthError::Layout {
            expected: "a list of storage keys after the state dict".into(),
            found: keys.type_name().into(),
        });
    };
    let by_key: HashMap<&str, &StorageRef> =
        referenced.iter().map(|storage| (&*storage.key, &**storage)).collect();
    let mut storages = Storages::new();
    for key in &keys.items {
        let Value::Str(key) = key else {
            return Err(PthError::Layout {
                expected: "str storage keys".into(),
                found: key.type_name().into(),
            });
        };
        let storage = by_key.get(&**key).ok_or_else(|| PthError::BadStorage {
            key: key.to_string(),
            expected: "a storage that some tensor refers to".into(),
            found: "a storage no tensor refers to".into(),
        })?;
        let (data, next) = legacy_storage(bytes, pos, storage)?;
        storages.insert(key.clone(), Cow::Borrowed(data));
        pos = next;
    }
    if let Some(missing) = referenced.iter().find(|storage| !storages.contains_key(&storage.key)) {
        return Err(PthError::BadStorage {
            key: missing.key.to_string(),
            expected: "its data after the storage key list".into(),
            found: "no entry in the key list".into(),
        });
    }
    Ok(storages)
}

/// One legacy storage record at `pos`: its bytes and the position after it.
fn legacy_storage<'a>(
    bytes: &'a [u8],
    pos: usize,
    storage: &StorageRef,
) -> Result<(&'a [u8], usize), PthError> {
    let truncated = |what: &str, at: usize| PthError::BadStorage {
        key: storage.key.to_string(),
        expected: what.to_owned(),
        found: format!("{} bytes left at byte {at}", bytes.len().saturating_sub(at)),
    };
    let header =
        bytes.get(pos..pos.saturating_add(8)).ok_or_else(|| truncated("an 8-byte element count", pos))?;
    let mut count = [0; 8];
    count.copy_from_slice(header);
    let count = u64::from_le_bytes(count);
    if count != storage.numel as u64 {
        return Err(PthError::BadStorage {
            key: storage.key.to_string(),
            expected: format!("{} elements, as its persistent id says", storage.numel),
            found: format!("{count} elements in its record header"),
        });
    }
    let start = pos + 8;
    let len = storage.byte_len()?;
    let data = start
        .checked_add(len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| truncated(&format!("{len} bytes of data"), start))?;
    Ok((data, start + len))
}

/// The state dict's (key, tensor) pairs in order, after checking that it is a dict of
/// distinct str keys to tensors of a supported dtype.
fn state_dict_entries(top: &Value) -> Result<Vec<Entry>, PthError> {
    let Value::Dict(dict) = top else {
        return Err(PthError::Layout {
            expected: "a state dict (a dict of str -> tensor) as the pickled object".into(),
            found: top.type_name().into(),
        });
    };
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(dict.items.len());
    for (key, value) in &dict.items {
        let Value::Str(name) = key else {
            return Err(PthError::Layout {
                expected: "str state-dict keys".into(),
                found: key.type_name().into(),
            });
        };
        let Value::Tensor(tensor) = value else {
            return Err(PthError::NotATensor { key: name.to_string(), found: value.type_name().into() });
        };
        if !seen.insert(name.clone()) {
            return Err(PthError::Layout {
                expected: "distinct state-dict keys".into(),
                found: format!("{name:?} twice"),
            });
        }
        let dtype = tensor.storage.dtype;
        if dtype.decoder().is_none() {
            return Err(PthError::UnsupportedDtype { name: name.to_string(), dtype: dtype.name() });
        }
        entries.push((name.clone(), tensor.clone()));
    }
    Ok(entries)
}

/// Each storage the tensors use, once, in order of first use (so that errors are
/// deterministic); tensors sharing a storage must agree on its dtype and size.
fn unique_storages(entries: &[Entry]) -> Result<Vec<Rc<StorageRef>>, PthError> {
    let mut storages = Vec::new();
    let mut by_key: HashMap<Rc<str>, Rc<StorageRef>> = HashMap::new();
    for (_, tensor) in entries {
        let storage = &tensor.storage;
        let known = by_key.entry(storage.key.clone()).or_insert_with(|| {
            storages.push(storage.clone());
            storage.clone()
        });
        if (known.dtype, known.numel) != (storage.dtype, storage.numel) {
            return Err(PthError::BadStorage {
                key: storage.key.to_string(),
                expected: format!("{} elements of {}", known.numel, known.dtype.name()),
                found: format!("{} elements of {}", storage.numel, storage.dtype.name()),
            });
        }
    }
    Ok(storages)
}

fn check_storage_len(storage: &StorageRef, found: usize) -> Result<(), PthError> {
    let expected = storage.byte_len()?;
    if found != expected {
        return Err(PthError::BadStorage {
            key: storage.key.to_string(),
            expected: format!("{expected} bytes ({} elements of {})", storage.numel, storage.dtype.name()),
            found: format!("{found} bytes"),
        });
    }
    Ok(())
}

fn convert(entries: &[Entry], storages: &Storages<'_>) -> Result<Vec<PthTensor>, PthError> {
    entries
        .iter()
        .map(|(name, tensor)| {
            let storage = storages.get(&tensor.storage.key).ok_or_else(|| PthError::BadStorage {
                key: tensor.storage.key.to_string(),
                expected: "its data in the checkpoint".into(),
                found: "none".into(),
            })?;
            Ok(PthTensor {
                name: name.to_string(),
                shape: tensor.shape.clone(),
                data: gather(name, tensor, storage)?,
            })
        })
        .collect()
}

/// Copies a strided view out of its storage into row-major f32s, after checking that every
/// element it addresses lies inside the storage. `storage` holds whole elements of the
/// tensor's dtype (checked against the persistent id's element count when it was read).
fn gather(name: &str, tensor: &TensorRef, storage: &[u8]) -> Result<Vec<f32>, PthError> {
    let bad = |problem: String| PthError::BadTensor { name: name.to_owned(), problem };
    let dtype = tensor.storage.dtype;
    let decode = dtype
        .decoder()
        .ok_or_else(|| PthError::UnsupportedDtype { name: name.to_owned(), dtype: dtype.name() })?;
    let size = dtype.size();
    let stored = storage.len() / size;
    let numel = tensor
        .shape
        .iter()
        .try_fold(1usize, |acc, &dim| acc.checked_mul(dim))
        .ok_or_else(|| bad(format!("shape {:?} overflows", tensor.shape)))?;
    if numel == 0 {
        return Ok(Vec::new());
    }
    let last = last_index(tensor).ok_or_else(|| bad("view extent overflows the address space".into()))?;
    // Stride-0 (broadcast) views could address far more values than are stored; refusing
    // them bounds the output by the file's own size.
    if last >= stored || numel > stored {
        return Err(bad(format!(
            "expected a view inside its storage of {stored} elements, found offset {}, \
             shape {:?}, strides {:?} ({numel} elements, last at index {last})",
            tensor.offset, tensor.shape, tensor.stride
        )));
    }
    let element = |index: usize| decode(&storage[index * size..(index + 1) * size]);
    if is_contiguous(&tensor.shape, &tensor.stride) {
        return Ok((tensor.offset..tensor.offset + numel).map(element).collect());
    }
    let mut data = Vec::with_capacity(numel);
    for_each_index(tensor, numel, |index| data.push(element(index)));
    Ok(data)
}

/// Storage index of the view's last element, `offset + sum((size - 1) * stride)`, or None
/// on overflow. Only meaningful for a non-empty view.
fn last_index(tensor: &TensorRef) -> Option<usize> {
    tensor
        .shape
        .iter()
        .zip(&tensor.stride)
        .try_fold(tensor.offset, |acc, (&dim, &stride)| acc.checked_add((dim - 1).checked_mul(stride)?))
}

/// Whether the strides are the row-major ones for the shape (size-1 dims may have any stride).
fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&dim, &step) in shape.iter().zip(stride).rev() {
        if dim != 1 && step != expected {
            return false;
        }
        expected = expected.saturating_mul(dim);
    }
    true
}

/// Calls `visit` with the storage index of each of the view's `numel` elements in row-major
/// order (an odometer over the shape). The caller has checked that all indices are in range.
fn for_each_index(tensor: &TensorRef, numel: usize, mut visit: impl FnMut(usize)) {
    let dims = tensor.shape.len();
    let mut counter = vec![0usize; dims];
    let mut index = tensor.offset;
    for _ in 0..numel {
        visit(index);
        for dim in (0..dims).rev() {
            counter[dim] += 1;
            if counter[dim] < tensor.shape[dim] {
                index += tensor.stride[dim];
                break;
            }
            index -= tensor.stride[dim] * (tensor.shape[dim] - 1);
            counter[dim] = 0;
        }
    }
}

/// Element types of torch storages. Only the float ones convert; the others are known so
/// that their storages can be sized and the error can name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    /// The dtype of a `torch.<name>` storage class.
    fn from_storage_class(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "DoubleStorage" => Self::F64,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// The dtype of a numpy type code without its byte order (`f4`, `i8`, ...).
    fn from_numpy_code(code: &str) -> Option<Self> {
        Some(match code {
            "f2" => Self::F16,
            "f4" => Self::F32,
            "f8" => Self::F64,
            "i8" => Self::I64,
            "i4" => Self::I32,
            "i2" => Self::I16,
            "i1" => Self::I8,
            "u1" => Self::U8,
            "b1" => Self::Bool,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F64 => "float64",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
            Self::I64 => "int64",
            Self::I32 => "int32",
            Self::I16 => "int16",
            Self::I8 => "int8",
            Self::U8 => "uint8",
            Self::Bool => "bool",
        }
    }

    /// Bytes per element.
    pub(super) fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// Converts one little-endian element of exactly `size()` bytes; None for non-float dtypes.
    pub(super) fn decoder(self) -> Option<fn(&[u8]) -> f32> {
        match self {
            Self::F32 => Some(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Self::F64 => {
                Some(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            }
            Self::F16 => Some(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            Self::BF16 => Some(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            _ => None,
        }
    }
}

/// IEEE half (1 sign, 5 exponent, 10 mantissa bits) to f32; exact, as f32 holds every half.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match exponent {
        // Zero and subnormals: mantissa * 2^-24, exact in f32.
        0 => (mantissa as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        // Infinities and NaNs keep their payload.
        0x1f => 0x7f80_0000 | (mantissa << 13),
        // Rebias the exponent from 15 to 127.
        _ => ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// bfloat16 is the top half of an f32.
fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Pickle opcodes this parser knows (CPython Lib/pickle.py names).
mod op {
    pub const PROTO: u8 = 0x80;
    pub const FRAME: u8 = 0x95;
    pub const STOP: u8 = b'.';
    pub const MARK: u8 = b'(';
    pub const EMPTY_DICT: u8 = b'}';
    pub const EMPTY_LIST: u8 = b']';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const TUPLE: u8 = b't';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const BINUNICODE: u8 = b'X';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const BINBYTES: u8 = b'B';
    pub const BINBYTES8: u8 = 0x8e;
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const LONG1: u8 = 0x8a;
    pub const BINFLOAT: u8 = b'G';
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const NONE: u8 = b'N';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const MEMOIZE: u8 = 0x94;
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const GLOBAL: u8 = b'c';
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const REDUCE: u8 = b'R';
    pub const BINPERSID: u8 = b'Q';
    pub const BUILD: u8 = b'b';
}

/// A decoded pickle value. Containers are reference-counted so that memo references are
/// cheap, and carry their nesting depth so that it can be bounded without walking them.
#[derive(Clone)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i128),
    /// Floats never matter to a state dict's tensors, so only their presence is kept.
    Float,
    Str(Rc<str>),
    Global(Global),
    Tuple(Rc<Seq>),
    List(Rc<Seq>),
    /// dict and OrderedDict alike, in insertion order.
    Dict(Rc<Dict>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// A bytes object, as where it lies in the input (never copied).
    Bytes(Range<usize>),
    /// A numpy dtype. BUILD sets its byte order in place, as numpy's `__setstate__` does, so the
    /// memo's reference (which later arrays share) sees it: hence the cell.
    NumpyDtype(Rc<Cell<NumpyDtype>>),
    /// A numpy ndarray: stateless from `_reconstruct` until BUILD gives it its state, in place
    /// likewise.
    NumpyArray(Rc<RefCell<Option<NumpyArray>>>),
}

/// A numpy dtype: element type and byte order (`<`, `>`, `|` not applicable, `=` native: the
/// order of a dtype that BUILD has not set yet).
#[derive(Clone, Copy)]
pub(super) struct NumpyDtype {
    pub(super) dtype: DType,
    pub(super) order: u8,
}

/// An ndarray's state: `shape` elements of `dtype`, stored in C (row-major) or Fortran order in
/// `data`, a range of the pickle's bytes.
pub(super) struct NumpyArray {
    pub(super) shape: Vec<usize>,
    pub(super) dtype: Rc<Cell<NumpyDtype>>,
    pub(super) fortran: bool,
    pub(super) data: Range<usize>,
}

/// A tuple's or list's items; `depth` is 1 + the deepest item's (1 when empty, scalars count 0).
#[derive(Default)]
pub(super) struct Seq {
    pub(super) items: Vec<Value>,
    depth: usize,
}

/// A dict's (key, value) pairs in insertion order; `depth` as for [`Seq`].
#[derive(Default)]
pub(super) struct Dict {
    pub(super) items: Vec<(Value, Value)>,
    depth: usize,
}

/// The only globals a pickle may name (each [`Dialect`] allows some of them).
#[derive(Clone, Copy)]
pub(super) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    StorageType(DType),
    /// `numpy.core.multiarray._reconstruct` (`numpy._core` since numpy 2): an empty ndarray.
    NumpyReconstruct,
    NumpyNdarray,
    NumpyDtype,
}

/// Who wrote a pickle, which decides the globals it may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `torch.save` of a state dict.
    Torch,
    /// `pickle.dump` of (nested) dicts of numpy arrays.
    Numpy,
}

impl Dialect {
    /// The whitelist: anything else is refused by name.
    fn resolve(self, module: &str, name: &str) -> Option<Global> {
        match (self, module, name) {
            (Self::Torch, "collections", "OrderedDict") => Some(Global::OrderedDict),
            (Self::Torch, "torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
            (Self::Torch, "torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
            (Self::Torch, "torch", class) => DType::from_storage_class(class).map(Global::StorageType),
            (Self::Numpy, "numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
                Some(Global::NumpyReconstruct)
            }
            (Self::Numpy, "numpy", "ndarray") => Some(Global::NumpyNdarray),
            (Self::Numpy, "numpy", "dtype") => Some(Global::NumpyDtype),
            _ => None,
        }
    }

    /// The globals [`Self::resolve`] allows, for error messages.
    fn allowed(self) -> &'static str {
        match self {
            Self::Torch => "collections.OrderedDict, a torch._utils tensor rebuilder or a torch storage type",
            Self::Numpy => "numpy's _reconstruct, ndarray or dtype",
        }
    }

    /// Who writes this dialect, for error messages.
    fn writer(self) -> &'static str {
        match self {
            Self::Torch => "torch.save emits for a state dict",
            Self::Numpy => "pickle emits for dicts of numpy arrays",
        }
    }
}

/// A persistent id: `numel` elements of `dtype` stored under `key`.
pub(super) struct StorageRef {
    key: Rc<str>,
    dtype: DType,
    numel: usize,
}

impl StorageRef {
    fn byte_len(&self) -> Result<usize, PthError> {
        self.numel.checked_mul(self.dtype.size()).ok_or_else(|| PthError::BadStorage {
            key: self.key.to_string(),
            expected: "a size that fits in memory".into(),
            found: format!("{} elements of {}", self.numel, self.dtype.name()),
        })
    }
}

/// What `_rebuild_tensor_v2` describes: a strided view into a storage, in elements.
pub(super) struct TensorRef {
    storage: Rc<StorageRef>,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

impl Value {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Bool(_) => "a bool",
            Self::Int(_) => "an int",
            Self::Float => "a float",
            Self::Str(_) => "a str",
            Self::Global(Global::OrderedDict) => "the class collections.OrderedDict",
            Self::Global(Global::RebuildTensorV2) => "the function _rebuild_tensor_v2",
            Self::Global(Global::RebuildParameter) => "the function _rebuild_parameter",
            Self::Global(Global::StorageType(_)) => "a torch storage class",
            Self::Global(Global::NumpyReconstruct) => "the function numpy _reconstruct",
            Self::Global(Global::NumpyNdarray) => "the class numpy.ndarray",
            Self::Global(Global::NumpyDtype) => "the class numpy.dtype",
            Self::Tuple(_) => "a tuple",
            Self::List(_) => "a list",
            Self::Dict(_) => "a dict",
            Self::Storage(_) => "a storage",
            Self::Tensor(_) => "a tensor",
            Self::Bytes(_) => "bytes",
            Self::NumpyDtype(_) => "a numpy dtype",
            Self::NumpyArray(_) => "a numpy array",
        }
    }

    fn depth(&self) -> usize {
        match self {
            Self::Tuple(seq) | Self::List(seq) => seq.depth,
            Self::Dict(dict) => dict.depth,
            _ => 0,
        }
    }
}

/// Decodes the pickle of `dialect` starting at `start` in `input`; returns its value and the
/// position just past its STOP opcode.
pub(super) fn load_pickle(input: &[u8], start: usize, dialect: Dialect) -> Result<(Value, usize), PthError> {
    let mut unpickler = Unpickler {
        input,
        dialect,
        pos: start,
        op_start: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let value = unpickler.run()?;
    Ok((value, unpickler.pos))
}

struct Unpickler<'a> {
    input: &'a [u8],
    dialect: Dialect,
    pos: usize,
    /// Offset of the opcode being executed, for error messages.
    op_start: usize,
    stack: Vec<Value>,
    /// Stack lengths at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl<'a> Unpickler<'a> {
    fn run(&mut self) -> Result<Value, PthError> {
        loop {
            self.op_start = self.pos;
            let opcode = self.byte("an opcode")?;
            if opcode == op::STOP {
                return self.finish();
            }
            self.step(opcode)?;
        }
    }

    fn step(&mut self, opcode: u8) -> Result<(), PthError> {
        match opcode {
            op::PROTO => self.proto(),
            op::FRAME => self.frame(),
            op::MARK => self.mark(),
            op::EMPTY_DICT => self.push(Value::Dict(Rc::default())),
            op::EMPTY_LIST => self.push(Value::List(Rc::default())),
            op::EMPTY_TUPLE => self.push(Value::Tuple(Rc::default())),
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push_tuple(items)
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let items = self.pop_n(usize::from(opcode - op::TUPLE1) + 1)?;
                self.push_tuple(items)
            }
            op::APPEND => {
                let item = self.pop()?;
                self.append(vec![item])
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                self.append(items)
            }
            op::SETITEM => {
                let pair = self.pop_n(2)?;
                self.set_items(pair)
            }
            op::SETITEMS => {
                let pairs = self.pop_mark()?;
                self.set_items(pairs)
            }
            op::SHORT_BINUNICODE => {
                let len = self.byte("a string length")?;
                self.string(usize::from(len))
            }
            op::BINUNICODE => {
                let len = u32::from_le_bytes(self.array("a string length")?);
                self.string(len as usize)
            }
            op::BINUNICODE8 => {
                let len = u64::from_le_bytes(self.array("a string length")?);
                // A length beyond usize cannot fit in the input either.
                self.string(usize::try_from(len).unwrap_or(usize::MAX))
            }
            op::BININT => {
                let int = i32::from_le_bytes(self.array("an int")?);
                self.push_int(int)
            }
            op::BININT1 => {
                let int = self.byte("an int")?;
                self.push_int(int)
            }
            op::BININT2 => {
                let int = u16::from_le_bytes(self.array("an int")?);
                self.push_int(int)
            }
            op::SHORT_BINBYTES => {
                let len = self.byte("a bytes length")?;
                self.bytes(usize::from(len))
            }
            op::BINBYTES => {
                let len = u32::from_le_bytes(self.array("a bytes length")?);
                self.bytes(len as usize)
            }
            op::BINBYTES8 => {
                let len = u64::from_le_bytes(self.array("a bytes length")?);
                self.bytes(usize::try_from(len).unwrap_or(usize::MAX))
            }
            op::LONG1 => self.long1(),
            op::BINFLOAT => {
                self.take(8, "a float")?;
                self.push(Value::Float)
            }
            op::NEWTRUE => self.push(Value::Bool(true)),
            op::NEWFALSE => self.push(Value::Bool(false)),
            op::NONE => self.push(Value::None),
            op::BINPUT => {
                let index = self.byte("a memo index")?;
                self.memoize(u32::from(index))
            }
            op::LONG_BINPUT => {
                let index = u32::from_le_bytes(self.array("a memo index")?);
                self.memoize(index)
            }
            op::MEMOIZE => {
                // The memo is capped far below u32::MAX, so its length always fits.
                let index = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                self.memoize(index)
            }
            op::BINGET => {
                let index = self.byte("a memo index")?;
                self.memo_get(u32::from(index))
            }
            op::LONG_BINGET => {
                let index = u32::from_le_bytes(self.array("a memo index")?);
                self.memo_get(index)
            }
            op::GLOBAL => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (&module, &name) {
                    (Value::Str(module), Value::Str(name)) => self.global(module, name),
                    (Value::Str(_), other) | (other, _) => {
                        Err(self.unexpected("two str operands for STACK_GLOBAL", other.type_name()))
                    }
                }
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let value = self.reduce(&callable, &args)?;
                self.push(value)
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let storage = self.persistent_load(&pid)?;
                self.push(Value::Storage(Rc::new(storage)))
            }
            op::BUILD => self.build(),
            _ => Err(PthError::UnsupportedOpcode {
                offset: self.op_start,
                opcode,
                writer: self.dialect.writer(),
            }),
        }
    }

    fn finish(&mut self) -> Result<Value, PthError> {
        if !self.marks.is_empty() || self.stack.len() != 1 {
            return Err(self.unexpected_text(
                "exactly one value and no open MARK at STOP",
                format!("{} values, {} open MARKs", self.stack.len(), self.marks.len()),
            ));
        }
        self.pop()
    }

    fn proto(&mut self) -> Result<(), PthError> {
        let version = self.byte("a protocol version")?;
        if version > 5 {
            return Err(self.unexpected_text("pickle protocol at most 5", format!("{version}")));
        }
        Ok(())
    }

    /// Frames only group opcodes for buffered reading; the content is parsed as if unframed.
    fn frame(&mut self) -> Result<(), PthError> {
        let len = u64::from_le_bytes(self.array("a frame length")?);
        if len > (self.input.len() - self.pos) as u64 {
            return Err(PthError::Truncated { offset: self.pos, expected: "the frame's declared length" });
        }
        Ok(())
    }

    fn mark(&mut self) -> Result<(), PthError> {
        if self.marks.len() >= MAX_DEPTH {
            return Err(self.limit("MARK nesting", MAX_DEPTH));
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    fn push(&mut self, value: Value) -> Result<(), PthError> {
        if self.stack.len() >= MAX_ITEMS {
            return Err(self.limit("stack size", MAX_ITEMS));
        }
        self.stack.push(value);
        Ok(())
    }

    fn push_int(&mut self, value: impl Into<i128>) -> Result<(), PthError> {
        self.push(Value::Int(value.into()))
    }

    /// Pops one value.
    fn pop(&mut self) -> Result<Value, PthError> {
        self.check_reachable(1)?;
        self.stack.pop().ok_or_else(|| self.unexpected_text("a value on the stack", "none".into()))
    }

    /// Pops the top `count` values, oldest first.
    fn pop_n(&mut self, count: usize) -> Result<Vec<Value>, PthError> {
        self.check_reachable(count)?;
        Ok(self.stack.split_off(self.stack.len() - count))
    }

    /// Values below the innermost MARK belong to an enclosing construct and are out of reach.
    fn check_reachable(&self, count: usize) -> Result<(), PthError> {
        let reachable = self.stack.len() - self.marks.last().copied().unwrap_or(0);
        if reachable < count {
            let found = match self.marks.len() {
                0 => format!("{reachable} value(s)"),
                _ => format!("{reachable} value(s) above the innermost MARK"),
            };
            return Err(self.unexpected_text(&format!("{count} value(s) on the stack"), found));
        }
        Ok(())
    }

    /// Pops everything above the innermost MARK, and the MARK.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PthError> {
        let mark = self.marks.pop().ok_or_else(|| self.unexpected_text("an open MARK", "none".into()))?;
        // pop() and pop_n() never go below a MARK, so the stack still reaches it.
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn push_tuple(&mut self, items: Vec<Value>) -> Result<(), PthError> {
        let depth = self.nested_depth(0, items.iter())?;
        self.push(Value::Tuple(Rc::new(Seq { items, depth })))
    }

    /// Depth of a container holding `items` whose own depth so far is `depth`.
    fn nested_depth<'v>(
        &self,
        depth: usize,
        items: impl Iterator<Item = &'v Value>,
    ) -> Result<usize, PthError> {
        let depth = items.map(|item| item.depth() + 1).fold(depth.max(1), usize::max);
        if depth > MAX_DEPTH {
            return Err(self.limit("value nesting", MAX_DEPTH));
        }
        Ok(depth)
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), PthError> {
        let offset = self.op_start;
        let Some(Value::List(list)) = self.stack.last() else {
            let found = self.stack.last().map_or("nothing", Value::type_name);
            return Err(self.unexpected("a list to append to", found));
        };
        let depth = self.nested_depth(list.depth, items.iter())?;
        if list.items.len() + items.len() > MAX_ITEMS {
            return Err(self.limit("list length", MAX_ITEMS));
        }
        if let Some(Value::List(list)) = self.stack.last_mut() {
            let list = unshare(list, |seq| seq.items.is_empty(), offset)?;
            list.items.extend(items);
            list.depth = depth;
        }
        Ok(())
    }

    fn set_items(&mut self, flat: Vec<Value>) -> Result<(), PthError> {
        let offset = self.op_start;
        if flat.len() % 2 != 0 {
            return Err(self.unexpected_text("key/value pairs", format!("{} values", flat.len())));
        }
        let Some(Value::Dict(dict)) = self.stack.last() else {
            let found = self.stack.last().map_or("nothing", Value::type_name);
            return Err(self.unexpected("a dict to set items in", found));
        };
        let depth = self.nested_depth(dict.depth, flat.iter())?;
        if dict.items.len() + flat.len() / 2 > MAX_ITEMS {
            return Err(self.limit("dict length", MAX_ITEMS));
        }
        if let Some(Value::Dict(dict)) = self.stack.last_mut() {
            let dict = unshare(dict, |dict| dict.items.is_empty(), offset)?;
            let mut flat = flat.into_iter();
            while let (Some(key), Some(value)) = (flat.next(), flat.next()) {
                dict.items.push((key, value));
            }
            dict.depth = depth;
        }
        Ok(())
    }

    fn string(&mut self, len: usize) -> Result<(), PthError> {
        let bytes = self.take(len, "string bytes")?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| self.unexpected_text("a UTF-8 string", format!("{len} other bytes")))?;
        self.push(Value::Str(text.into()))
    }

    /// A bytes object of `len` bytes, kept as its place in the input.
    fn bytes(&mut self, len: usize) -> Result<(), PthError> {
        let start = self.pos;
        self.take(len, "bytes")?;
        self.push(Value::Bytes(start..self.pos))
    }

    /// LONG1: a little-endian two's-complement integer of up to 255 bytes; torch only needs
    /// the legacy magic number's 10.
    fn long1(&mut self) -> Result<(), PthError> {
        let len = usize::from(self.byte("an integer length")?);
        let bytes = self.take(len, "integer bytes")?;
        if len > 16 {
            return Err(self.unexpected_text("an integer of at most 16 bytes", format!("{len} bytes")));
        }
        let negative = bytes.last().is_some_and(|byte| byte & 0x80 != 0);
        let mut buffer = [if negative { 0xff } else { 0 }; 16];
        buffer[..len].copy_from_slice(bytes);
        self.push(Value::Int(i128::from_le_bytes(buffer)))
    }

    fn memoize(&mut self, index: u32) -> Result<(), PthError> {
        let value = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| self.unexpected_text("a value to memoize", "none".into()))?;
        if self.memo.len() >= MAX_ITEMS && !self.memo.contains_key(&index) {
            return Err(self.limit("memo size", MAX_ITEMS));
        }
        self.memo.insert(index, value);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), PthError> {
        let value = self
            .memo
            .get(&index)
            .cloned()
            .ok_or_else(|| self.unexpected_text(&format!("memo entry {index}"), "none".into()))?;
        self.push(value)
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PthError> {
        let global = self.dialect.resolve(module, name).ok_or_else(|| PthError::ForbiddenGlobal {
            offset: self.op_start,
            module: module.to_owned(),
            name: name.to_owned(),
            allowed: self.dialect.allowed(),
        })?;
        self.push(Value::Global(global))
    }

    /// Applies a whitelisted callable to its arguments, as data.
    fn reduce(&self, callable: &Value, args: &Value) -> Result<Value, PthError> {
        let Value::Tuple(args) = args else {
            return Err(self.unexpected("an argument tuple", args.type_name()));
        };
        match callable {
            Value::Global(Global::OrderedDict) if args.items.is_empty() => Ok(Value::Dict(Rc::default())),
            Value::Global(Global::RebuildTensorV2) => self.rebuild_tensor(&args.items),
            Value::Global(Global::RebuildParameter) => match args.items.first() {
                Some(tensor @ Value::Tensor(_)) => Ok(tensor.clone()),
                other => Err(self.unexpected(
                    "a tensor as _rebuild_parameter's first argument",
                    other.map_or("nothing", Value::type_name),
                )),
            },
            Value::Global(Global::NumpyReconstruct) => self.reconstruct(&args.items),
            Value::Global(Global::NumpyDtype) => self.numpy_dtype(&args.items),
            other => Err(self.unexpected_text(
                "a call of a whitelisted function or class",
                format!("a call of {} with {} argument(s)", other.type_name(), args.items.len()),
            )),
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])`: only the first four describe the data.
    fn rebuild_tensor(&self, args: &[Value]) -> Result<Value, PthError> {
        let [storage, offset, size, stride, _requires_grad, _hooks, ..] = args else {
            return Err(
                self.unexpected_text("at least 6 arguments to _rebuild_tensor_v2", format!("{}", args.len()))
            );
        };
        let Value::Storage(storage) = storage else {
            return Err(self.unexpected("a storage as the tensor's first argument", storage.type_name()));
        };
        let shape = self.int_tuple(size, "a tensor size")?;
        let stride = self.int_tuple(stride, "a tensor stride")?;
        if shape.len() != stride.len() {
            return Err(self.unexpected_text(
                "as many strides as dimensions",
                format!("{} dimensions and {} strides", shape.len(), stride.len()),
            ));
        }
        Ok(Value::Tensor(Rc::new(TensorRef {
            storage: storage.clone(),
            offset: self.int_usize(offset, "a storage offset")?,
            shape,
            stride,
        })))
    }

    /// `('storage', torch.<Type>Storage, key, location, numel[, view_metadata])`. The
    /// location is irrelevant on a CPU-only reader; view metadata only ever came from
    /// PyTorch < 0.4 storage views, which are refused.
    fn persistent_load(&self, pid: &Value) -> Result<StorageRef, PthError> {
        let Value::Tuple(pid) = pid else {
            return Err(self.unexpected("a persistent id tuple", pid.type_name()));
        };
        let (tag, class, key, numel, view) = match &pid.items[..] {
            [tag, class, key, _location, numel] => (tag, class, key, numel, None),
            [tag, class, key, _location, numel, view] => (tag, class, key, numel, Some(view)),
            items => {
                return Err(
                    self.unexpected_text("a persistent id of 5 or 6 items", format!("{} items", items.len()))
                );
            }
        };
        match tag {
            Value::Str(tag) if &**tag == "storage" => {}
            _ => return Err(self.unexpected("the persistent id tag 'storage'", tag.type_name())),
        }
        let Value::Global(Global::StorageType(dtype)) = class else {
            return Err(self.unexpected("a torch storage class", class.type_name()));
        };
        let Value::Str(key) = key else {
            return Err(self.unexpected("a str storage key", key.type_name()));
        };
        if let Some(view) = view.filter(|view| !matches!(view, Value::None)) {
            return Err(self.unexpected("no storage view metadata (None)", view.type_name()));
        }
        Ok(StorageRef {
            key: key.clone(),
            dtype: *dtype,
            numel: self.int_usize(numel, "a storage element count")?,
        })
    }

    /// `numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`: numpy pickles an array as this
    /// empty ndarray, then BUILDs it with its state. Subclasses are not whitelisted.
    fn reconstruct(&self, args: &[Value]) -> Result<Value, PthError> {
        match args {
            [Value::Global(Global::NumpyNdarray), Value::Tuple(_), Value::Bytes(_)] => {
                Ok(Value::NumpyArray(Rc::default()))
            }
            _ => Err(self.unexpected_text(
                "_reconstruct(numpy.ndarray, shape, bytes)",
                format!("{} argument(s)", args.len()),
            )),
        }
    }

    /// `numpy.dtype(code, align, copy)`, e.g. `dtype('f4', False, True)`; BUILD sets the byte order.
    fn numpy_dtype(&self, args: &[Value]) -> Result<Value, PthError> {
        let [Value::Str(code), Value::Bool(_), Value::Bool(_)] = args else {
            return Err(
                self.unexpected_text("dtype(type code, bool, bool)", format!("{} argument(s)", args.len()))
            );
        };
        let dtype = DType::from_numpy_code(code).ok_or_else(|| {
            self.unexpected_text("a numpy type code f2, f4, f8, i1..i8, u1 or b1", format!("{code:?}"))
        })?;
        Ok(Value::NumpyDtype(Rc::new(Cell::new(NumpyDtype { dtype, order: b'=' }))))
    }

    /// BUILD sets an object's state. Torch only applies it to the state dict's OrderedDict (its
    /// `_metadata` attribute), which carries no tensor data, so that state is dropped; numpy
    /// applies it to dtypes and arrays.
    fn build(&mut self) -> Result<(), PthError> {
        let state = self.pop()?;
        match self.stack.last() {
            Some(Value::Dict(_)) => Ok(()),
            Some(Value::NumpyDtype(dtype)) => {
                let order = self.dtype_order(&state)?;
                dtype.set(NumpyDtype { order, ..dtype.get() });
                Ok(())
            }
            Some(Value::NumpyArray(array)) => {
                let built = self.array_state(&state)?;
                *array.borrow_mut() = Some(built);
                Ok(())
            }
            other => Err(self.unexpected(
                "a dict, numpy dtype or numpy array to BUILD",
                other.map_or("nothing", Value::type_name),
            )),
        }
    }

    /// A dtype's state `(version, order, subarray, names, fields, elsize, alignment, flags[,
    /// metadata])`: only plain (non-structured, non-subarray) dtypes are data here.
    fn dtype_order(&self, state: &Value) -> Result<u8, PthError> {
        let expected = "a plain dtype's state (version, byte order, None, None, None, ...)";
        let Value::Tuple(state) = state else {
            return Err(self.unexpected(expected, state.type_name()));
        };
        match &state.items[..] {
            [Value::Int(_), Value::Str(order), Value::None, Value::None, Value::None, ..]
                if matches!(order.as_bytes(), [b'<' | b'>' | b'|' | b'=']) =>
            {
                Ok(order.as_bytes()[0])
            }
            _ => Err(self.unexpected_text(expected, format!("a tuple of {} items", state.items.len()))),
        }
    }

    /// An ndarray's state `(1, shape, dtype, is_fortran, data)`, `data` raw bytes.
    fn array_state(&self, state: &Value) -> Result<NumpyArray, PthError> {
        let expected = "an ndarray's state (1, shape, dtype, is_fortran, bytes)";
        let Value::Tuple(state) = state else {
            return Err(self.unexpected(expected, state.type_name()));
        };
        let [Value::Int(1), shape, Value::NumpyDtype(dtype), Value::Bool(fortran), Value::Bytes(data)] =
            &state.items[..]
        else {
            return Err(self.unexpected_text(expected, format!("a tuple of {} items", state.items.len())));
        };
        Ok(NumpyArray {
            shape: self.int_tuple(shape, "an array shape")?,
            dtype: dtype.clone(),
            fortran: *fortran,
            data: data.clone(),
        })
    }

    fn int_usize(&self, value: &Value, what: &str) -> Result<usize, PthError> {
        match value {
            Value::Int(int) => usize::try_from(*int)
                .map_err(|_| self.unexpected_text(&format!("{what}, non-negative"), int.to_string())),
            other => Err(self.unexpected(what, other.type_name())),
        }
    }

    fn int_tuple(&self, value: &Value, what: &str) -> Result<Vec<usize>, PthError> {
        let Value::Tuple(items) = value else {
            return Err(self.unexpected(&format!("a tuple for {what}"), value.type_name()));
        };
        items.items.iter().map(|item| self.int_usize(item, what)).collect()
    }

    fn take(&mut self, len: usize, expected: &'static str) -> Result<&'a [u8], PthError> {
        let bytes = self
            .pos
            .checked_add(len)
            .and_then(|end| self.input.get(self.pos..end))
            .ok_or(PthError::Truncated { offset: self.pos, expected })?;
        self.pos += len;
        Ok(bytes)
    }

    fn byte(&mut self, expected: &'static str) -> Result<u8, PthError> {
        Ok(self.array::<1>(expected)?[0])
    }

    fn array<const N: usize>(&mut self, expected: &'static str) -> Result<[u8; N], PthError> {
        let offset = self.pos;
        self.take(N, expected)?.try_into().map_err(|_| PthError::Truncated { offset, expected })
    }

    /// A newline-terminated UTF-8 line, as GLOBAL's module and name are written.
    fn line(&mut self) -> Result<&'a str, PthError> {
        let rest = &self.input[self.pos..];
        let len = rest
            .iter()
            .position(|&byte| byte == b'\n')
            .ok_or(PthError::Truncated { offset: self.pos, expected: "a newline-terminated global name" })?;
        let line = std::str::from_utf8(&rest[..len])
            .map_err(|_| self.unexpected_text("a UTF-8 global name", format!("{len} other bytes")))?;
        self.pos += len + 1;
        Ok(line)
    }

    fn unexpected(&self, expected: &str, found: &str) -> PthError {
        self.unexpected_text(expected, found.to_owned())
    }

    fn unexpected_text(&self, expected: &str, found: String) -> PthError {
        PthError::Unexpected { offset: self.op_start, expected: expected.to_owned(), found }
    }

    fn limit(&self, what: &'static str, limit: usize) -> PthError {
        PthError::LimitExceeded { offset: self.op_start, what, limit }
    }
}

/// Mutable access to a list or dict being filled. The pickler memoizes a container right
/// after creating it empty and fills it afterwards, so the memo's snapshot stays empty and
/// only an empty container can be shared here; it is replaced by a fresh one. A shared
/// filled container, which CPython's pickler never produces, is refused rather than
/// copied, since repeated copies would take quadratic time.
fn unshare<T: Default>(
    shared: &mut Rc<T>,
    is_empty: impl Fn(&T) -> bool,
    offset: usize,
) -> Result<&mut T, PthError> {
    if Rc::get_mut(shared).is_none() {
        if !is_empty(shared) {
            return Err(PthError::Unexpected {
                offset,
                expected: "a list or dict filled once, where it was created".into(),
                found: "a second fill of an already filled, re-referenced container".into(),
            });
        }
        *shared = Rc::default();
    }
    Rc::get_mut(shared).ok_or(PthError::Unexpected {
        offset,
        expected: "an unshared container".into(),
        found: "a shared one".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pth").join(name)
    }

    fn fixture_bytes(name: &str) -> Vec<u8> {
        std::fs::read(fixture(name)).expect("fixture present")
    }

    /// `weight[i][j] = (4 i + j) / 2 - 1`, as tests/fixtures/pth/make_fixtures.py writes it.
    fn weight(i: usize, j: usize) -> f32 {
        (4 * i + j) as f32 * 0.5 - 1.0
    }

    fn tensor(name: &str, shape: &[usize], data: Vec<f32>) -> PthTensor {
        PthTensor { name: name.into(), shape: shape.to_vec(), data }
    }

    /// The state dict of make_fixtures.py, in its order, from the script's formulas.
    fn expected_state_dict() -> Vec<PthTensor> {
        let bias = vec![0.25, -0.75, 2.0];
        vec![
            tensor("weight", &[3, 4], (0..3).flat_map(|i| (0..4).map(move |j| weight(i, j))).collect()),
            tensor("bias", &[3], bias.clone()),
            tensor("weight_t", &[4, 3], (0..4).flat_map(|j| (0..3).map(move |i| weight(i, j))).collect()),
            tensor("weight_row1", &[4], (0..4).map(|j| weight(1, j)).collect()),
            tensor(
                "weight_cols",
                &[3, 2],
                (0..3).flat_map(|i| (0..2).map(move |k| weight(i, 1 + 2 * k))).collect(),
            ),
            tensor("half", &[2, 3], (0..6).map(|k| k as f32 * 0.25 - 0.5).collect()),
            tensor("double", &[5], (0..5).map(|k| k as f32 / 8.0).collect()),
            tensor("bf16", &[4], (0..4).map(|k| k as f32 - 2.0).collect()),
            tensor("scalar1", &[1], vec![3.25]),
            tensor("scalar0", &[], vec![-1.5]),
            tensor("empty", &[0, 3], vec![]),
            tensor("param", &[2], vec![1.5, -2.5]),
            tensor("bias_tied", &[3], bias),
        ]
    }

    #[test]
    fn reads_zip_fixture_written_by_torch() {
        assert_eq!(read_pth(&fixture("state_dict_zip.pth")).unwrap(), expected_state_dict());
    }

    #[test]
    fn reads_legacy_fixture_written_by_torch() {
        assert_eq!(read_pth(&fixture("state_dict_legacy.pth")).unwrap(), expected_state_dict());
    }

    #[test]
    fn reads_deflated_zip() {
        let bytes = fixture_bytes("state_dict_zip.pth");
        let mut archive = ZipArchive::new(Cursor::new(&bytes[..])).unwrap();
        let mut entries = Vec::new();
        for index in 0..archive.len() {
            let mut entry = archive.by_index(index).unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            entries.push((entry.name().to_owned(), data));
        }
        let deflated = zip_file(&entries, CompressionMethod::Deflated);
        assert_eq!(read_pth_bytes(&deflated).unwrap(), expected_state_dict());
    }

    #[test]
    fn non_float_dtype_names_tensor_and_dtype() {
        let err = read_pth(&fixture("int64_zip.pth")).unwrap_err();
        assert!(
            matches!(&err, PthError::UnsupportedDtype { name, dtype: "int64" } if name == "num_batches_tracked"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = read_pth(&fixture("no_such_file.pth")).unwrap_err();
        assert!(matches!(err, PthError::Io { .. }), "{err}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        for name in ["state_dict_zip.pth", "state_dict_legacy.pth"] {
            let bytes = fixture_bytes(name);
            for len in 0..bytes.len() {
                assert!(read_pth_bytes(&bytes[..len]).is_err(), "{name} cut at {len} bytes was accepted");
            }
        }
    }

    #[test]
    fn flipped_bytes_never_panic() {
        for name in ["state_dict_zip.pth", "state_dict_legacy.pth"] {
            let bytes = fixture_bytes(name);
            for pos in 0..bytes.len() {
                for mask in [0x01, 0x80, 0xff] {
                    let mut corrupt = bytes.clone();
                    corrupt[pos] ^= mask;
                    // Any result but a panic is fine: some bytes (e.g. storage data) carry no structure.
                    let _ = read_pth_bytes(&corrupt);
                }
            }
        }
    }

    #[test]
    fn garbage_is_an_error() {
        // A fixed linear congruential generator keeps the test deterministic.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        };
        for len in (0..64).chain([1000, 5000]) {
            let garbage: Vec<u8> = (0..len).map(|_| next()).collect();
            for prefix in [&b""[..], b"\x80", b"\x80\x02", ZIP_MAGIC] {
                let bytes = [prefix, &garbage].concat();
                assert!(read_pth_bytes(&bytes).is_err(), "{bytes:02x?} was accepted");
            }
        }
        assert!(matches!(read_pth_bytes(b"hello"), Err(PthError::UnknownFormat { .. })));
    }

    #[test]
    fn f16_and_bf16_convert_exactly() {
        let f16_cases: [(u16, f32); 9] = [
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x7bff, 65504.0),
            (0x0400, 2f32.powi(-14)),
            (0x0001, 2f32.powi(-24)),
            (0x03ff, 1023.0 * 2f32.powi(-24)),
            (0x8000, -0.0),
            (0x7c00, f32::INFINITY),
            (0xfc00, f32::NEG_INFINITY),
        ];
        for (bits, expected) in f16_cases {
            assert_eq!(f16_to_f32(bits).to_bits(), expected.to_bits(), "f16 {bits:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
    }

    // Hand-built pickles, following what torch.save writes (protocol 2).

    fn unicode(text: &str) -> Vec<u8> {
        [&[op::BINUNICODE][..], &(text.len() as u32).to_le_bytes(), text.as_bytes()].concat()
    }

    fn long(value: i64) -> Vec<u8> {
        [&[op::LONG1, 8][..], &value.to_le_bytes()].concat()
    }

    fn int_tuple(values: &[i64]) -> Vec<u8> {
        let mut out = vec![op::MARK];
        values.iter().for_each(|&value| out.extend(long(value)));
        out.push(op::TUPLE);
        out
    }

    /// A tensor of `class` elements over storage key "0" and its persistent id.
    struct View<'a> {
        class: &'a str,
        numel: i64,
        offset: i64,
        shape: &'a [i64],
        stride: &'a [i64],
    }

    const FLOATS4: View<'static> =
        View { class: "FloatStorage", numel: 4, offset: 0, shape: &[4], stride: &[1] };

    /// `OrderedDict(w=<tensor>)` as torch pickles a state dict.
    fn state_dict_pickle(view: &View) -> Vec<u8> {
        let mut out = vec![op::PROTO, 2];
        out.extend(b"ccollections\nOrderedDict\n)R");
        out.extend(unicode("w"));
        out.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        out.extend(unicode("storage"));
        out.extend(format!("ctorch\n{}\n", view.class).as_bytes());
        out.extend(unicode("0"));
        out.extend(unicode("cpu"));
        out.extend(long(view.numel));
        out.extend(b"tQ");
        out.extend(long(view.offset));
        out.extend(int_tuple(view.shape));
        out.extend(int_tuple(view.stride));
        out.push(op::NEWFALSE);
        out.extend(b"ccollections\nOrderedDict\n)R");
        out.extend(b"tRs.");
        out
    }

    /// Magic number, protocol version and a little-endian sys_info, as legacy files start.
    fn legacy_prelude() -> Vec<u8> {
        let mut out = vec![op::PROTO, 2, op::LONG1, 10];
        out.extend(&LEGACY_MAGIC.to_le_bytes()[..10]);
        out.extend([op::STOP, op::PROTO, 2, op::BININT2, 0xe9, 0x03, op::STOP, op::PROTO, 2, op::EMPTY_DICT]);
        out.extend(unicode("little_endian"));
        out.extend([op::NEWTRUE, op::SETITEM, op::STOP]);
        out
    }

    /// A legacy file: prelude, `main` pickle, key list ["0"], then storage "0" as `numel` + `data`.
    fn legacy_file(main: &[u8], numel: u64, data: &[u8]) -> Vec<u8> {
        let keys =
            [&[op::PROTO, 2, op::EMPTY_LIST, op::MARK][..], &unicode("0"), &[op::APPENDS, op::STOP]].concat();
        [&legacy_prelude()[..], main, &keys, &numel.to_le_bytes(), data].concat()
    }

    fn floats(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|value| value.to_le_bytes()).collect()
    }

    fn zip_file(entries: &[(String, Vec<u8>)], method: CompressionMethod) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, data) in entries {
            writer.start_file(name.as_str(), options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    fn zip_checkpoint(pickle: &[u8], storage: &[u8]) -> Vec<u8> {
        let entries = [
            ("archive/data.pkl".to_owned(), pickle.to_vec()),
            ("archive/byteorder".to_owned(), b"little".to_vec()),
            ("archive/data/0".to_owned(), storage.to_vec()),
        ];
        zip_file(&entries, CompressionMethod::Stored)
    }

    #[test]
    fn hand_built_checkpoints_read() {
        let data = floats(&[1.0, 2.0, 3.0, 4.0]);
        let legacy = legacy_file(&state_dict_pickle(&FLOATS4), 4, &data);
        assert_eq!(read_pth_bytes(&legacy).unwrap(), [tensor("w", &[4], vec![1.0, 2.0, 3.0, 4.0])]);
        let view = View { offset: 1, shape: &[2, 1], stride: &[2, 7], ..FLOATS4 };
        let zip = zip_checkpoint(&state_dict_pickle(&view), &data);
        assert_eq!(read_pth_bytes(&zip).unwrap(), [tensor("w", &[2, 1], vec![2.0, 4.0])]);
    }

    fn assert_forbidden(bytes: &[u8], module: &str, name: &str) {
        let err = read_pth_bytes(bytes).unwrap_err();
        assert!(
            matches!(&err, PthError::ForbiddenGlobal { module: m, name: n, .. } if m == module && n == name),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("{module}.{name}")), "{err}");
    }

    #[test]
    fn globals_outside_the_whitelist_are_refused_by_name() {
        for (module, name) in [("os", "system"), ("builtins", "eval"), ("posix", "system"), ("torch", "load")]
        {
            let call = [format!("c{module}\n{name}\n").as_bytes(), &unicode("id"), b"\x85R."].concat();
            let pickle = [&[op::PROTO, 2][..], &call].concat();
            assert_forbidden(&[legacy_prelude(), pickle.clone()].concat(), module, name);
            assert_forbidden(&zip_checkpoint(&pickle, &[]), module, name);
        }
        let stack_global = [&[op::PROTO, 4][..], b"\x8c\x08builtins\x8c\x04eval\x93."].concat();
        assert_forbidden(&[legacy_prelude(), stack_global].concat(), "builtins", "eval");
    }

    #[test]
    fn reduce_refuses_non_callables_and_odd_arguments() {
        for body in [&b"ctorch\nFloatStorage\n)R."[..], b"ccollections\nOrderedDict\nK\x01\x85R.", b"N)R."] {
            let pickle = [&[op::PROTO, 2][..], body].concat();
            let err = read_pth_bytes(&zip_checkpoint(&pickle, &[])).unwrap_err();
            assert!(matches!(err, PthError::Unexpected { .. }), "{err}");
        }
    }

    #[test]
    fn huge_sizes_are_refused_without_allocating() {
        let data = floats(&[1.0; 4]);
        let huge = View { numel: 1 << 60, ..FLOATS4 };
        // Legacy: the record header agrees with the persistent id, the bytes are not there.
        let err = read_pth_bytes(&legacy_file(&state_dict_pickle(&huge), 1 << 60, &data)).unwrap_err();
        assert!(matches!(err, PthError::BadStorage { .. }), "{err}");
        // numel * element size overflows usize.
        let overflowing = View { numel: 1 << 62, ..FLOATS4 };
        let err = read_pth_bytes(&legacy_file(&state_dict_pickle(&overflowing), 1 << 62, &data)).unwrap_err();
        assert!(matches!(err, PthError::BadStorage { .. }), "{err}");
        // Zip: the entry holds 16 bytes, not 2^62.
        let err = read_pth_bytes(&zip_checkpoint(&state_dict_pickle(&huge), &data)).unwrap_err();
        assert!(matches!(err, PthError::BadStorage { .. }), "{err}");
        // Views addressing past their storage, or expanding it.
        let views = [
            View { shape: &[1 << 40], ..FLOATS4 },
            View { offset: 1, ..FLOATS4 },
            View { shape: &[2, 2], stride: &[3, 1], ..FLOATS4 },
            View { shape: &[1 << 40], stride: &[0], ..FLOATS4 },
            View { shape: &[1 << 32, 1 << 32], stride: &[0, 0], ..FLOATS4 },
            View { offset: i64::MAX, ..FLOATS4 },
        ];
        for view in views {
            let err = read_pth_bytes(&zip_checkpoint(&state_dict_pickle(&view), &data)).unwrap_err();
            assert!(matches!(err, PthError::BadTensor { .. }), "{err}");
        }
        // Negative sizes, strides and offsets are not sizes.
        for view in [
            View { stride: &[-1], ..FLOATS4 },
            View { shape: &[-4], ..FLOATS4 },
            View { offset: -1, ..FLOATS4 },
        ] {
            let err = read_pth_bytes(&zip_checkpoint(&state_dict_pickle(&view), &data)).unwrap_err();
            assert!(matches!(err, PthError::Unexpected { .. }), "{err}");
        }
        // A string claiming more bytes than the input has.
        let long_string = [&[op::PROTO, 2, op::BINUNICODE8][..], &u64::MAX.to_le_bytes()].concat();
        let err = read_pth_bytes(&zip_checkpoint(&long_string, &[])).unwrap_err();
        assert!(matches!(err, PthError::Truncated { .. }), "{err}");
    }

    fn assert_limit(body: &[u8], what: &str) {
        let pickle = [&[op::PROTO, 2][..], body].concat();
        let err = read_pth_bytes(&zip_checkpoint(&pickle, &[])).unwrap_err();
        assert!(matches!(&err, PthError::LimitExceeded { what: w, .. } if *w == what), "{err}");
    }

    #[test]
    fn nesting_and_sizes_are_bounded() {
        assert_limit(&vec![op::MARK; 2000], "MARK nesting");
        let deep_tuple = [&[op::EMPTY_TUPLE][..], &vec![op::TUPLE1; 1500]].concat();
        assert_limit(&deep_tuple, "value nesting");
        let deep_list: Vec<u8> = [op::EMPTY_LIST; 1500].into_iter().chain([op::APPEND; 1499]).collect();
        assert_limit(&deep_list, "value nesting");
        let memo = [&[op::NONE][..], &vec![op::MEMOIZE; MAX_ITEMS + 1]].concat();
        assert_limit(&memo, "memo size");
        assert_limit(&vec![op::NONE; MAX_ITEMS + 1], "stack size");
    }

    #[test]
    fn malformed_structures_are_refused() {
        let not_a_tensor =
            [&[op::PROTO, 2, op::EMPTY_DICT][..], &unicode("w"), &[op::BININT1, 1, op::SETITEM, op::STOP]]
                .concat();
        let err = read_pth_bytes(&zip_checkpoint(&not_a_tensor, &[])).unwrap_err();
        assert!(matches!(&err, PthError::NotATensor { key, .. } if key == "w"), "{err}");
        let list = [op::PROTO, 2, op::EMPTY_LIST, op::STOP];
        assert!(matches!(read_pth_bytes(&zip_checkpoint(&list, &[])), Err(PthError::Layout { .. })));
        // Popping below a MARK, an unknown opcode, a dangling memo reference.
        for body in [&b"NN(R."[..], b"(R.", b"\xff.", b"h\x05.", b"N."] {
            let pickle = [&[op::PROTO, 2][..], body].concat();
            assert!(read_pth_bytes(&zip_checkpoint(&pickle, &[])).is_err(), "{body:02x?} was accepted");
        }
        let big_endian = legacy_prelude().into_iter().rev().skip(3).collect::<Vec<_>>();
        let mut big_endian: Vec<u8> = big_endian.into_iter().rev().collect();
        big_endian.extend([op::NEWFALSE, op::SETITEM, op::STOP]);
        let file = [&big_endian[..], &state_dict_pickle(&FLOATS4)].concat();
        assert!(matches!(read_pth_bytes(&file), Err(PthError::Layout { .. })));
        let mut wrong_magic = legacy_file(&state_dict_pickle(&FLOATS4), 4, &floats(&[0.0; 4]));
        wrong_magic[4] ^= 1;
        assert!(matches!(read_pth_bytes(&wrong_magic), Err(PthError::Layout { .. })));
    }
}
