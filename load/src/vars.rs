//! Request templates: `{name}` in a path, header value or body is replaced, for each request,
//! by a value drawn from the plan's `[vars]` (a range of integers or a list) or from the
//! command line (`--var image=/images/ab12.png`). `{{` and `}}` stand for braces.

use std::collections::BTreeMap;

use serde::Deserialize;

/// How a variable's values are given in the plan.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum VarSpec {
    /// Any integer from `min` to `max`, both included, uniformly.
    Range { min: i64, max: i64 },
    /// One of these, uniformly.
    List(Vec<toml::Value>),
    /// Always this.
    One(toml::Value),
}

/// A variable ready to draw from.
#[derive(Debug, Clone)]
enum Values {
    Range(i64, i64),
    List(Vec<String>),
}

/// Every variable a run can use.
#[derive(Debug, Clone, Default)]
pub struct Vars(BTreeMap<String, Values>);

/// A string cut at its `{var}` references, checked against the variables once.
#[derive(Debug, Clone)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Var(String),
}

/// A template that cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("{0:?}: a `{{` is never closed")]
    Unclosed(String),
    #[error(
        "{text:?} uses {{{name}}}, which is neither in the plan's [vars] nor given with --var"
    )]
    Unknown { text: String, name: String },
    #[error("variable {0}: {1}")]
    BadVar(String, String),
}

impl Vars {
    /// The plan's variables, then the command line's (which replace the plan's of that name).
    pub fn new(
        plan: &BTreeMap<String, VarSpec>,
        given: &[(String, String)],
    ) -> Result<Self, TemplateError> {
        let mut vars = BTreeMap::new();
        for (name, spec) in plan {
            vars.insert(name.clone(), Values::from_spec(name, spec)?);
        }
        for (name, value) in given {
            vars.insert(name.clone(), Values::List(vec![value.clone()]));
        }
        Ok(Self(vars))
    }

    /// Parses `text`, checking that every variable it names exists.
    pub fn template(&self, text: &str) -> Result<Template, TemplateError> {
        let pieces = split(text)?;
        for piece in &pieces {
            if let Piece::Var(name) = piece {
                if !self.0.contains_key(name) {
                    return Err(TemplateError::Unknown {
                        text: text.to_owned(),
                        name: name.clone(),
                    });
                }
            }
        }
        Ok(Template(pieces))
    }

    /// Renders a checked template with fresh draws from `rng`.
    pub fn render(&self, template: &Template, rng: &mut fastrand::Rng) -> String {
        let mut out = String::new();
        for piece in &template.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(name) => match self.0.get(name) {
                    Some(Values::Range(min, max)) => {
                        out.push_str(&rng.i64(*min..=*max).to_string())
                    }
                    Some(Values::List(list)) => out.push_str(&list[rng.usize(..list.len())]),
                    None => {}
                },
            }
        }
        out
    }
}

impl Values {
    fn from_spec(name: &str, spec: &VarSpec) -> Result<Self, TemplateError> {
        let bad = |why: &str| TemplateError::BadVar(name.to_owned(), why.to_owned());
        let not_scalar = || bad("values must be strings or numbers");
        match spec {
            VarSpec::Range { min, max } if min <= max => Ok(Self::Range(*min, *max)),
            VarSpec::Range { .. } => Err(bad("min is above max")),
            VarSpec::List(list) if list.is_empty() => Err(bad("the list is empty")),
            VarSpec::List(list) => list
                .iter()
                .map(scalar)
                .collect::<Option<Vec<_>>>()
                .map(Self::List)
                .ok_or_else(not_scalar),
            VarSpec::One(value) => scalar(value)
                .map(|one| Self::List(vec![one]))
                .ok_or_else(not_scalar),
        }
    }
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn split(text: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['{', '}']) {
        literal.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            literal.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if let Some(after) = tail.strip_prefix('}') {
            literal.push('}');
            rest = after;
        } else {
            let end = tail
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(text.to_owned()))?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Var(tail[1..end].trim().to_owned()));
            rest = &tail[end + 1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let mut plan = BTreeMap::new();
        plan.insert("task".to_owned(), VarSpec::Range { min: 3, max: 5 });
        let widths = vec![toml::Value::Integer(320), toml::Value::String("640".into())];
        plan.insert("width".to_owned(), VarSpec::List(widths));
        Vars::new(&plan, &[("image".to_owned(), "/images/a.png".to_owned())]).expect("vars")
    }

    #[test]
    fn templates_draw_every_value_of_their_variables_and_nothing_else() {
        let vars = vars();
        let template = vars
            .template("/cdn-cgi/image/width={width}{image}?t={ task }&x={{1}}")
            .expect("template");
        let mut rng = fastrand::Rng::with_seed(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.insert(vars.render(&template, &mut rng));
        }
        let expected: std::collections::BTreeSet<String> = [320, 640]
            .iter()
            .flat_map(|w| {
                (3..=5).map(move |t| format!("/cdn-cgi/image/width={w}/images/a.png?t={t}&x={{1}}"))
            })
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn unknown_and_unclosed_references_are_refused_before_the_run() {
        let vars = vars();
        assert!(
            matches!(vars.template("/a/{user}"), Err(TemplateError::Unknown { name, .. }) if name == "user")
        );
        assert!(matches!(
            vars.template("/a/{task"),
            Err(TemplateError::Unclosed(_))
        ));
        let empty = VarSpec::List(vec![]);
        let plan = BTreeMap::from([("x".to_owned(), empty)]);
        assert!(matches!(
            Vars::new(&plan, &[]),
            Err(TemplateError::BadVar(..))
        ));
        let reversed = BTreeMap::from([("x".to_owned(), VarSpec::Range { min: 2, max: 1 })]);
        assert!(matches!(
            Vars::new(&reversed, &[]),
            Err(TemplateError::BadVar(..))
        ));
    }
}
