//! Opening a bucket's file for reading in one system call, confined to the bucket: `openat2`
//! from the bucket's directory refuses every symbolic link and every path that leaves it (Linux
//! 5.6 and later). Elsewhere (an older kernel, a sandbox that filters the call) the caller falls
//! back to resolving the file's directory first.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
use rustix::io::Errno;

/// Set once `openat2` turned out to be unavailable.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Why a confined open failed.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The path leads out of the directory or through a symbolic link.
    Escapes,
    /// Any other failure (`NotFound` when there is no such file).
    Io(std::io::Error),
}

/// Opens `rel` (relative to `dir`) for reading without following any symbolic link or leaving
/// `dir`; `None` when the kernel cannot do it in one call.
pub(crate) fn open_read(dir: &OwnedFd, rel: &Path) -> Option<Result<File, Refused>> {
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return None;
    }
    let opened = openat2(
        dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    );
    match opened {
        Ok(fd) => Some(Ok(File::from(fd))),
        // Not implemented, or denied by a seccomp filter.
        Err(Errno::NOSYS | Errno::PERM) => {
            UNAVAILABLE.store(true, Ordering::Relaxed);
            None
        }
        Err(Errno::XDEV | Errno::LOOP) => Some(Err(Refused::Escapes)),
        Err(e) => Some(Err(Refused::Io(e.into()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &Path) -> OwnedFd {
        File::open(p).unwrap().into()
    }

    #[test]
    fn files_inside_open_and_links_or_parents_out_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        std::fs::write(root.path().join("d/f"), b"inside").unwrap();
        std::fs::write(outside.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        std::os::unix::fs::symlink(root.path().join("d/f"), root.path().join("d/alias")).unwrap();
        let fd = dir(root.path());
        let Some(opened) = open_read(&fd, Path::new("d/f")) else {
            return; // this kernel has no openat2: the fallback is tested with the store
        };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut opened.unwrap(), &mut text).unwrap();
        assert_eq!(text, "inside");
        for escaping in ["link/secret", "d/alias", "../x", "d/../../x"] {
            let r = open_read(&fd, Path::new(escaping)).unwrap();
            assert!(matches!(r, Err(Refused::Escapes)), "{escaping}: {r:?}");
        }
        let r = open_read(&fd, Path::new("d/missing")).unwrap();
        assert!(
            matches!(&r, Err(Refused::Io(e)) if e.kind() == std::io::ErrorKind::NotFound),
            "{r:?}"
        );
    }
}
