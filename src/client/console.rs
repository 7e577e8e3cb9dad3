//! Terminal output shared by the input thread and the socket reader thread.
//!
//! On a terminal, lines that arrive while the user types are printed as `\r\x1b[K<line>\n`
//! (erase the prompt line first) and the prompt is printed again afterwards. When stdin is not
//! a terminal, output is plain lines: no prompts, no escapes.

use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

/// The text that prints `lines` arriving asynchronously, then redraws `prompt` (if any).
pub fn render_incoming(tty: bool, prompt: Option<&str>, lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        if tty {
            out.push_str("\r\x1b[K");
        }
        out.push_str(line);
        out.push('\n');
    }
    if let (true, Some(p)) = (tty, prompt) {
        out.push_str(p);
    }
    out
}

/// Serializes all output; remembers the prompt currently shown (terminal mode only).
#[derive(Debug)]
pub struct Console {
    tty: bool,
    prompt: Mutex<Option<String>>,
}

impl Console {
    pub fn new(tty: bool) -> Self {
        Console {
            tty,
            prompt: Mutex::new(None),
        }
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }

    fn write(text: &str) {
        // Output errors (a closed stdout) are ignored: printing must never panic.
        let mut out = io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// Prints lines in the normal flow (the prompt, if any, is considered consumed).
    pub fn lines(&self, lines: &[String]) {
        let mut prompt = self.prompt.lock().unwrap_or_else(PoisonError::into_inner);
        *prompt = None;
        Self::write(&render_incoming(false, None, lines));
    }

    pub fn line(&self, line: impl Into<String>) {
        self.lines(&[line.into()]);
    }

    /// Shows a prompt (terminal mode only) and remembers it for redraws.
    pub fn prompt(&self, text: &str) {
        if !self.tty {
            return;
        }
        let mut prompt = self.prompt.lock().unwrap_or_else(PoisonError::into_inner);
        *prompt = Some(text.to_owned());
        Self::write(text);
    }

    /// The user finished a line: the prompt is no longer on screen.
    pub fn input_done(&self) {
        *self.prompt.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Prints lines that arrived from the server without garbling the line being typed.
    pub fn incoming(&self, lines: &[String]) {
        let prompt = self.prompt.lock().unwrap_or_else(PoisonError::into_inner);
        Self::write(&render_incoming(self.tty, prompt.as_deref(), lines));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_mode_erases_and_redraws() {
        let lines = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            render_incoming(true, Some("> "), &lines),
            "\r\x1b[Ka\n\r\x1b[Kb\n> "
        );
        assert_eq!(
            render_incoming(true, None, &lines),
            "\r\x1b[Ka\n\r\x1b[Kb\n"
        );
    }

    #[test]
    fn pipe_mode_is_plain() {
        let lines = vec!["a".to_owned()];
        assert_eq!(render_incoming(false, Some("> "), &lines), "a\n");
    }
}
