//! Where call records are written: stdout, or a file rotated by size or
//! age and reopened on request (logrotate).

use edge::config::Records;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The output and its rotation.
pub struct Out {
    to: To,
    rotate_size: Option<u64>,
    rotate_interval: Option<Duration>,
}

enum To {
    Stdout,
    File {
        path: PathBuf,
        file: io::BufWriter<File>,
        /// Bytes in the file now.
        size: u64,
        /// When it was opened.
        opened: SystemTime,
    },
}

impl Out {
    /// Opens what `cfg` names (appending to a file that exists).
    pub fn open(cfg: &Records) -> io::Result<Out> {
        let to = match &cfg.file {
            None => To::Stdout,
            Some(path) => open(path)?,
        };
        Ok(Out {
            to,
            rotate_size: cfg.rotate_size,
            rotate_interval: cfg.rotate_interval,
        })
    }

    /// Writes whole lines (buffered; flushed at each [`Out::tick`]), and
    /// rotates when the file reached its size.
    pub fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        match &mut self.to {
            To::Stdout => {
                let mut o = io::stdout().lock();
                o.write_all(lines)?;
                o.flush()
            }
            To::File { file, size, .. } => {
                file.write_all(lines)?;
                *size += lines.len() as u64;
                if self.rotate_size.is_some_and(|max| *size >= max) {
                    self.rotate_or_say(SystemTime::now());
                }
                Ok(())
            }
        }
    }

    /// Flushes; rotates a file older than its interval; reopens the file
    /// (after logrotate moved it away) when `reopen`.
    pub fn tick(&mut self, now: SystemTime, reopen: bool) -> io::Result<()> {
        let To::File {
            path, file, opened, ..
        } = &mut self.to
        else {
            return Ok(());
        };
        file.flush()?;
        if reopen {
            let path = path.clone();
            self.to = open(&path)?;
            return Ok(());
        }
        let aged = self
            .rotate_interval
            .is_some_and(|i| now.duration_since(*opened).is_ok_and(|d| d >= i));
        if aged {
            self.rotate_or_say(now);
        }
        Ok(())
    }

    /// Rotates; when that fails (the directory not writable), says so
    /// and writes on to the same file, trying again only after another
    /// `rotate_size` or `rotate_interval`.
    fn rotate_or_say(&mut self, now: SystemTime) {
        if let Err(e) = self.rotate(now) {
            tracing::warn!("[records]: cannot rotate the call-record file: {e}");
            if let To::File { size, opened, .. } = &mut self.to {
                *size = 0;
                *opened = now;
            }
        }
    }

    /// Renames the file to `FILE.YYYYMMDDTHHMMSSZ` and opens a new one.
    fn rotate(&mut self, now: SystemTime) -> io::Result<()> {
        let To::File { path, file, .. } = &mut self.to else {
            return Ok(());
        };
        file.flush()?;
        let path = path.clone();
        let stamp = stamp(now);
        let mut name = path.clone().into_os_string();
        name.push(format!(".{stamp}"));
        let mut target = PathBuf::from(&name);
        // Two rotations within a second: number the later one.
        let mut n = 1;
        while target.exists() {
            let mut numbered = name.clone();
            numbered.push(format!(".{n}"));
            target = PathBuf::from(numbered);
            n += 1;
        }
        std::fs::rename(&path, &target)?;
        self.to = open(&path)?;
        Ok(())
    }
}

fn open(path: &PathBuf) -> io::Result<To> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok(To::File {
        path: path.clone(),
        file: io::BufWriter::with_capacity(64 * 1024, file),
        size,
        opened: SystemTime::now(),
    })
}

/// `20261203T140501Z`.
fn stamp(at: SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
