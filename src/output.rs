//! Output files are never half-written: they are written under a temporary sibling name and renamed
//! into place once complete.
use std::path::{Path, PathBuf};

/// `<path>.<pid>.tmp`, in the same folder so the final rename stays on one file system.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    PathBuf::from(tmp)
}

/// Writes `bytes` to `path` through [`temp_sibling`] and a rename; on failure nothing is left behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_sibling(path);
    std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-folder").join("out.png");
        assert!(write_atomically(&path, b"x").is_err());
        assert!(!temp_sibling(&path).exists() && !path.exists());
        let ok = dir.path().join("out.bin");
        write_atomically(&ok, b"abc").unwrap();
        assert_eq!(std::fs::read(&ok).unwrap(), b"abc");
        assert!(!temp_sibling(&ok).exists());
    }
}
