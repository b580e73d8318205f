//! Which inputs of a batch one worker takes: `--shard K/N`, or the scheduler's array index.
//!
//! Assignment: input `key` goes to shard `FNV-1a-64(key) mod N`, where `key` is the input's path
//! relative to the folder it was listed from (its file name when given as a file), `/`-separated, as
//! UTF-8 bytes (the platform's bytes for a name that is not UTF-8). FNV-1a is written out here, not
//! taken from `std::hash`: Rust's default hasher is randomly seeded per process and its algorithm may
//! change between releases, and N workers, maybe built at different times, must agree. The key depends
//! neither on the order a folder lists its files nor on where the shared volume is mounted, so a
//! re-run, or a worker on another node, assigns every input to the same shard.
//!
//! `K` counts from 0 (`0/3`, `1/3`, `2/3`), like Kubernetes' `JOB_COMPLETION_INDEX` and Slurm's
//! `--array=0-2`.

/// A worker's share of a batch: shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// A shard specification that cannot be used; each message names the flag or variable at fault.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard `{0}`: expected K/N with 0 <= K < N, e.g. 0/4 (K counts from 0)")]
    Malformed(String),
    #[error("shard {index}/{count}: K counts from 0, so it must be below N={count}")]
    OutOfRange { index: u32, count: u32 },
    #[error("{name}=`{value}`: expected a whole number")]
    NotANumber { name: &'static str, value: String },
    #[error("{0}")]
    Scheduler(String),
}

/// FNV-1a, 64-bit: offset basis 0xcbf29ce484222325, prime 0x100000001b3 (Fowler, Noll, Vo).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Shard {
    /// The whole batch as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// The shard that takes the input with this key (see the module header).
    pub fn of_key(key: &str, count: u32) -> u32 {
        (fnv1a_64(key.as_bytes()) % u64::from(count)) as u32
    }

    pub fn takes(&self, key: &str) -> bool {
        Shard::of_key(key, self.count) == self.index
    }

    /// The shard to run: `--shard` if given, else the scheduler's variables (read through `env`), else
    /// the whole batch. `count` is `--shard-count` (else STYLESTREAM_SHARD_COUNT), needed with
    /// `JOB_COMPLETION_INDEX`, which carries no count, and optional with Slurm (see `slurm_shard`).
    pub fn resolve(
        flag: Option<Shard>,
        count: Option<u32>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Shard, ShardError> {
        if let Some(shard) = flag {
            return Ok(shard);
        }
        let count = match count {
            Some(n) => Some(n),
            None => number(env, "STYLESTREAM_SHARD_COUNT")?,
        };
        let slurm = env("SLURM_ARRAY_TASK_ID").is_some();
        let kubernetes = env("JOB_COMPLETION_INDEX").is_some();
        match (slurm, kubernetes) {
            (true, true) => Err(ShardError::Scheduler(
                "both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set: pass --shard K/N to choose".into(),
            )),
            (true, false) => slurm_shard(env, count),
            (false, true) => {
                let index = number(env, "JOB_COMPLETION_INDEX")?.expect("checked above");
                let count = count.ok_or_else(|| {
                    ShardError::Scheduler(format!(
                        "JOB_COMPLETION_INDEX={index} is set but not the number of shards: pass --shard-count N \
                         or set STYLESTREAM_SHARD_COUNT (the Job's .spec.completions)"
                    ))
                })?;
                Shard::new(index, count)
            }
            (false, false) => match count {
                Some(n) if n > 1 => Err(ShardError::Scheduler(format!(
                    "a shard count ({n}) is given but no index: pass --shard K/{n}, or run under a Slurm array \
                     or an Indexed Job"
                ))),
                _ => Ok(Shard::ALL),
            },
        }
    }
}

/// Slurm numbers array tasks MIN, MIN+STEP, .., MAX (`--array=1-7:2` gives 1, 3, 5, 7). Without a
/// given count the shard is the task's position in that sequence, of SLURM_ARRAY_TASK_COUNT; lists that
/// are not such a sequence (`--array=0,5,6`) have no position: refused. With a given count N the task
/// ID is the shard number itself, so a few shards can be re-submitted alone (`--array=3,7` with
/// STYLESTREAM_SHARD_COUNT=16), where Slurm's own count (2) would be wrong.
fn slurm_shard(env: &dyn Fn(&str) -> Option<String>, count_given: Option<u32>) -> Result<Shard, ShardError> {
    let id = number(env, "SLURM_ARRAY_TASK_ID")?.expect("checked by the caller");
    if let Some(count) = count_given {
        return Shard::new(id, count);
    }
    let count = number(env, "SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
        ShardError::Scheduler(format!(
            "SLURM_ARRAY_TASK_ID={id} is set but neither SLURM_ARRAY_TASK_COUNT nor a shard count \
             (--shard-count or STYLESTREAM_SHARD_COUNT)"
        ))
    })?;
    let min = number(env, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
    let step = number(env, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
    // In u64: no overflow whatever the variables say.
    let (id64, min64, step64, count64) = (u64::from(id), u64::from(min), u64::from(step), u64::from(count));
    let max = match number(env, "SLURM_ARRAY_TASK_MAX")? {
        Some(max) => u64::from(max),
        None => min64 + count64.saturating_sub(1) * step64,
    };
    let regular = id64 >= min64
        && (id64 - min64) % step64 == 0
        && max >= min64
        && (max - min64) / step64 + 1 == count64;
    if !regular {
        return Err(ShardError::Scheduler(format!(
            "Slurm array task {id} of {count} (min {min}, max {max}, step {step}) is not one of an evenly \
             spaced range: submit with --array=0-{} or give the shard count (STYLESTREAM_SHARD_COUNT) so \
             the task ID is the shard number",
            count.saturating_sub(1)
        )));
    }
    Shard::new((id - min) / step, count)
}

fn number(env: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<u32>, ShardError> {
    env(name)
        .map(|value| value.trim().parse().map_err(|_| ShardError::NotANumber { name, value }))
        .transpose()
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, ShardError> {
        let (k, n) = s.split_once('/').ok_or_else(|| ShardError::Malformed(s.into()))?;
        match (k.parse::<u32>(), n.parse::<u32>()) {
            (Ok(index), Ok(count)) if count > 0 => Shard::new(index, count),
            _ => Err(ShardError::Malformed(s.into())),
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    /// FNV-1a 64 of "a", by hand: (0xcbf29ce484222325 ^ 0x61) * 0x100000001b3 mod 2^64
    /// = 0xcbf29ce484222344 * 0x100000001b3 = 0xaf63dc4c8601ec8c (also the FNV authors' published
    /// test vector); the empty string hashes to the offset basis.
    #[test]
    fn fnv1a_matches_hand_computed_values() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        // "clip-07.mp4": computed independently with Python's arbitrary-precision integers:
        // h = 0xcbf29ce484222325; for b in b"clip-07.mp4": h = ((h ^ b) * 0x100000001b3) % 2**64
        // gives 0xe188351b85ae3dba, which is 5 mod 7.
        assert_eq!(fnv1a_64(b"clip-07.mp4"), 0xe188_351b_85ae_3dba);
        assert_eq!(Shard::of_key("clip-07.mp4", 7), 5);
    }

    #[test]
    fn shards_parse_0_based_and_refuse_k_at_or_above_n() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!("3/3".parse::<Shard>(), Err(ShardError::OutOfRange { index: 3, count: 3 }));
        for bad in ["", "1", "1/0", "-1/3", "a/3", "1/3/4", "1/ 3"] {
            assert!(matches!(bad.parse::<Shard>(), Err(ShardError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn every_key_lands_in_exactly_one_shard() {
        for n in [1, 3, 7] {
            for i in 0..200 {
                let key = format!("clip-{i:03}.mp4");
                let takers = (0..n).filter(|&k| Shard::new(k, n).unwrap().takes(&key)).count();
                assert_eq!(takers, 1, "{key} with N={n}");
            }
        }
    }

    #[test]
    fn flag_wins_and_no_scheduler_means_the_whole_batch() {
        let slurm = [("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_COUNT", "8")];
        let flag = Shard { index: 1, count: 2 };
        assert_eq!(Shard::resolve(Some(flag), None, &env_of(&slurm)), Ok(flag));
        assert_eq!(Shard::resolve(None, None, &env_of(&[])), Ok(Shard::ALL));
        assert!(Shard::resolve(None, Some(4), &env_of(&[])).is_err(), "a count without an index");
    }

    #[test]
    fn slurm_ids_are_positions_from_min_in_steps() {
        let zero = [("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_COUNT", "8")];
        assert_eq!(Shard::resolve(None, None, &env_of(&zero)), Ok(Shard { index: 4, count: 8 }));
        // --array=1-7:2: tasks 1, 3, 5, 7.
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "7"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ];
        assert_eq!(Shard::resolve(None, None, &env_of(&stepped)), Ok(Shard { index: 2, count: 4 }));
        // --array=1-8: task 8 is the last shard.
        let one_based = [
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
        ];
        assert_eq!(Shard::resolve(None, None, &env_of(&one_based)), Ok(Shard { index: 7, count: 8 }));
    }

    #[test]
    fn conflicting_or_malformed_scheduler_variables_are_refused() {
        let cases: [&[(&str, &str)]; 6] = [
            &[("SLURM_ARRAY_TASK_ID", "2")],
            &[("JOB_COMPLETION_INDEX", "2"), ("STYLESTREAM_SHARD_COUNT", "three")],
            &[("SLURM_ARRAY_TASK_ID", "x2"), ("SLURM_ARRAY_TASK_COUNT", "4")],
            // --array=0,5,6: three tasks, not evenly spaced.
            &[
                ("SLURM_ARRAY_TASK_ID", "5"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_MAX", "6"),
            ],
            &[("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("JOB_COMPLETION_INDEX", "1")],
            &[("JOB_COMPLETION_INDEX", "1")],
        ];
        for vars in cases {
            assert!(Shard::resolve(None, None, &env_of(vars)).is_err(), "{vars:?}");
        }
    }

    #[test]
    fn a_given_count_makes_the_slurm_task_id_the_shard_number() {
        // `sbatch --array=3,7` re-running two of 16 shards: Slurm counts 2 tasks.
        let rerun = [
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
            ("SLURM_ARRAY_TASK_MIN", "3"),
            ("SLURM_ARRAY_TASK_MAX", "7"),
        ];
        assert_eq!(Shard::resolve(None, Some(16), &env_of(&rerun)), Ok(Shard { index: 7, count: 16 }));
        let with_env = [("SLURM_ARRAY_TASK_ID", "7"), ("STYLESTREAM_SHARD_COUNT", "16")];
        assert_eq!(Shard::resolve(None, None, &env_of(&with_env)), Ok(Shard { index: 7, count: 16 }));
        let beyond = [("SLURM_ARRAY_TASK_ID", "16"), ("STYLESTREAM_SHARD_COUNT", "16")];
        assert_eq!(
            Shard::resolve(None, None, &env_of(&beyond)),
            Err(ShardError::OutOfRange { index: 16, count: 16 })
        );
    }

    #[test]
    fn indexed_jobs_take_the_count_from_the_flag_or_the_environment() {
        let k8s = [("JOB_COMPLETION_INDEX", "2")];
        assert_eq!(Shard::resolve(None, Some(3), &env_of(&k8s)), Ok(Shard { index: 2, count: 3 }));
        let with_env = [("JOB_COMPLETION_INDEX", "2"), ("STYLESTREAM_SHARD_COUNT", "5")];
        assert_eq!(Shard::resolve(None, None, &env_of(&with_env)), Ok(Shard { index: 2, count: 5 }));
        let beyond = [("JOB_COMPLETION_INDEX", "3")];
        assert_eq!(
            Shard::resolve(None, Some(3), &env_of(&beyond)),
            Err(ShardError::OutOfRange { index: 3, count: 3 })
        );
    }
}
