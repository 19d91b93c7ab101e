//! Values as text: JSON (`opa_json_dump` / `opa_json_parse`) and Rego's value
//! syntax (`opa_value_dump` / `opa_value_parse`), which adds sets and
//! non-string object keys to JSON.

use regorus::Value;

/// JSON text of a value: sets become arrays, non-string object keys their
/// JSON text (as OPA dumps them).
pub fn json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| panic!("cannot serialise a value as JSON: {e}"))
}

/// Rego text of a value.
pub fn rego(v: &Value) -> String {
    let mut out = String::new();
    write_rego(v, &mut out);
    out
}

fn write_rego(v: &Value, out: &mut String) {
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_rego(e, out);
            }
            out.push(']');
        }
        Value::Set(s) if s.is_empty() => out.push_str("set()"),
        Value::Set(s) => {
            out.push('{');
            for (i, e) in s.iter_sorted().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_rego(e, out);
            }
            out.push('}');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, e)) in o.iter_sorted().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_rego(k, out);
                out.push(':');
                write_rego(e, out);
            }
            out.push('}');
        }
        Value::Undefined => out.push_str("undefined"),
        _ => out.push_str(&json(v)),
    }
}

/// Parses JSON text; `None` when malformed.
pub fn parse_json(text: &[u8]) -> Option<Value> {
    let text = core::str::from_utf8(text).ok()?;
    Value::from_json_str(text).ok()
}

/// Parses Rego value text (JSON plus `{a, b}` sets, `set()` and any object
/// keys); `None` when malformed.
pub fn parse_rego(text: &[u8]) -> Option<Value> {
    let mut p = Parser { s: text, i: 0 };
    let v = p.value()?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn keyword(&mut self, word: &str) -> bool {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// A scalar's JSON text, parsed as JSON.
    fn json_slice(&self, start: usize) -> Option<Value> {
        parse_json(&self.s[start..self.i])
    }

    fn value(&mut self) -> Option<Value> {
        self.ws();
        let start = self.i;
        match self.peek()? {
            b'{' => {
                self.i += 1;
                if self.eat(b'}') {
                    return Some(Value::new_object());
                }
                let first = self.value()?;
                if self.eat(b':') {
                    let mut obj = Value::new_object();
                    let mut key = first;
                    loop {
                        let v = self.value()?;
                        obj.as_object_mut().ok()?.insert(key, v);
                        if self.eat(b'}') {
                            return Some(obj);
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                        key = self.value()?;
                        if !self.eat(b':') {
                            return None;
                        }
                    }
                }
                let mut set = Value::new_set();
                set.as_set_mut().ok()?.insert(first);
                loop {
                    if self.eat(b'}') {
                        return Some(set);
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                    let v = self.value()?;
                    set.as_set_mut().ok()?.insert(v);
                }
            }
            b'[' => {
                self.i += 1;
                let mut arr = Value::new_array();
                if self.eat(b']') {
                    return Some(arr);
                }
                loop {
                    let v = self.value()?;
                    arr.as_array_mut().ok()?.push(v);
                    if self.eat(b']') {
                        return Some(arr);
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'"' => {
                self.i += 1;
                while self.i < self.s.len() {
                    match self.s[self.i] {
                        b'\\' => self.i += 2,
                        b'"' => {
                            self.i += 1;
                            return self.json_slice(start);
                        }
                        _ => self.i += 1,
                    }
                }
                None
            }
            b's' => self.keyword("set()").then(Value::new_set),
            b't' => self.keyword("true").then_some(Value::Bool(true)),
            b'f' => self.keyword("false").then_some(Value::Bool(false)),
            b'n' => self.keyword("null").then_some(Value::Null),
            b'-' | b'0'..=b'9' => {
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                self.json_slice(start)
            }
            _ => None,
        }
    }
}
