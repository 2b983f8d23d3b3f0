//! The interactive mode: a prompt with line editing and history on a terminal, or one command
//! per line from a pipe or file.

use std::io::{self, BufRead, IsTerminal};
use std::path::PathBuf;

use clap::Parser;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use tokio::runtime::Runtime;

use super::args::{Command, Line};
use super::commands::{Ctx, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE};

/// What one input line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// The line ran (or failed) with this exit code.
    Ran(i32),
    /// Nothing to do (blank or `#` comment).
    Nothing,
    /// `quit`.
    Quit,
}

/// Runs the interactive mode until `quit` or end of input; returns the exit code of the last
/// command.
pub(crate) fn run(rt: &Runtime, ctx: &mut Ctx) -> i32 {
    // Start connecting now, so that the prompt can show the connection state.
    if let Err(e) = rt.block_on(async { ctx.start().map(drop) }) {
        eprintln!("{e}");
        return e.exit_code();
    }
    let status = if io::stdin().is_terminal() {
        with_editor(rt, ctx)
    } else {
        from_lines(rt, ctx, io::stdin().lock())
    };
    rt.block_on(ctx.shutdown());
    status
}

/// Commands from a pipe or file: no prompt, no history. Bytes that are not UTF-8 become
/// U+FFFD, as Java's reader makes them for zkCli.
fn from_lines(rt: &Runtime, ctx: &mut Ctx, mut input: impl BufRead) -> i32 {
    let mut status = EXIT_OK;
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        match input.read_until(b'\n', &mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("reading commands: {e}");
                return EXIT_USAGE;
            }
        }
        let line = String::from_utf8_lossy(&bytes);
        let line = line.trim_end_matches('\n').trim_end_matches('\r');
        match execute_line(rt, ctx, line) {
            Step::Ran(code) => status = code,
            Step::Nothing => {}
            Step::Quit => break,
        }
        if ctx.interrupted {
            // Ctrl-C stops the script, not just its current command.
            return EXIT_INTERRUPTED;
        }
    }
    status
}

/// Commands from a terminal: zkCli's prompt (`[zk: host:port(CONNECTED) 3] `), line editing,
/// history saved after every command.
fn with_editor(rt: &Runtime, ctx: &mut Ctx) -> i32 {
    let mut editor = match DefaultEditor::new() {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("cannot start the line editor ({e}); reading lines without it");
            return from_lines(rt, ctx, io::stdin().lock());
        }
    };
    let history = history_path();
    if let Some(path) = &history {
        // A missing file is fine: it is created by the first command.
        let _ = editor.load_history(path);
    }
    let mut status = EXIT_OK;
    let mut count = 0u64;
    loop {
        let prompt = format!("[zk: {}({}) {}] ", ctx.connect, ctx.state_name(), count);
        match editor.readline(&prompt) {
            Ok(line) => {
                // Credentials stay out of the history file (zkCli keeps no history file).
                if !line.trim().is_empty() && !line.trim_start().starts_with("addauth") {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(path) = &history {
                        if let Err(e) = editor.append_history(path) {
                            eprintln!("cannot save history to {}: {e}", path.display());
                        }
                    }
                }
                match execute_line(rt, ctx, &line) {
                    Step::Ran(code) => {
                        status = code;
                        count += 1;
                    }
                    Step::Nothing => {}
                    Step::Quit => break,
                }
            }
            // Ctrl-C at the prompt drops the line, as in a shell.
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("{e}");
                break;
            }
        }
    }
    status
}

/// `$ZK_HISTORY`, else `~/.zk_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ZK_HISTORY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".zk_history"))
}

fn execute_line(rt: &Runtime, ctx: &mut Ctx, line: &str) -> Step {
    let words = match split_words(line) {
        Ok(words) => words,
        Err(e) => {
            eprintln!("{e}");
            return Step::Ran(EXIT_USAGE);
        }
    };
    if words.is_empty() || words[0].starts_with('#') {
        return Step::Nothing;
    }
    let command = match Line::try_parse_from(&words) {
        Ok(parsed) => parsed.command,
        Err(e) => {
            let _ = e.print();
            return Step::Ran(e.exit_code());
        }
    };
    if matches!(command, Command::Quit) {
        return Step::Quit;
    }
    Step::Ran(rt.block_on(ctx.run(command)))
}

/// Splits a line into words as zkCli does (`ZooKeeperMain.MyCommandOptions.ARGS_PATTERN`): a
/// word that starts with `"` or `'` runs to the same quote, which is stripped; any other word
/// runs to the next whitespace, quotes and backslashes in it kept as they are (so
/// `set /cfg {"a":1}` stores the JSON). A quote left open is an error (zkCli would skip it).
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while let Some(first) = rest.chars().next() {
        let (word, after) = match first {
            '"' | '\'' => {
                let body = &rest[1..];
                match body.find(first) {
                    Some(end) => (&body[..end], &body[end + 1..]),
                    None => return Err(format!("unterminated quote: {rest}")),
                }
            }
            _ => rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len())),
        };
        words.push(word.to_owned());
        rest = after.trim_start();
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_as_zkcli() {
        assert_eq!(split_words("  ls   / ").unwrap(), vec!["ls", "/"]);
        assert_eq!(
            split_words(r#"set /a "two words""#).unwrap(),
            vec!["set", "/a", "two words"]
        );
        // Quotes inside a word are data: JSON, regexes, apostrophes.
        assert_eq!(
            split_words(r#"create /j {"a":1,"b":"x y"}"#).unwrap(),
            vec!["create", "/j", r#"{"a":1,"b":"x"#, r#"y"}"#]
        );
        assert_eq!(
            split_words(r#"set /a it's "a\d+""#).unwrap(),
            vec!["set", "/a", "it's", r"a\d+"]
        );
        assert_eq!(
            split_words(r#"set /a 'it''s' "" x"#).unwrap(),
            vec!["set", "/a", "it", "s", "", "x"]
        );
        assert_eq!(
            split_words(r#"set /a '{"a": 1}'"#).unwrap(),
            vec!["set", "/a", r#"{"a": 1}"#]
        );
        assert_eq!(
            split_words(r"set /a C:\dir").unwrap(),
            vec!["set", "/a", r"C:\dir"]
        );
        assert!(split_words("set /a \"open").is_err());
        assert!(split_words("").unwrap().is_empty());
    }
}
