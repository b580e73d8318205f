//! CPU storage helpers shared by the ops' references: inputs widened to f32, results rounded once to
//! the storage type, and the relative L2 distance the `check-kernels` comparisons use.
use std::borrow::Cow;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result};

/// A contiguous input's values as f32: borrowed for f32, widened for f16/bf16. `op` names the caller
/// in errors.
pub(crate) fn f32_values<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<Cow<'a, [f32]>> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op} needs contiguous inputs")))?;
    Ok(match s {
        CpuStorage::F32(v) => Cow::Borrowed(&v[start..end]),
        CpuStorage::F16(v) => Cow::Owned(v[start..end].iter().map(|x| x.to_f32()).collect()),
        CpuStorage::BF16(v) => Cow::Owned(v[start..end].iter().map(|x| x.to_f32()).collect()),
        other => candle_core::bail!("{op} runs in f32, f16 or bf16, got {:?}", other.dtype()),
    })
}

/// f32 results in the storage type `dtype` (f32, f16 or bf16), rounded once.
pub(crate) fn storage_as(values: Vec<f32>, dtype: DType) -> CpuStorage {
    match dtype {
        DType::F16 => CpuStorage::F16(values.into_iter().map(half::f16::from_f32).collect()),
        DType::BF16 => CpuStorage::BF16(values.into_iter().map(half::bf16::from_f32).collect()),
        _ => CpuStorage::F32(values),
    }
}

/// `||got - want|| / ||want||`, accumulated in f64 (0 when both are zero).
#[cfg_attr(not(feature = "check-kernels"), allow(dead_code))]
pub(crate) fn relative_l2(got: &[f32], want: &[f32]) -> f64 {
    let (mut diff, mut norm) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        diff += (f64::from(*g) - f64::from(*w)).powi(2);
        norm += f64::from(*w).powi(2);
    }
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_and_rounding_round_trip_and_relative_l2_is_hand_computed() -> Result<()> {
        let halves = CpuStorage::F16([0.5f32, -2.0, 3.25].map(half::f16::from_f32).to_vec());
        let values = f32_values(&halves, &Layout::contiguous(3), "test")?;
        assert_eq!(&*values, &[0.5, -2.0, 3.25]);
        let CpuStorage::BF16(back) = storage_as(values.into_owned(), DType::BF16) else { panic!("bf16") };
        assert_eq!(back.iter().map(|x| x.to_f32()).collect::<Vec<_>>(), vec![0.5, -2.0, 3.25]);
        // ||(3, 4) - (0, 0)||... against want (6, 8): |(-3, -4)| / |(6, 8)| = 5 / 10.
        assert_eq!(relative_l2(&[3.0, 4.0], &[6.0, 8.0]), 0.5);
        Ok(())
    }
}
