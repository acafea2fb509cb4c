//! Lines to the owner node. The C-node's stdout is its port: the owner (`autonomic_planner_cnode`)
//! reads it line by line and logs each line through `logger` with the planner's metadata. A
//! dedicated thread writes the lines, fed through a bounded queue that drops lines when full, so
//! no planning or network thread ever waits on the owner. When stdout is gone, so is the owner:
//! the process exits.

use std::fmt::Display;
use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread;

const QUEUE: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// A handle on the line writer; cheap to clone.
#[derive(Clone)]
pub struct Log {
    tx: SyncSender<String>,
}

impl Log {
    /// Starts the writer thread.
    pub fn start() -> std::io::Result<Log> {
        let (tx, rx) = sync_channel::<String>(QUEUE);
        thread::Builder::new().name("log".into()).spawn(move || {
            let stdout = std::io::stdout();
            for line in rx {
                let mut out = stdout.lock();
                if out.write_all(line.as_bytes()).is_err()
                    || out.write_all(b"\n").is_err()
                    || out.flush().is_err()
                {
                    // The port is closed: the owner is gone.
                    std::process::exit(0);
                }
            }
        })?;
        Ok(Log { tx })
    }

    /// A protocol line (such as `ready ...`), sent as is.
    pub fn line(&self, line: String) {
        let _ = self.tx.try_send(line.replace('\n', " "));
    }

    pub fn log(&self, level: Level, msg: impl Display) {
        self.line(format!("log {} {msg}", level.name()));
    }

    pub fn error(&self, msg: impl Display) {
        self.log(Level::Error, msg);
    }

    pub fn warning(&self, msg: impl Display) {
        self.log(Level::Warning, msg);
    }

    pub fn notice(&self, msg: impl Display) {
        self.log(Level::Notice, msg);
    }

    pub fn info(&self, msg: impl Display) {
        self.log(Level::Info, msg);
    }

    pub fn debug(&self, msg: impl Display) {
        self.log(Level::Debug, msg);
    }
}
