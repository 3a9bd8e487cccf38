//! The operator pass over a script: cuts it into simple commands at unquoted `|`, `||`, `&&`,
//! `;`, `&`, newlines and subshell parentheses, and lifts redirection operators out of the
//! text, leaving the words of each piece to `shlex`. Command substitutions (`$(…)`, backquotes,
//! `<(…)`) are kept whole inside their word.

use super::{Command, Joint, Payload, Redirect, is_assignment};

/// Text of one simple command, interleaved with its redirection operators.
enum Piece {
    Text(String),
    Redirect(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

struct Scanner {
    commands: Vec<Command>,
    complete: bool,
    pieces: Vec<Piece>,
    text: String,
    joint: Joint,
}

pub fn parse(script: &str) -> Payload {
    let mut s = Scanner {
        commands: Vec::new(),
        complete: true,
        pieces: Vec::new(),
        text: String::new(),
        joint: Joint::First,
    };
    let chars: Vec<char> = script.chars().collect();
    let mut quote = Quote::None;
    // Depth inside `$(`, `<(`, `>(` and backquotes: operators there belong to the inner command.
    let mut depth = 0usize;
    let mut backquote = false;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        match quote {
            Quote::Single => {
                s.text.push(c);
                if c == '\'' {
                    quote = Quote::None;
                }
                i += 1;
                continue;
            }
            Quote::Double => {
                s.text.push(c);
                if c == '\\' {
                    if let Some(n) = next {
                        s.text.push(n);
                        i += 1;
                    }
                } else if c == '"' {
                    quote = Quote::None;
                }
                i += 1;
                continue;
            }
            Quote::None => {}
        }
        match c {
            '\\' => {
                s.text.push(c);
                if let Some(n) = next {
                    s.text.push(n);
                    i += 1;
                }
            }
            '\'' => {
                quote = Quote::Single;
                s.text.push(c);
            }
            '"' => {
                quote = Quote::Double;
                s.text.push(c);
            }
            '`' => {
                backquote = !backquote;
                s.text.push(c);
            }
            '$' | '<' | '>' if next == Some('(') => {
                depth += 1;
                s.text.push(c);
                s.text.push('(');
                i += 1;
            }
            '(' if depth > 0 => {
                depth += 1;
                s.text.push(c);
            }
            ')' if depth > 0 => {
                depth -= 1;
                s.text.push(c);
            }
            _ if depth > 0 || backquote => s.text.push(c),
            '#' if s.text.is_empty() || s.text.ends_with(char::is_whitespace) => {
                // A comment, to the end of the line.
                while chars.get(i + 1).is_some_and(|&c| c != '\n') {
                    i += 1;
                }
            }
            '|' => {
                let joint = match next {
                    Some('|') => {
                        i += 1;
                        Joint::Or
                    }
                    Some('&') => {
                        i += 1;
                        Joint::Pipe
                    }
                    _ => Joint::Pipe,
                };
                s.end_command(joint);
            }
            '&' if next == Some('&') => {
                i += 1;
                s.end_command(Joint::And);
            }
            '&' if next == Some('>') => {
                let append = chars.get(i + 2) == Some(&'>');
                i += if append { 2 } else { 1 };
                s.redirect(if append { "&>>" } else { "&>" }.to_owned());
            }
            '&' | ';' | '\n' | '(' | ')' => s.end_command(Joint::Then),
            '<' | '>' => {
                let mut op = s.take_fd_number();
                op.push(c);
                // The rest of the operator: >>, >&, >|, <<, <<-, <<<, <>, <&.
                while let Some(&n) = chars.get(i + 1) {
                    let continues = matches!(
                        (op.chars().last(), n),
                        (Some('>'), '>' | '&' | '|') | (Some('<'), '<' | '>' | '&' | '-')
                    ) && op.trim_start_matches(|d: char| d.is_ascii_digit()).len()
                        < 3;
                    if !continues {
                        break;
                    }
                    op.push(n);
                    i += 1;
                }
                s.redirect(op);
            }
            _ => s.text.push(c),
        }
        i += 1;
    }
    if quote != Quote::None || depth > 0 || backquote {
        s.complete = false;
    }
    s.end_command(Joint::Then);
    Payload {
        commands: s.commands,
        complete: s.complete,
    }
}

impl Scanner {
    /// A file descriptor number written against the operator (`2>`): the digits at the end of
    /// the text when they form a word of their own.
    fn take_fd_number(&mut self) -> String {
        let digits = self
            .text
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .count();
        let start = self.text.len() - digits;
        let alone = self.text[..start]
            .chars()
            .last()
            .is_none_or(char::is_whitespace);
        if digits > 0 && alone {
            self.text.split_off(start)
        } else {
            String::new()
        }
    }

    fn redirect(&mut self, op: String) {
        self.flush_text();
        self.pieces.push(Piece::Redirect(op));
    }

    fn flush_text(&mut self) {
        if !self.text.trim().is_empty() {
            self.pieces
                .push(Piece::Text(std::mem::take(&mut self.text)));
        }
        self.text.clear();
    }

    /// Turns the pieces so far into a command joined by `self.joint`; `joint` joins the next.
    fn end_command(&mut self, joint: Joint) {
        self.flush_text();
        let mut command = Command {
            joint: self.joint,
            ..Command::default()
        };
        let mut pending: Option<String> = None;
        for piece in std::mem::take(&mut self.pieces) {
            match piece {
                Piece::Redirect(op) => {
                    if let Some(op) = pending.replace(op) {
                        command.redirects.push(Redirect {
                            op,
                            target: String::new(),
                        });
                    }
                }
                Piece::Text(text) => {
                    let words = shlex::split(&text).unwrap_or_else(|| {
                        self.complete = false;
                        text.split_whitespace().map(str::to_owned).collect()
                    });
                    let mut words = words.into_iter();
                    if let Some(op) = pending.take() {
                        command.redirects.push(Redirect {
                            op,
                            target: words.next().unwrap_or_default(),
                        });
                    }
                    for w in words {
                        // Leading assignments set the environment; they are not the program.
                        if command.words.is_empty() && is_assignment(&w) {
                            continue;
                        }
                        command.words.push(w);
                    }
                }
            }
        }
        if let Some(op) = pending {
            command.redirects.push(Redirect {
                op,
                target: String::new(),
            });
        }
        // `{ …; }` groups: the braces are words to the tokenizer, not programs.
        command.words.retain(|w| w != "{" && w != "}");
        if !command.words.is_empty() || !command.redirects.is_empty() {
            self.commands.push(command);
            self.joint = joint;
        } else if joint != Joint::Then {
            // An empty piece (around a subshell's parentheses) passes on the stronger joint:
            // `(a) | b` pipes a into b.
            self.joint = joint;
        }
        if self.commands.is_empty() {
            self.joint = Joint::First;
        }
    }
}
