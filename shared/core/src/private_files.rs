//! Files that hold secrets or other users' data (the embedded database with webhook secrets,
//! keys, search snapshots, e-mails): readable by the service's own user only.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) readable by the owner only.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates (or truncates) `path` readable by the owner only.
pub fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Makes sure `path` exists and is readable by the owner only: created empty if missing, its
/// mode narrowed if others could read it (returns `true` then, for a warning).
pub fn ensure(path: &Path) -> io::Result<bool> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    narrow(path)
}

/// Narrows an existing file's mode to the owner's bits; `true` if it changed.
pub fn narrow(path: &Path) -> io::Result<bool> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_and_directories_are_the_owners_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("secret");
        create(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        let g = dir.join("db");
        assert!(!ensure(&g).unwrap());
        assert_eq!(mode(&g), 0o600);
        std::fs::set_permissions(&g, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(ensure(&g).unwrap(), "an existing readable file is narrowed");
        assert_eq!(mode(&g), 0o600);
    }
}
