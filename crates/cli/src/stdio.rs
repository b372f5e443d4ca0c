//! Printing that never panics. `println!` and `eprintln!` are shadowed for the whole
//! crate by the macros below (declared first in `main.rs`, so every module sees them): a closed
//! stdout (`fzip diff a b | head -1`) ends the output quietly instead of panicking (exit 101),
//! and any other failure to write stdout (a full disk behind a redirection) is remembered and
//! turns a success into exit 1 at the end ([`take_stdout_error`]).

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The reader of stdout went away: nothing more is written there.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first error writing stdout other than a closed pipe.
static STDOUT_ERROR: Mutex<Option<String>> = Mutex::new(None);

macro_rules! println {
    () => {
        $crate::stdio::out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdio::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

macro_rules! eprintln {
    () => {
        $crate::stdio::err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdio::err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stdout; a closed pipe stops all further output, other errors are kept for exit.
pub fn out(args: fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = io::stdout().lock();
    let result = stdout.write_fmt(args).and_then(|()| stdout.flush());
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
        Err(e) => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            let mut first = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Writes to stderr; when even that fails there is nowhere left to say so.
pub fn err(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Why stdout could not be written (a closed pipe is not an error: the reader had enough).
pub fn take_stdout_error() -> Option<String> {
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}
