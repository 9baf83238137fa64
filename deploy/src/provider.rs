//! Offline checks of Terraform files against the provider v5 schema in
//! `deploy/provider/cloudflare-v5.toml`: resource types, argument names at every depth, required
//! arguments, no v4-style nested blocks, and every `var.x` declared.

use std::collections::{BTreeMap, BTreeSet};

use hcl::expr::{Expression, ObjectKey, TraversalOperator};
use hcl::structure::{Block, Body, Structure};
use serde::Deserialize;

/// The committed schema.
pub const SCHEMA_TOML: &str = include_str!("../provider/cloudflare-v5.toml");

/// Arguments every resource takes (Terraform's meta-arguments).
const META_ARGUMENTS: [&str; 4] = ["count", "depends_on", "for_each", "provider"];

/// How deep `local.x` references are followed (a cycle is Terraform's error, not ours).
const MAX_LOCAL_DEPTH: usize = 8;

/// One resource type's arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSchema {
    /// The provider documentation page it was transcribed from.
    pub doc: String,
    /// Top-level arguments that must be set.
    pub required: Vec<String>,
    /// Every settable argument path (`rules.action_parameters.cache`).
    pub attributes: BTreeSet<String>,
}

/// The resource types Rampart may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct ProviderSchema(pub BTreeMap<String, ResourceSchema>);

impl ProviderSchema {
    /// The committed schema.
    pub fn committed() -> Result<Self, toml::de::Error> {
        toml::from_str(SCHEMA_TOML)
    }
}

/// A finding, naming the file and the argument path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as given to [`check`].
    pub file: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem in a set of parsed files (one Terraform module).
pub fn check(schema: &ProviderSchema, files: &[(String, Body)]) -> Vec<Problem> {
    let locals = collect_locals(files);
    let variables = declared_variables(files);
    let mut problems = Vec::new();
    for (file, body) in files {
        let mut report = |message: String| {
            problems.push(Problem {
                file: file.clone(),
                message,
            })
        };
        for block in body.blocks() {
            for name in referenced_variables(block) {
                if !variables.contains(&name) {
                    report(format!("var.{name} is used but not declared"));
                }
            }
            if block.identifier() == "resource" {
                check_resource(schema, &locals, block, &mut report);
            }
        }
    }
    problems
}

fn check_resource(
    schema: &ProviderSchema,
    locals: &BTreeMap<String, Expression>,
    block: &Block,
    report: &mut dyn FnMut(String),
) {
    let kind = block.labels().first().map(|l| l.as_str()).unwrap_or("");
    let name = format!(
        "{kind}.{}",
        block.labels().get(1).map(|l| l.as_str()).unwrap_or("")
    );
    let Some(resource) = schema.0.get(kind) else {
        report(format!(
            "{name}: resource type {kind} is not in the provider schema"
        ));
        return;
    };
    let mut walker = Walker {
        resource,
        locals,
        name: &name,
        report,
    };
    for structure in block.body().iter() {
        match structure {
            Structure::Attribute(attribute) => {
                let key = attribute.key();
                if !META_ARGUMENTS.contains(&key) {
                    walker.attribute(key, attribute.expr(), 0);
                }
            }
            Structure::Block(nested) if nested.identifier() == "lifecycle" => {}
            Structure::Block(nested) => (walker.report)(format!(
                "{name}: nested block `{}`: provider v5 takes nested settings as attributes \
                 (`{} = {{ … }}`)",
                nested.identifier(),
                nested.identifier()
            )),
        }
    }
    for required in &resource.required {
        let set = block.body().attributes().any(|a| a.key() == required);
        if !set {
            (walker.report)(format!("{name}: required argument `{required}` is missing"));
        }
    }
}

struct Walker<'a> {
    resource: &'a ResourceSchema,
    locals: &'a BTreeMap<String, Expression>,
    name: &'a str,
    report: &'a mut dyn FnMut(String),
}

impl Walker<'_> {
    fn attribute(&mut self, path: &str, value: &Expression, depth: usize) {
        if !self.resource.attributes.contains(path) {
            (self.report)(format!(
                "{}: `{path}` is not an argument of {} (see {})",
                self.name,
                self.name.split('.').next().unwrap_or(""),
                self.resource.doc
            ));
            return;
        }
        self.value(path, value, depth);
    }

    /// Walks into whatever can hold nested arguments: objects, lists, calls, conditionals,
    /// `for` expressions and `local.x` references.
    fn value(&mut self, path: &str, value: &Expression, depth: usize) {
        match value {
            Expression::Object(object) => {
                for (key, nested) in object {
                    match object_key(key) {
                        Some(key) => self.attribute(&format!("{path}.{key}"), nested, depth),
                        None => (self.report)(format!(
                            "{}: `{path}` has a computed key; write argument names literally",
                            self.name
                        )),
                    }
                }
            }
            Expression::Array(items) => {
                for item in items {
                    self.value(path, item, depth);
                }
            }
            Expression::FuncCall(call) => {
                for argument in &call.args {
                    self.value(path, argument, depth);
                }
            }
            Expression::Conditional(conditional) => {
                self.value(path, &conditional.true_expr, depth);
                self.value(path, &conditional.false_expr, depth);
            }
            Expression::ForExpr(for_expr) => self.value(path, &for_expr.value_expr, depth),
            Expression::Parenthesis(inner) => self.value(path, inner, depth),
            Expression::Traversal(traversal) if depth < MAX_LOCAL_DEPTH => {
                if let (Expression::Variable(root), [TraversalOperator::GetAttr(local)]) =
                    (&traversal.expr, traversal.operators.as_slice())
                {
                    if root.as_str() == "local" {
                        if let Some(definition) = self.locals.get(local.as_str()) {
                            self.value(path, definition, depth + 1);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn object_key(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Identifier(identifier) => Some(identifier.to_string()),
        ObjectKey::Expression(Expression::String(text)) => Some(text.clone()),
        ObjectKey::Expression(Expression::Variable(variable)) => Some(variable.to_string()),
        _ => None,
    }
}

fn collect_locals(files: &[(String, Body)]) -> BTreeMap<String, Expression> {
    files
        .iter()
        .flat_map(|(_, body)| body.blocks().filter(|b| b.identifier() == "locals"))
        .flat_map(|block| block.body().attributes())
        .map(|attribute| (attribute.key().to_owned(), attribute.expr().clone()))
        .collect()
}

fn declared_variables(files: &[(String, Body)]) -> BTreeSet<String> {
    files
        .iter()
        .flat_map(|(_, body)| body.blocks().filter(|b| b.identifier() == "variable"))
        .filter_map(|block| block.labels().first().map(|l| l.as_str().to_owned()))
        .collect()
}

/// `var.x` names in a block, found in its printed form so that templates count too.
fn referenced_variables(block: &Block) -> BTreeSet<String> {
    let text =
        hcl::to_string(&Body::builder().add_block(block.clone()).build()).unwrap_or_default();
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    let mut start = 0;
    while let Some(offset) = text[start..].find("var.") {
        let at = start + offset;
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let name: String = text[at + 4..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if boundary && !name.is_empty() {
            names.insert(name);
        }
        start = at + 4;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let schema = ProviderSchema::committed().expect("schema parses");
        let body: Body = hcl::from_str(text).expect("valid HCL");
        check(&schema, &[("main.tf".to_owned(), body)])
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn documented_arguments_pass() {
        let text = r#"
variable "zone_id" {}
locals {
  rules = [{ expression = "true", action = "set_cache_settings", action_parameters = { cache = true } }]
}
resource "cloudflare_ruleset" "r" {
  zone_id = var.zone_id
  name    = "n"
  kind    = "zone"
  phase   = "http_request_cache_settings"
  rules   = slice(local.rules, 0, 1)
}
"#;
        assert_eq!(problems(text), Vec::<String>::new());
    }

    #[test]
    fn misspelled_nested_arguments_fail() {
        let text = r#"
resource "cloudflare_ruleset" "r" {
  zone_id = "z"
  name    = "n"
  kind    = "zone"
  phase   = "p"
  rules   = [{ expression = "true", action_parameters = { edge_ttl = { mode = "x", defualt = 1 } } }]
}
"#;
        let found = problems(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("rules.action_parameters.edge_ttl.defualt"));
    }

    #[test]
    fn v4_blocks_unknown_types_missing_arguments_and_undeclared_variables_fail() {
        let text = r#"
resource "cloudflare_ruleset" "r" {
  zone_id = var.zone
  name    = "n"
  kind    = "zone"
  rules {
    expression = "true"
  }
}
resource "cloudflare_zone_settings_override" "old" {}
"#;
        let found = problems(text).join("\n");
        assert!(found.contains("nested block `rules`"), "{found}");
        assert!(found.contains("required argument `phase`"), "{found}");
        assert!(
            found.contains("cloudflare_zone_settings_override"),
            "{found}"
        );
        assert!(
            found.contains("var.zone is used but not declared"),
            "{found}"
        );
    }
}
