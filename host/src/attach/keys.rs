//! Single key presses from the terminal.
//!
//! In raw mode (no line buffering, no echo) one key is one vote; when stdin
//! is not a terminal (a pipe), bytes are read as they come, so scripts can
//! drive it too. Reading blocks, so it runs on its own thread.

use std::io::{IsTerminal, Read};
use std::os::fd::AsFd;

use nix::sys::termios::{self, SetArg, Termios};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `1`–`9`: the option with that number.
    Digit(usize),
    /// `c`: vote `cancelled`.
    Cancel,
    /// `q`, Ctrl-C or Ctrl-D: leave (raw mode swallows the signal).
    Quit,
}

pub fn parse(byte: u8) -> Option<Key> {
    match byte {
        b'1'..=b'9' => Some(Key::Digit((byte - b'0') as usize)),
        b'c' | b'C' => Some(Key::Cancel),
        b'q' | b'Q' | 0x03 | 0x04 => Some(Key::Quit),
        _ => None,
    }
}

/// Keys from stdin, read on a thread of their own.
pub fn spawn_reader() -> mpsc::Receiver<Key> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::Builder::new()
        .name("attach-keys".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut byte = [0u8; 1];
            while let Ok(1) = stdin.read(&mut byte) {
                if let Some(key) = parse(byte[0]) {
                    if tx.blocking_send(key).is_err() {
                        return;
                    }
                }
            }
        })
        .expect("spawning the key reader thread");
    rx
}

/// A receiver that never yields: stdin is closed, the stream goes on.
pub fn closed() -> mpsc::Receiver<Key> {
    let (tx, rx) = mpsc::channel(1);
    std::mem::forget(tx);
    rx
}

/// Raw mode for as long as it lives; the terminal is restored on drop
/// (also when the command fails).
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enable() -> RawMode {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return RawMode { saved: None };
        }
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        match termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw) {
            Ok(()) => RawMode { saved: Some(saved) },
            Err(_) => RawMode { saved: None },
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_votes() {
        assert_eq!(parse(b'1'), Some(Key::Digit(1)));
        assert_eq!(parse(b'9'), Some(Key::Digit(9)));
        assert_eq!(parse(b'0'), None);
        assert_eq!(parse(b'c'), Some(Key::Cancel));
        assert_eq!(parse(0x03), Some(Key::Quit));
        assert_eq!(parse(b'\n'), None);
    }
}
