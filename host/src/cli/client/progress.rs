//! Progress on stderr: one line redrawn in place on a terminal; on anything else (a log, a
//! pipe) a plain line each time the state changes, so logs stay readable and short.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// How often a terminal line is redrawn at most.
const REDRAW: Duration = Duration::from_millis(100);

/// A progress display.
pub struct Progress {
    terminal: bool,
    /// The last state shown as a plain line (non-terminal).
    last_state: String,
    /// When the terminal line was last drawn; `None` before the first draw.
    drawn_at: Option<Instant>,
}

impl Progress {
    /// A display on stderr, in place when stderr is a terminal.
    pub fn stderr() -> Self {
        Self { terminal: std::io::stderr().is_terminal(), last_state: String::new(), drawn_at: None }
    }

    /// Whether the display redraws in place.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Shows `state` (what a log should get when it changes) followed, on a terminal only, by
    /// `live` (what changes all the time: elapsed time, a bar).
    pub fn update(&mut self, state: &str, live: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            if self.drawn_at.is_some_and(|t| t.elapsed() < REDRAW) {
                return;
            }
            self.drawn_at = Some(Instant::now());
            // \r and erase-line: the new text replaces the old even when shorter.
            let _ = write!(err, "\r\x1b[2K{state}{live}");
            let _ = err.flush();
        } else if state != self.last_state {
            let _ = writeln!(err, "{state}");
            self.last_state = state.to_owned();
        }
    }

    /// Removes the terminal line (the final result is printed by the caller).
    pub fn finish(&mut self) {
        if self.terminal && self.drawn_at.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A 30-column bar: `[#########.....................]  31%`.
pub fn bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let fraction = if total == 0 { 1.0 } else { (done.min(total) as f64) / (total as f64) };
    let filled = (fraction * WIDTH as f64).round() as u64;
    format!("[{}{}] {:>3.0}%", "#".repeat(filled as usize), ".".repeat((WIDTH - filled) as usize), fraction * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills_with_progress() {
        assert_eq!(bar(0, 10), format!("[{}]   0%", ".".repeat(30)));
        assert_eq!(bar(5, 10), format!("[{}{}]  50%", "#".repeat(15), ".".repeat(15)));
        assert_eq!(bar(12, 10), format!("[{}] 100%", "#".repeat(30)));
        assert_eq!(bar(0, 0), format!("[{}] 100%", "#".repeat(30)));
    }
}
