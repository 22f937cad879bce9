//! Where each key path (`connectors[1].schedule`) sits in the YAML text.
//!
//! serde loses positions once a value is deserialized, so semantic errors found later
//! (a bad cron string, a duplicate id) look their position up here. The path syntax is
//! the one `serde_path_to_error` prints, so both kinds of error read the same.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Default)]
pub struct Positions {
    values: HashMap<String, Pos>,
}

impl Positions {
    /// Indexes `text`; a document that does not parse yields an empty index (the syntax
    /// error is reported by the deserializer).
    pub fn index(text: &str) -> Positions {
        let mut recv = Recv::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut recv, false).is_err() {
            return Positions::default();
        }
        Positions {
            values: recv.values,
        }
    }

    /// The position of the value at `path`, or of its closest ancestor that exists
    /// (a missing key is reported where its parent mapping starts).
    pub fn get(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, idx: usize },
}

#[derive(Default)]
struct Recv {
    stack: Vec<Frame>,
    values: HashMap<String, Pos>,
}

impl Recv {
    fn child_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Map { path, key }) => {
                let key = key.as_deref().unwrap_or("");
                if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                }
            }
            Some(Frame::Seq { path, idx }) => format!("{path}[{idx}]"),
        }
    }

    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { idx, .. }) => *idx += 1,
            None => {}
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

impl MarkedEventReceiver for Recv {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match ev {
            Event::Scalar(value, ..) => {
                if self.expecting_key() {
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(value);
                    }
                } else {
                    let p = self.child_path();
                    self.values.entry(p).or_insert(pos);
                    self.value_done();
                }
            }
            Event::Alias(_) => {
                let p = self.child_path();
                self.values.entry(p).or_insert(pos);
                self.value_done();
            }
            Event::MappingStart(..) => {
                let path = self.child_path();
                self.values.entry(path.clone()).or_insert(pos);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.child_path();
                self.values.entry(path.clone()).or_insert(pos);
                self.stack.push(Frame::Seq { path, idx: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values() {
        let text = "version: 1\nconnectors:\n  - id: a\n    schedule: \"bad\"\n  - id: b\n    include: [x, y]\n";
        let p = Positions::index(text);
        assert_eq!(
            p.get("version"),
            Some(Pos {
                line: 1,
                column: 10
            })
        );
        assert_eq!(
            p.get("connectors[0].schedule"),
            Some(Pos {
                line: 4,
                column: 15
            })
        );
        assert_eq!(p.get("connectors[1].id"), Some(Pos { line: 5, column: 9 }));
        assert_eq!(
            p.get("connectors[1].include[1]"),
            Some(Pos {
                line: 6,
                column: 18
            })
        );
        // missing key: falls back to the enclosing mapping
        assert_eq!(
            p.get("connectors[1].path"),
            Some(Pos { line: 5, column: 7 })
        );
    }
}
