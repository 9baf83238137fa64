//! HCL text as `terraform fmt` writes it, from `hcl-rs` bodies.
//!
//! `hcl-rs` prints valid HCL but does not align the `=` of neighbouring attributes, which
//! `terraform fmt` does; [`to_terraform`] adds that alignment, so generated files pass
//! `terraform fmt -check` unchanged (CI checks it).

use hcl::expr::{Expression, Object, ObjectKey, Traversal, Variable};
use hcl::{Body, Identifier};

/// An object with identifier keys, in insertion order.
#[derive(Debug, Default)]
pub struct ObjectBuilder(Object<ObjectKey, Expression>);

impl ObjectBuilder {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key = value`.
    pub fn set(mut self, key: &str, value: impl Into<Expression>) -> Self {
        self.0
            .insert(ObjectKey::Identifier(identifier(key)), value.into());
        self
    }

    /// Adds `key = value` when `value` is `Some`.
    pub fn set_some(self, key: &str, value: Option<impl Into<Expression>>) -> Self {
        match value {
            Some(value) => self.set(key, value),
            None => self,
        }
    }

    /// The object expression.
    pub fn build(self) -> Expression {
        Expression::Object(self.0)
    }
}

/// `root.attr.attr…`, e.g. `var.zone_id`.
pub fn reference(path: &str) -> Expression {
    let mut parts = path.split('.');
    let mut traversal = Traversal::builder(Variable::sanitized(parts.next().unwrap_or_default()));
    for part in parts {
        traversal = traversal.attr(part);
    }
    traversal.build().into()
}

/// An expression written as HCL text (a function call or arithmetic), parsed so that it prints
/// like any other. The texts are the generator's own; one that does not parse is a bug there.
pub fn raw(text: impl AsRef<str>) -> Expression {
    let text = text.as_ref();
    text.parse()
        .unwrap_or_else(|error| panic!("generated HCL expression {text:?} is invalid: {error}"))
}

/// A list expression.
pub fn list(items: impl IntoIterator<Item = Expression>) -> Expression {
    Expression::Array(items.into_iter().collect())
}

fn identifier(key: &str) -> Identifier {
    Identifier::new(key).unwrap_or_else(|_| Identifier::sanitized(key))
}

/// The body as text, with a leading comment, aligned like `terraform fmt`.
pub fn to_terraform(header: &str, body: &Body) -> Result<String, hcl::Error> {
    let text = hcl::format::to_string(body)?;
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&align_assignments(&text));
    Ok(out)
}

/// Pads the keys of each run of one-line `key = value` lines at one indentation to the longest
/// key of the run. A line that opens a nested value (`key = {`) ends the run, as in hclwrite.
fn align_assignments(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut i = 0;
    while i < lines.len() {
        let Some(first) = assignment(lines[i]) else {
            out.push_str(lines[i]);
            out.push('\n');
            i += 1;
            continue;
        };
        let mut run = vec![first];
        while let Some(next) = lines.get(i + run.len()).and_then(|line| assignment(line)) {
            if next.indent != first.indent {
                break;
            }
            run.push(next);
        }
        let width = run.iter().map(|a| a.key.len()).max().unwrap_or(0);
        for a in &run {
            out.push_str(&format!(
                "{}{:<width$} = {}\n",
                a.indent,
                a.key,
                a.value,
                width = width
            ));
        }
        i += run.len();
    }
    out
}

#[derive(Debug, Clone, Copy)]
struct Assignment<'l> {
    indent: &'l str,
    key: &'l str,
    value: &'l str,
}

/// A one-line `key = value` (not one opening a nested object or list).
fn assignment(line: &str) -> Option<Assignment<'_>> {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    let (key, value) = trimmed.split_once(" = ")?;
    let is_key = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let opens = value.ends_with('{') || value.ends_with('[') || value.ends_with('(');
    (is_key && !opens).then_some(Assignment { indent, key, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_aligned_and_nested_values_break_them() {
        let text = "a = 1\nlong_name = 2\nnested = {\n  x = 1\n  yy = 2\n}\nb = 3\n";
        assert_eq!(
            align_assignments(text),
            "a         = 1\nlong_name = 2\nnested = {\n  x  = 1\n  yy = 2\n}\nb = 3\n"
        );
    }

    #[test]
    fn objects_print_identifier_keys() {
        let object = ObjectBuilder::new()
            .set("mode", "override_origin")
            .set("default", 60)
            .build();
        let body = Body::builder()
            .add_attribute(("edge_ttl", object))
            .add_attribute(("zone_id", reference("var.zone_id")))
            .build();
        let text = to_terraform("header", &body).expect("formats");
        assert_eq!(
            text,
            "# header\n\nedge_ttl = {\n  mode    = \"override_origin\"\n  default = 60\n}\nzone_id = var.zone_id\n"
        );
    }
}
