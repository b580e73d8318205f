//! Reflection about the edge pixel, the padding of every StyA2K/NeAT convolution, as an index map
//! shared by the ops that pad in place (convolution, frame conversion, NeAT's prior).

/// Index of the source pixel that reflection padding copies into position `i` of a padded axis, for
/// an axis of `n` pixels (`i` may be negative or `>= n`).
///
/// PyTorch's `ReflectionPad2d` mirrors about the edge pixel without repeating it (`-1 -> 1`). It
/// refuses pads wider than `n - 1`; we continue the mirror periodically (period `2 (n - 1)`) so that
/// tiny frames can still be padded up to the model's block multiples.
pub(crate) fn reflect_index(i: isize, n: usize) -> u32 {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_index_matches_pytorch_within_one_period() {
        // ReflectionPad1d(2) on [a b c d]: [c b | a b c d | c b].
        let got: Vec<u32> = (-2..6).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(got, vec![2, 1, 0, 1, 2, 3, 2, 1]);
    }

    #[test]
    fn wide_pads_keep_mirroring() {
        let got: Vec<u32> = (3..10).map(|i| reflect_index(i, 3)).collect();
        assert_eq!(got, vec![1, 0, 1, 2, 1, 0, 1]);
        assert_eq!(reflect_index(-5, 1), 0);
    }
}
