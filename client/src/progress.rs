//! How a transfer reports its progress (a terminal bar, log lines, or nothing).

/// Receives a transfer's progress; every method may be called from several tasks at once.
pub trait Progress: Send + Sync {
    /// The transfer has `files` files of `bytes` bytes in all.
    fn planned(&self, _files: u64, _bytes: u64) {}
    /// `bytes` more were sent or received (or found already in place).
    fn transferred(&self, _bytes: u64) {}
    /// `bytes` counted before must be counted again (an attempt failed and restarts).
    fn rewound(&self, _bytes: u64) {}
    /// The file `name` is complete.
    fn file_done(&self, _name: &str) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
