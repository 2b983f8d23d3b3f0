//! The interactive mode: a prompt with line editing and history on a terminal, or one command
//! per line from a pipe or file.

use std::io::{self, BufRead, IsTerminal};
use std::path::PathBuf;

use clap::Parser;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use tokio::runtime::Runtime;

use super::args::{Command, Line};
use super::commands::{Ctx, EXIT_OK, EXIT_USAGE};

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

/// Commands from a pipe or file: no prompt, no history.
fn from_lines(rt: &Runtime, ctx: &mut Ctx, input: impl BufRead) -> i32 {
    let mut status = EXIT_OK;
    for line in input.lines() {
        let Ok(line) = line else { break };
        match execute_line(rt, ctx, &line) {
            Step::Ran(code) => status = code,
            Step::Nothing => {}
            Step::Quit => break,
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
                if !line.trim().is_empty() {
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

/// Splits a line into words at whitespace; `"…"` and `'…'` quote (inside double quotes, `\`
/// escapes the next character), as zkCli's own splitting allows `set /a "two words"`.
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == '\\' => match chars.next() {
                Some(next) => word.push(next),
                None => return Err("unterminated quote".to_owned()),
            },
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".to_owned());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_and_quotes() {
        assert_eq!(split_words("  ls   / ").unwrap(), vec!["ls", "/"]);
        assert_eq!(
            split_words(r#"set /a "two words""#).unwrap(),
            vec!["set", "/a", "two words"]
        );
        assert_eq!(
            split_words(r#"set /a 'it''s' "" x"#).unwrap(),
            vec!["set", "/a", "its", "", "x"]
        );
        assert_eq!(
            split_words(r#"set /a "say \"hi\" \\ ok""#).unwrap(),
            vec!["set", "/a", r#"say "hi" \ ok"#]
        );
        assert_eq!(
            split_words(r"set /a C:\dir").unwrap(),
            vec!["set", "/a", r"C:\dir"]
        );
        assert!(split_words("set /a \"open").is_err());
        assert!(split_words("").unwrap().is_empty());
    }
}
